//! The example consortium: a city with two tertiary hospitals, an internet
//! hospital attached to one of them, a community hospital, the regional
//! platform, the CDC and the health commission as regulator. Four of them
//! validate, so one may fail.

use medledger_contracts::crypto::{CryptoSuite, PublicKey, SecretKey};
use medledger_contracts::encoding::HashFunction;
use medledger_contracts::transaction::licence_hash;

use medledger_contracts::types::{LicenceKind, LicencePolicy, PractitionerRole};

use crate::{
    ConsensusParameters, GenesisFile, InstitutionEntry, LedgerParametersEntry, LicenceEntry,
    PractitionerEntry,
};

/// The chain id of the example consortium.
pub const EXAMPLE_CHAIN_ID: &str = "medledger-example-city";

/// Genesis time of the example: 2026-09-01T00:00:00Z.
pub const EXAMPLE_GENESIS_TIME_MS: u64 = 1_788_220_800_000;

struct Member {
    id: &'static str,
    name: &'static str,
    kind: &'static str,
    parent: Option<&'static str>,
    legal_code: &'static str,
    licence_ref: &'static str,
    voting_power: u64,
}

const MEMBERS: &[Member] = &[
    Member {
        id: "city-first-hospital",
        name: "市第一人民医院 City First People's Hospital",
        kind: "hospital",
        parent: None,
        legal_code: "12330100470000001A",
        licence_ref: "PDY-330100-0001",
        voting_power: 1,
    },
    Member {
        id: "city-second-hospital",
        name: "市第二医院 City Second Hospital",
        kind: "hospital",
        parent: None,
        legal_code: "12330100470000002B",
        licence_ref: "PDY-330100-0002",
        voting_power: 1,
    },
    Member {
        id: "first-online",
        name: "市第一人民医院互联网医院 City First Internet Hospital",
        kind: "internet-hospital",
        parent: Some("city-first-hospital"),
        legal_code: "12330100470000003C",
        licence_ref: "PDY-330100-0003",
        voting_power: 0,
    },
    Member {
        id: "west-community",
        name: "西湖社区卫生服务中心 West Lake Community Health Centre",
        kind: "hospital",
        parent: None,
        legal_code: "12330106470000004D",
        licence_ref: "PDY-330106-0004",
        voting_power: 0,
    },
    Member {
        id: "regional-platform",
        name: "市全民健康信息平台 City Health Information Platform",
        kind: "regional-platform",
        parent: None,
        legal_code: "12330100470000005E",
        licence_ref: "PLATFORM-330100",
        voting_power: 1,
    },
    Member {
        id: "city-cdc",
        name: "市疾病预防控制中心 City CDC",
        kind: "public-health",
        parent: None,
        legal_code: "12330100470000006F",
        licence_ref: "CDC-330100",
        voting_power: 0,
    },
    Member {
        id: "health-commission",
        name: "市卫生健康委员会 City Health Commission",
        kind: "regulator",
        parent: None,
        legal_code: "11330100000000007G",
        licence_ref: "GOV-330100",
        voting_power: 1,
    },
];

/// Practitioners at genesis: (label, institution, role, licence number).
/// Labels name key files; licence numbers are fictional and only their
/// salted hash ([`example_licence_salt`]) is recorded.
pub const PRACTITIONERS: &[(&str, &str, &str, &str)] = &[
    (
        "dr-first-1",
        "city-first-hospital",
        "physician",
        "110330100000001",
    ),
    (
        "dr-second-1",
        "city-second-hospital",
        "physician",
        "110330100000002",
    ),
    (
        "dr-online-1",
        "first-online",
        "physician",
        "110330100000003",
    ),
    (
        "dr-community-1",
        "west-community",
        "physician",
        "110330100000004",
    ),
    (
        "cdc-officer-1",
        "city-cdc",
        "public-health-officer",
        "CDC330100000005",
    ),
];

/// Every key label the example needs on `ed25519-sha256`: `admin:<id>`,
/// `node:<id>` and `practitioner:<label>`.
pub fn key_labels() -> Vec<String> {
    key_labels_on(CryptoSuite::Ed25519Sha256)
}

/// Every key label the example needs on `suite`: [`key_labels`], and where
/// nodes have transport keys (`sm2-sm3`) `transport:<id>` too.
pub fn key_labels_on(suite: CryptoSuite) -> Vec<String> {
    let mut labels = Vec::new();
    for member in MEMBERS {
        labels.push(format!("admin:{}", member.id));
        labels.push(format!("node:{}", member.id));
        if suite.has_transport_keys() {
            labels.push(format!("transport:{}", member.id));
        }
    }
    for (label, ..) in PRACTITIONERS {
        labels.push(format!("practitioner:{label}"));
    }
    labels
}

/// The example consortium with keys from `public_key(label)`, on
/// `ed25519-sha256`.
pub fn city_consortium(chain_id: &str, public_key: impl FnMut(&str) -> PublicKey) -> GenesisFile {
    city_consortium_on(CryptoSuite::Ed25519Sha256, chain_id, public_key)
}

/// The example consortium on `suite`, with keys (of that suite's scheme)
/// from `public_key(label)`; its licence hashes and practitioner ids are
/// that suite's.
pub fn city_consortium_on(
    suite: CryptoSuite,
    chain_id: &str,
    mut public_key: impl FnMut(&str) -> PublicKey,
) -> GenesisFile {
    let hash = suite.hash_function();
    let institutions = MEMBERS
        .iter()
        .map(|m| InstitutionEntry {
            id: m.id.into(),
            name: m.name.into(),
            kind: m.kind.into(),
            parent: m.parent.map(Into::into),
            legal_code: m.legal_code.into(),
            region_code: m.legal_code[2..8].into(),
            licence_ref: m.licence_ref.into(),
            admin_key: public_key(&format!("admin:{}", m.id)).to_text(),
            node_key: public_key(&format!("node:{}", m.id)).to_text(),
            voting_power: m.voting_power,
            transport_key: suite
                .has_transport_keys()
                .then(|| public_key(&format!("transport:{}", m.id)).to_text()),
        })
        .collect();
    let practitioners = PRACTITIONERS
        .iter()
        .map(|(label, institution, role, licence)| PractitionerEntry {
            institution: (*institution).into(),
            key: public_key(&format!("practitioner:{label}")).to_text(),
            role: (*role).into(),
            licence_hash: licence_hash(hash, &example_licence_salt(label), licence).to_hex(),
        })
        .collect();
    // The health commission attests each practitioner's licence for five
    // years; the first hospital's physician also practises at its
    // internet hospital (多点执业).
    let licences = PRACTITIONERS
        .iter()
        .map(|(label, institution, role, licence)| {
            let kind = PractitionerRole::from_name(role)
                .map_or(LicenceKind::Physician, PractitionerRole::licence_kind);
            let mut institutions = vec![(*institution).to_string()];
            if *label == "dr-first-1" {
                institutions.push("first-online".into());
            }
            let id = medledger_contracts::types::PractitionerId::from_key(
                hash,
                &public_key(&format!("practitioner:{label}")),
            );
            LicenceEntry {
                attested_by: "health-commission".into(),
                practitioners: vec![id.0.to_hex()],
                licence_hash: licence_hash(hash, &example_licence_salt(label), licence).to_hex(),
                kind: kind.name().into(),
                scopes: vec![example_scope(kind).into()],
                institutions,
                valid_from_ms: EXAMPLE_GENESIS_TIME_MS,
                valid_until_ms: EXAMPLE_GENESIS_TIME_MS + EXAMPLE_LICENCE_VALIDITY_MS,
            }
        })
        .collect();
    GenesisFile {
        chain_id: chain_id.into(),
        crypto_suite: suite.name().into(),
        genesis_time_ms: EXAMPLE_GENESIS_TIME_MS,
        consensus: ConsensusParameters::default(),
        parameters: LedgerParametersEntry {
            practitioner_licences: LicencePolicy::Attested.name().into(),
            ..LedgerParametersEntry::default()
        },
        institutions,
        practitioners,
        licences,
    }
}

/// How long the example's genesis licences are attested for: five years
/// (365-day years; the registration a physician renews).
pub const EXAMPLE_LICENCE_VALIDITY_MS: u64 = 5 * 365 * 86_400_000;

/// The salt issued with an example practitioner's licence: derived from
/// the label, since the licence numbers are fictional anyway.
pub fn example_licence_salt(label: &str) -> [u8; 16] {
    // Derivations of example values, not ledger hashes: fixed to SHA-256.
    let digest =
        HashFunction::Sha256.tagged_hash(b"medledger/example-licence-salt/v1", &[label.as_bytes()]);
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest.0[..16]);
    salt
}

fn example_scope(kind: LicenceKind) -> &'static str {
    match kind {
        LicenceKind::Physician => "clinical-internal-medicine",
        LicenceKind::Nurse => "nursing",
        LicenceKind::Pharmacist => "pharmacy",
        LicenceKind::Technician => "medical-technology",
        LicenceKind::PublicHealthPost => "public-health",
        LicenceKind::RecordsPost => "medical-records",
    }
}

/// The published, deterministic key behind `genesis/examples/city.json`.
/// Anyone can derive it: it is for examples and tests only, never for a real chain.
pub fn published_example_key(label: &str) -> SecretKey {
    SecretKey::from_seed(published_example_seed(label))
}

/// [`published_example_key`] of the scheme [`key_suite`] names: for
/// `sm2-sm3`, the SM2 key whose scalar is the same 32 bytes (for these
/// labels, a usable one: the tests derive every label's).
pub fn published_example_key_on(suite: CryptoSuite, label: &str) -> SecretKey {
    SecretKey::from_seed_of(key_suite(suite, label), published_example_seed(label))
        .unwrap_or_else(|e| panic!("the published example key {label}: {e}"))
}

/// The suite whose scheme key `label` is of on a chain of `suite`: a
/// transport key (`transport:<id>`) is Ed25519 whatever the chain's suite
/// (`InstitutionSpec::transport_key`), every other key is the suite's.
pub fn key_suite(suite: CryptoSuite, label: &str) -> CryptoSuite {
    if label.starts_with("transport:") {
        CryptoSuite::Ed25519Sha256
    } else {
        suite
    }
}

fn published_example_seed(label: &str) -> [u8; 32] {
    HashFunction::Sha256
        .tagged_hash(b"medledger/published-example-key/v1", &[label.as_bytes()])
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMITTED: &str = include_str!("../examples/city.json");

    #[test]
    fn the_committed_example_is_valid_and_pinned() {
        let generated =
            city_consortium(EXAMPLE_CHAIN_ID, |l| published_example_key(l).public_key());
        let genesis = generated.validate().unwrap();
        assert_eq!(genesis.validators().count(), 4);
        assert_eq!(genesis.fault_tolerance(), 1);
        assert!(
            COMMITTED == generated.to_json(),
            "genesis/examples/city.json differs from the generator: regenerate on purpose: `medledger genesis new --published-example-keys --out DIR`, then copy DIR/genesis.json to genesis/examples/city.json"
        );
        let parsed = GenesisFile::parse(COMMITTED.as_bytes())
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(parsed.hash(), genesis.hash());
        parsed.memory_ledger().unwrap();
    }
}
