//! Fuzz targets for every decoder of bytes from outside a node, an
//! auditor's replay or a hospital's client: one function per target that
//! takes any bytes and must never panic, its seeds, and the list the
//! libFuzzer binaries (`fuzz/libfuzzer`, nightly) and the corpus replay
//! (`tests/corpus.rs`, stable, run by `cargo test`) both read.
//!
//! Each target returns whether the input got past decoding, so the corpus
//! test can show that its seeds reach the checks behind the decoder.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod world;

use std::io::Cursor;

use medledger_audit::archive::ArchiveSource;
use medledger_audit::replay::Replay;
use medledger_contracts::block::Block;
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::ledger::LedgerError;
use medledger_contracts::light::{PROVED_VALUE_BYTES_MAX, ProvedValue};
use medledger_contracts::transaction::{SignedTransaction, Signer, Transaction};
use medledger_contracts::types::Timestamp;

/// A fuzz target.
pub struct Target {
    /// Its name: the libFuzzer binary's and the corpus directory's.
    pub name: &'static str,
    /// Whose bytes it takes, and where they come from.
    pub input: &'static str,
    /// Runs one input; true if it got past decoding.
    pub run: fn(&[u8]) -> bool,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "transaction",
        input: "a signed transaction: POST /v1/tx, gossip, a block's body",
        run: transaction,
    },
    Target {
        name: "block",
        input: "a block: a proposal, sync, an archive; decoded, verified and executed",
        run: block,
    },
    Target {
        name: "certificate",
        input: "a commit certificate: sync, an archive, a light client's proof",
        run: certificate,
    },
    Target {
        name: "proved_value",
        input: "a proved state value as a node answers a hospital's light client",
        run: proved_value,
    },
    Target {
        name: "rules",
        input: "any transactions a member's keys (or its patients') could sign, executed",
        run: rules,
    },
    Target {
        name: "consensus_message",
        input: "every consensus, liveness and sync message and the WAL's entries",
        run: medledger_consensus::fuzz::consensus_message,
    },
    Target {
        name: "proposal_stream",
        input: "proposal parts from several publishers, reassembled",
        run: medledger_consensus::fuzz::proposal_stream,
    },
    Target {
        name: "gateway_message",
        input: "a records-gateway request or response frame from a peer's node",
        run: medledger_node::fuzz::gateway_message,
    },
    Target {
        name: "relay_frames",
        input: "the frames a node streams to a hospital's SDK during a records fetch",
        run: relay_frames,
    },
    Target {
        name: "sdk_answer",
        input: "a node's JSON answers as a hospital's SDK decodes them (strict)",
        run: sdk_answer,
    },
    Target {
        name: "genesis",
        input: "a genesis file handed to a node operator, an auditor or an SDK user",
        run: genesis,
    },
    Target {
        name: "http_input",
        input: "an API request's path and query, Authorization header and bodies",
        run: medledger_node::fuzz::http_input,
    },
    Target {
        name: "archive",
        input: "an export archive (uncompressed), replayed by the auditor",
        run: archive,
    },
    Target {
        name: "checkpoint",
        input: "a replay checkpoint file (uncompressed), resumed from",
        run: checkpoint,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn transaction(data: &[u8]) -> bool {
    let Ok(tx) = SignedTransaction::from_bytes(data) else {
        return false;
    };
    assert_eq!(
        tx.to_bytes(),
        data,
        "a transaction decoded from a second encoding"
    );
    let _ = tx.verify(&world::world().chain);
    true
}

fn block(data: &[u8]) -> bool {
    let Ok(block) = Block::from_bytes(data) else {
        return false;
    };
    assert_eq!(
        block.to_bytes(),
        data,
        "a block decoded from a second encoding"
    );
    let world = world::world();
    let Ok(mut ledger) = world.genesis.memory_ledger() else {
        return true;
    };
    if block.header.height == 1 {
        let executed = ledger.execute(
            block.header.time,
            &block.header.proposer,
            block.transactions.to_vec(),
        );
        if let Ok((computed, _)) = executed {
            let _ = block.header.check_against(world.chain.hash(), &computed);
        }
    }
    true
}

fn certificate(data: &[u8]) -> bool {
    let Ok(certificate) = medledger_consensus::decode_certificate(data) else {
        return false;
    };
    assert_eq!(
        to_bytes(&certificate),
        data,
        "a certificate decoded from a second encoding"
    );
    let world = world::world();
    if let Ok(power) = certificate.verify(
        &world.chain,
        &world.validators,
        certificate.height,
        &certificate.block,
    ) {
        assert!(
            power <= world.validators.total_power(),
            "more power than the set has"
        );
        assert!(
            3 * power > 2 * world.validators.total_power(),
            "a certificate verified without a two-thirds quorum"
        );
    }
    true
}

fn proved_value(data: &[u8]) -> bool {
    let Ok(proved) = from_bytes::<ProvedValue>(data, PROVED_VALUE_BYTES_MAX) else {
        return false;
    };
    let world = world::world();
    let _ = proved.verify(&world.chain, &world.validators);
    true
}

/// Transactions for [`rules`]: which of the world's keys signs, how many
/// seconds pass before it (0: it joins the block before), and the
/// transaction (its signer is replaced by the key's own, except a
/// delegate's, who signs with their own patient key).
type Signed = Vec<(u8, u32, Transaction)>;

/// Executes the transactions, each signed with a real key, on the example
/// consortium, in blocks and at times the input chooses (so deadlines can
/// pass between them): verification or a rule may refuse any of them, but
/// once verified no transaction may make its block fail to execute (every
/// validator would halt on it).
fn rules(data: &[u8]) -> bool {
    let Ok(list) = from_bytes::<Signed>(data, 64 * 1024) else {
        return false;
    };
    let world = world::world();
    let Ok(mut ledger) = world.genesis.memory_ledger() else {
        return true;
    };
    let proposer = world.genesis.institutions[0].id.clone();
    let mut time = world.genesis.genesis_time.0;
    let mut block = Vec::new();
    let mut run = |block: &mut Vec<SignedTransaction>, time: u64| {
        if block.is_empty() {
            return;
        }
        match ledger.execute(Timestamp(time), &proposer, std::mem::take(block)) {
            // Refused before execution (as the mempool and every validator
            // refuse it): no block would carry it.
            Ok(_) | Err(LedgerError::Transaction { .. }) => {}
            Err(e) => panic!("a signed transaction made its block fail: {e}"),
        }
    };
    for (index, advance, mut tx) in list.into_iter().take(32) {
        if advance > 0 || block.len() >= 8 {
            run(&mut block, time);
            time = time.saturating_add(u64::from(advance.max(1)) * 1000);
        }
        let (key, signer) = &world.signers[usize::from(index) % world.signers.len()];
        if !matches!(tx.signer, Signer::Delegate(_)) {
            tx.signer = signer.clone();
        }
        block.push(tx.sign(&world.chain, key));
    }
    run(&mut block, time);
    true
}

/// The JSON answers the SDK reads from a node, decoded strictly as it does;
/// the first byte chooses which.
fn sdk_answer(data: &[u8]) -> bool {
    use medledger_api as api;
    fn strict<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> bool {
        serde_json::from_slice::<T>(bytes).is_ok()
    }
    let Some((&kind, input)) = data.split_first() else {
        return false;
    };
    match kind % 10 {
        0 => strict::<api::Status>(input),
        1 => strict::<api::Receipt>(input),
        2 => strict::<api::SubmitAnswer>(input),
        3 => strict::<api::SubmitManyAnswer>(input),
        4 => strict::<api::Page<api::Grant>>(input),
        5 => strict::<api::Page<api::AuditEntry>>(input),
        6 => strict::<api::ErrorBody>(input),
        7 => strict::<api::Access>(input),
        8 => strict::<api::Institution>(input),
        _ => serde_json::from_slice::<api::Archived>(input).is_ok_and(|archived| {
            // What the auditor's HttpSource does next with it.
            hex::decode(&archived.archived).is_ok_and(|bytes| {
                from_bytes::<medledger_audit::archive::ArchivedBlock>(
                    &bytes,
                    medledger_contracts::constants::ARCHIVED_BLOCK_BYTES_MAX,
                )
                .is_ok()
            })
        }),
    }
}

/// A genesis file: parsed, validated, its initial state built.
fn genesis(data: &[u8]) -> bool {
    let Ok(file) = medledger_genesis::GenesisFile::parse(data) else {
        return false;
    };
    let Ok(genesis) = file.validate() else {
        return true;
    };
    let _ = genesis.hash();
    let _ = genesis.memory_ledger();
    true
}

fn relay_frames(data: &[u8]) -> bool {
    let mut buffer = data.to_vec();
    let mut frames = 0;
    while let Ok(Some(_)) = medledger_client_sdk::records::take_frame(&mut buffer) {
        frames += 1;
    }
    frames > 0
}

fn archive(data: &[u8]) -> bool {
    let Ok(source) = ArchiveSource::read(Cursor::new(data.to_vec())) else {
        return false;
    };
    let Ok(mut replay) = Replay::new(&world::world().genesis) else {
        return true;
    };
    let _ = replay.run(source, |_, _, _, _| {});
    true
}

fn checkpoint(data: &[u8]) -> bool {
    Replay::resume_from(&world::world().genesis, data).is_ok()
}

/// The seeds of `target`: real bytes of each input's kind, from the
/// world's short history.
pub fn seeds(target: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let history = world::history()?;
    let world = world::world();
    Ok(match target {
        "transaction" => history.transactions.iter().map(|t| t.to_bytes()).collect(),
        "block" => history.blocks.iter().map(|b| b.block.clone()).collect(),
        "certificate" => history
            .blocks
            .iter()
            .map(|b| b.certificate.clone())
            .collect(),
        "proved_value" => vec![to_bytes(&history.proved_grant)],
        "rules" => {
            let index = |signer: &Signer| {
                world
                    .signers
                    .iter()
                    .position(|(_, s)| s == signer)
                    .and_then(|i| u8::try_from(i).ok())
                    .unwrap_or(0)
            };
            let list: Signed = history
                .transactions
                .iter()
                .map(|t| (index(&t.transaction.signer), 1, t.transaction.clone()))
                .collect();
            // The same, all in one block.
            let together: Signed = list.iter().map(|(i, _, t)| (*i, 0, t.clone())).collect();
            vec![to_bytes(&list), to_bytes(&together)]
        }
        "consensus_message" => medledger_consensus::fuzz::seeds().0,
        "proposal_stream" => medledger_consensus::fuzz::seeds().1,
        "gateway_message" | "relay_frames" => {
            let responses = [
                medledger_transfer::GatewayResponse::Manifest(medledger_transfer::Manifest {
                    transfer: medledger_contracts::Hash32([4; 32]),
                    encapsulated_key: vec![5; 32],
                    items: vec![medledger_transfer::ManifestItem {
                        path: "lab/result-1.json".into(),
                        category: medledger_contracts::types::Category::LabReports,
                        size: 100,
                        content_hash: medledger_contracts::Hash32([6; 32]),
                    }],
                }),
                medledger_transfer::GatewayResponse::Chunk(medledger_transfer::SealedChunk {
                    seq: 0,
                    item: 0,
                    last_of_item: true,
                    sealed: vec![7; 116],
                }),
                medledger_transfer::GatewayResponse::Wait { retry_ms: 100 },
            ];
            if target == "relay_frames" {
                vec![responses.iter().flat_map(framed).collect()]
            } else {
                let request = medledger_transfer::GatewayRequest::Chunk {
                    transfer: medledger_contracts::Hash32([4; 32]),
                    seq: 1,
                };
                std::iter::once(with_kind(0, framed(&request)))
                    .chain(responses.iter().map(|r| with_kind(1, framed(r))))
                    .collect()
            }
        }
        "http_input" => {
            let tx = hex::encode(history.transactions[0].to_bytes());
            vec![
                with_kind(
                    0,
                    serde_json::json!({ "transaction": tx, "wait": true })
                        .to_string()
                        .into(),
                ),
                with_kind(
                    1,
                    serde_json::json!({ "transactions": [tx, tx] })
                        .to_string()
                        .into(),
                ),
                with_kind(
                    2,
                    to_bytes(
                        &history
                            .transactions
                            .iter()
                            .map(|t| t.to_bytes())
                            .collect::<Vec<_>>(),
                    ),
                ),
                with_kind(
                    3,
                    serde_json::json!({ "fetch": hex::encode(to_bytes(&signed_fetch(&history))) })
                        .to_string()
                        .into(),
                ),
                with_kind(4, {
                    let (key, signer) = &world.signers[0];
                    let auth = medledger_contracts::request_auth::RequestAuth::sign(
                        &world.chain,
                        &world.genesis.institutions[0].id,
                        "GET",
                        "/v1/patients/me/grants",
                        b"",
                        world.genesis.genesis_time,
                        1,
                        signer.clone(),
                        key,
                    );
                    format!("Medledger {}", hex::encode(to_bytes(&auth))).into_bytes()
                }),
                with_kind(
                    5,
                    format!(
                        "/v1/patients/{}/grants?limit=10&after=3",
                        hex::encode([7u8; 32])
                    )
                    .into_bytes(),
                ),
                with_kind(
                    5,
                    format!(
                        "/v1/receipts/{}",
                        history.transactions[0].id(&world.chain).0.to_hex()
                    )
                    .into_bytes(),
                ),
            ]
        }
        "sdk_answer" => {
            let block = &history.blocks[0];
            vec![
                with_kind(
                    6,
                    serde_json::json!({"code": "not_found", "message": "no such grant"})
                        .to_string()
                        .into_bytes(),
                ),
                with_kind(
                    9,
                    serde_json::json!({"height": block.height, "archived": hex::encode(to_bytes(block))})
                        .to_string()
                        .into_bytes(),
                ),
            ]
        }
        "genesis" => vec![
            medledger_genesis::example::city_consortium(world::CHAIN, |l| {
                medledger_genesis::example::published_example_key(l).public_key()
            })
            .to_json()
            .into_bytes(),
        ],
        "archive" => vec![history.archive],
        "checkpoint" => vec![history.checkpoint],
        other => anyhow::bail!("no target {other}"),
    })
}

/// A practitioner's signed fetch of the history's access request.
fn signed_fetch(history: &world::History) -> medledger_transfer::SignedFetch {
    let world = world::world();
    let chain = &world.chain;
    let request = &history.transactions[2];
    let (key, signer) = world
        .signers
        .iter()
        .find(|(_, s)| s == &request.transaction.signer)
        .unwrap_or(&world.signers[0]);
    let practitioner = match signer {
        Signer::Practitioner(id) => *id,
        _ => medledger_contracts::types::PractitionerId::from_key(chain.hash(), &key.public_key()),
    };
    let authorization = medledger_transfer::FetchAuthorization {
        chain: chain.id.clone(),
        request: request.id(chain),
        holder: world.genesis.institutions[0].id.clone(),
        practitioner,
        one_time_key: medledger_transfer::RecipientKey::X25519([8; 32]),
        time: world.genesis.genesis_time,
        committed_at: 3,
    };
    medledger_transfer::SignedFetch {
        signature: key.sign(&authorization.digest(chain.hash())),
        public_key: key.public_key(),
        authorization,
    }
}

/// A seed for a target whose first byte chooses what the rest is.
fn with_kind(kind: u8, bytes: Vec<u8>) -> Vec<u8> {
    let mut seed = vec![kind];
    seed.extend(bytes);
    seed
}

/// A gateway frame: a big-endian u32 length and the BCS bytes.
fn framed(message: &impl serde::Serialize) -> Vec<u8> {
    let bytes = to_bytes(message);
    let mut frame = u32::try_from(bytes.len())
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    frame.extend(bytes);
    frame
}
