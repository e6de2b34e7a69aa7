//! Bad genesis files get errors that name the field; good ones hash stably.

#![allow(missing_docs, clippy::unwrap_used)]

use medledger_genesis::example::{EXAMPLE_CHAIN_ID, city_consortium, published_example_key};
use medledger_genesis::{GenesisError, GenesisFile};

fn example() -> GenesisFile {
    city_consortium(EXAMPLE_CHAIN_ID, |l| published_example_key(l).public_key())
}

fn field_of(error: GenesisError) -> String {
    match error {
        GenesisError::Field { field, .. } => field,
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn each_bad_field_is_named() {
    type Mutation = Box<dyn Fn(&mut GenesisFile)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("chain_id", Box::new(|g| g.chain_id = "Bad Chain".into())),
        // Ed25519 keys in a genesis on sm2-sm3: the first is named.
        (
            "institutions[0].admin_key",
            Box::new(|g| g.crypto_suite = "sm2-sm3".into()),
        ),
        ("crypto_suite", Box::new(|g| g.crypto_suite = "rsa".into())),
        (
            "institutions[2].region_code",
            Box::new(|g| g.institutions[2].region_code = "33010".into()),
        ),
        (
            "institutions[0].legal_code",
            Box::new(|g| g.institutions[0].legal_code = "short".into()),
        ),
        (
            "institutions[1].id",
            Box::new(|g| g.institutions[1].id = g.institutions[0].id.clone()),
        ),
        (
            "institutions[3].admin_key",
            Box::new(|g| g.institutions[3].admin_key = g.institutions[0].admin_key.clone()),
        ),
        (
            "institutions[3].node_key",
            Box::new(|g| {
                g.institutions[3].node_key =
                    "ed25519:0100000000000000000000000000000000000000000000000000000000000000"
                        .into()
            }),
        ),
        (
            "institutions[2].kind",
            Box::new(|g| g.institutions[2].parent = None),
        ),
        (
            "institutions[2].parent",
            Box::new(|g| g.institutions[2].parent = Some("city-cdc".into())),
        ),
        (
            "institutions[0].kind",
            Box::new(|g| g.institutions[0].kind = "clinic".into()),
        ),
        (
            "institutions",
            Box::new(|g| g.institutions.iter_mut().for_each(|i| i.voting_power = 0)),
        ),
        (
            "practitioners[0].institution",
            Box::new(|g| g.practitioners[0].institution = "nowhere".into()),
        ),
        (
            "practitioners[1].role",
            Box::new(|g| g.practitioners[1].role = "surgeon-general".into()),
        ),
        (
            "practitioners[2].licence_hash",
            Box::new(|g| g.practitioners[2].licence_hash = "zz".into()),
        ),
        (
            "parameters.practitioner_licences",
            Box::new(|g| g.parameters.practitioner_licences = "trusted".into()),
        ),
        (
            "licences[0].attested_by",
            Box::new(|g| g.licences[0].attested_by = "city-first-hospital".into()),
        ),
        (
            "licences[1].licence_hash",
            Box::new(|g| g.licences[1].licence_hash = g.licences[0].licence_hash.clone()),
        ),
        (
            "licences[2].kind",
            Box::new(|g| g.licences[2].kind = "surgeon".into()),
        ),
        (
            "licences[0].institutions",
            Box::new(|g| g.licences[0].institutions.push("nowhere".into())),
        ),
        (
            "licences[3].scopes",
            Box::new(|g| g.licences[3].scopes.push("Internal Medicine".into())),
        ),
        (
            "licences[4]",
            Box::new(|g| g.licences[4].valid_from_ms = g.licences[4].valid_until_ms),
        ),
        (
            "licences[1]",
            Box::new(|g| {
                g.licences[1].institutions.clear();
                g.licences[1].practitioners.clear();
            }),
        ),
        (
            "licences[0].practitioners",
            Box::new(|g| g.licences[0].practitioners = g.licences[1].practitioners.clone()),
        ),
        (
            "licences[2].institutions",
            Box::new(|g| {
                let again = g.licences[2].institutions[0].clone();
                g.licences[2].institutions.push(again)
            }),
        ),
        (
            "licences[3].valid_until_ms",
            Box::new(|g| g.licences[3].valid_until_ms = g.genesis_time_ms),
        ),
        (
            "practitioners[4]",
            Box::new(|g| {
                g.licences.remove(4);
            }),
        ),
        (
            "consensus.propose_timeout_ms",
            Box::new(|g| g.consensus.propose_timeout_ms = 1),
        ),
        (
            "parameters.emergency_review_days",
            Box::new(|g| g.parameters.emergency_review_days = 0),
        ),
        (
            "parameters.control_change_delay_ms",
            Box::new(|g| g.parameters.control_change_delay_ms = 10),
        ),
    ];
    for (expected, mutate) in cases {
        let mut g = example();
        mutate(&mut g);
        assert_eq!(field_of(g.validate().unwrap_err()), expected);
    }
}

#[test]
fn unknown_fields_oversize_and_malformed_json_are_refused() {
    let mut value: serde_json::Value = serde_json::from_str(&example().to_json()).unwrap();
    value["surprise"] = serde_json::json!(1);
    let err = GenesisFile::parse(value.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    assert!(matches!(
        GenesisFile::parse(b"{"),
        Err(GenesisError::Json(_))
    ));
    let huge = vec![b' '; medledger_contracts::constants::GENESIS_FILE_BYTES_MAX + 1];
    assert!(matches!(
        GenesisFile::parse(&huge),
        Err(GenesisError::TooLarge(_))
    ));
}

#[test]
fn the_hash_covers_every_field() {
    let base = example().validate().unwrap().hash();
    let mut g = example();
    g.genesis_time_ms += 1;
    assert_ne!(g.validate().unwrap().hash(), base);
    let mut g = example();
    g.institutions[4].name.push('!');
    assert_ne!(g.validate().unwrap().hash(), base);
    let mut g = example();
    g.consensus.block_transactions_max -= 1;
    assert_ne!(g.validate().unwrap().hash(), base);
    let mut g = example();
    g.licences[0].valid_until_ms -= 1;
    assert_ne!(g.validate().unwrap().hash(), base);
    let mut g = example();
    g.parameters.practitioner_licences = "declared".into();
    assert_ne!(g.validate().unwrap().hash(), base);
    assert_eq!(example().validate().unwrap().hash(), base, "stable");
}

#[test]
fn read_reports_the_path() {
    let err = GenesisFile::read(std::path::Path::new("/nonexistent/genesis.json")).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/genesis.json"),
        "{err}"
    );
}

/// The suite is hashed into the genesis: the example consortium on
/// `sm2-sm3` (SM2 keys, SM3 licence hashes and ids) validates, and is
/// another chain (another genesis hash, and a `Chain` that compares
/// unequal) with the same id; each suite refuses the other's keys.
#[test]
fn the_suite_is_part_of_the_chain() {
    use medledger_contracts::crypto::CryptoSuite;
    use medledger_genesis::example::{city_consortium_on, published_example_key_on};
    let sm = |label: &str| published_example_key_on(CryptoSuite::Sm2Sm3, label).public_key();
    let on_sm = city_consortium_on(CryptoSuite::Sm2Sm3, EXAMPLE_CHAIN_ID, sm)
        .validate()
        .unwrap();
    let genesis = example().validate().unwrap();
    assert_eq!(on_sm.crypto_suite, CryptoSuite::Sm2Sm3);
    assert_ne!(genesis.hash(), on_sm.hash());
    assert_ne!(genesis.chain(), on_sm.chain());
    assert_eq!(genesis.chain().id, on_sm.chain().id);
    assert_ne!(genesis.practitioners[0].3, on_sm.practitioners[0].3);
    let mut mixed = city_consortium_on(CryptoSuite::Sm2Sm3, EXAMPLE_CHAIN_ID, sm);
    mixed.institutions[1].node_key = example().institutions[1].node_key.clone();
    assert_eq!(
        field_of(mixed.validate().unwrap_err()),
        "institutions[1].node_key"
    );
    // Each institution's node has an Ed25519 transport key of its own.
    let mut shared = city_consortium_on(CryptoSuite::Sm2Sm3, EXAMPLE_CHAIN_ID, sm);
    shared.institutions[1].transport_key = shared.institutions[0].transport_key.clone();
    assert_eq!(
        field_of(shared.validate().unwrap_err()),
        "institutions[1].transport_key"
    );
    let mut missing = city_consortium_on(CryptoSuite::Sm2Sm3, EXAMPLE_CHAIN_ID, sm);
    missing.institutions[0].transport_key = None;
    assert_eq!(
        field_of(missing.validate().unwrap_err()),
        "institutions[0].transport_key"
    );
}
