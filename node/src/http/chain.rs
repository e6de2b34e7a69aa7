//! Chain routes: submit and gossip transactions, status, headers, blocks,
//! certificates, validator sets and receipts. All public except gossip (member
//! nodes only): they name no one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use medledger_api as api;
use medledger_contracts::Hash32;
use medledger_contracts::block::{Block, BlockHeader};
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::constants::{CERTIFICATE_BYTES_MAX, TRANSACTION_BYTES_MAX};
use medledger_contracts::encoding::{BoundedVec, from_bytes, to_bytes};
use medledger_contracts::light::{PROVED_VALUE_BYTES_MAX, ProvedValue};
use medledger_contracts::records::ValidatorSetRecord;
use medledger_contracts::state::StateKey;
use medledger_contracts::types::TxHash;
use warp::http::StatusCode;

use super::{Answer, ApiError, Request, ok};
use crate::mempool::Refusal;
use crate::shared::{Origin, Shared};

/// Largest `POST /v1/tx` body: a hex transaction and a flag.
pub const SUBMIT_BODY_MAX: usize = 2 * TRANSACTION_BYTES_MAX + 1024;
pub use medledger_api::SUBMIT_MANY_MAX;
/// Largest `POST /v1/txs` body: 1,000 hex transactions of a typical size
/// (a few hundred bytes); each is still held to the per-transaction limit.
pub const SUBMIT_MANY_BODY_MAX: usize = 4 * 1024 * 1024;
/// Largest gossip batch.
pub const GOSSIP_BODY_MAX: usize = 16 * 1024 * 1024;
/// Most transactions in one gossip batch (nodes send at most
/// [`crate::GOSSIP_BATCH_MAX`]): a longer list is refused from its length
/// prefix, before anything is decoded or allocated for it.
pub const GOSSIP_TRANSACTIONS_MAX: usize = 4 * crate::GOSSIP_BATCH_MAX;
/// Longest a client may wait for its transaction to commit.
const WAIT_MAX: Duration = Duration::from_secs(30);

/// Longest a submission waits for this node to reach `after_height`.
const CATCH_UP_MAX: Duration = Duration::from_secs(10);

fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Duplicate(_) | Refusal::AlreadyCommitted(_) => StatusCode::CONFLICT,
        Refusal::SignerQuota(_) | Refusal::Full(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Invalid(_) | Refusal::WouldReject(_) | Refusal::OutsideValidity(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

/// The body of `POST /v1/txs`, checked for its batch size.
pub(crate) fn submit_many_body(body: &[u8]) -> Result<api::SubmitManyBody, ApiError> {
    let body: api::SubmitManyBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected {{\"transactions\": [\"<hex>\", …]}}: {e}"),
        )
    })?;
    if body.transactions.is_empty() || body.transactions.len() > SUBMIT_MANY_MAX {
        return Err(ApiError::bad_request(
            "bad_batch",
            format!(
                "send 1 to {SUBMIT_MANY_MAX} transactions per request, not {}",
                body.transactions.len()
            ),
        ));
    }
    Ok(body)
}

/// The body of `POST /v1/tx` and the transaction bytes it carries.
pub(crate) fn submit_body(body: &[u8]) -> Result<(api::SubmitBody, Vec<u8>), ApiError> {
    let body: api::SubmitBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!(
                "expected {{\"transaction\": \"<hex>\", \"wait\": bool, \"after_height\": u64}}: {e}"
            ),
        )
    })?;
    let bytes = hex::decode(body.transaction.trim()).map_err(|e| {
        ApiError::bad_request(
            "bad_hex",
            format!("`transaction` must be hex of the BCS-encoded signed transaction: {e}"),
        )
    })?;
    Ok((body, bytes))
}

/// The body of `POST /v1/gossip`: a BCS list of transactions' bytes.
pub(crate) fn gossip_body(body: &[u8]) -> Result<Vec<Vec<u8>>, ApiError> {
    from_bytes::<BoundedVec<Vec<u8>, GOSSIP_TRANSACTIONS_MAX>>(body, GOSSIP_BODY_MAX)
        .map(BoundedVec::into_inner)
        .map_err(|e| ApiError::bad_request("malformed", e.to_string()))
}

/// `POST /v1/txs`: admits up to [`SUBMIT_MANY_MAX`] transactions in one
/// request (a hospital importing consents, a busy gateway), each checked
/// as `POST /v1/tx` checks one (signatures verified in one batch, and tried
/// against state together, in order: see [`Shared::admit_many`]). Answers 200 with one result per
/// transaction, in order: `{tx, status: "accepted"}` or `{status:
/// "refused", code, message}` with the code `POST /v1/tx` would give. Not
/// atomic: each is admitted or refused on its own; none waits for commit.
pub async fn submit_many(
    shared: &Arc<Shared>,
    r: &Request,
    auth: &super::auth::Authenticator,
) -> Answer {
    let body = submit_many_body(&r.body)?;
    // The request itself was charged one unit; each further transaction one more.
    // At most SUBMIT_MANY_MAX (checked above), so it fits a u32.
    #[allow(clippy::cast_possible_truncation)]
    let extra = (body.transactions.len() - 1) as u32;
    const _: () = assert!(SUBMIT_MANY_MAX <= u32::MAX as usize);
    auth.charge_address(r.remote, extra)?;
    let shared = shared.clone();
    let results = tokio::task::spawn_blocking(move || {
        let decoded: Vec<Result<Vec<u8>, String>> = body
            .transactions
            .iter()
            .map(|text| {
                hex::decode(text.trim())
                    .map_err(|e| format!("not hex of a BCS-encoded signed transaction: {e}"))
            })
            .collect();
        let good: Vec<&[u8]> = decoded
            .iter()
            .filter_map(|d| d.as_ref().ok().map(Vec::as_slice))
            .collect();
        let mut admitted = shared.admit_many(&good, Origin::Client).into_iter();
        decoded
            .iter()
            .map(|d| match d {
                Err(message) => api::SubmitResult::Refused {
                    code: "bad_hex".into(),
                    message: message.clone(),
                },
                Ok(_) => match admitted.next() {
                    Some(Ok(id)) => api::SubmitResult::Accepted { tx: id.0.into() },
                    Some(Err(refusal)) => api::SubmitResult::Refused {
                        code: refusal.code().into(),
                        message: refusal.to_string(),
                    },
                    None => api::SubmitResult::Refused {
                        code: "internal".into(),
                        message: "no verdict for this transaction".into(),
                    },
                },
            })
            .collect()
    })
    .await
    .map_err(ApiError::internal)?;
    ok(&api::SubmitManyAnswer { results })
}

/// `POST /v1/tx`: admit a transaction; with `wait`, answer with its receipt.
pub async fn submit(shared: &Arc<Shared>, r: &Request) -> Answer {
    let (body, bytes) = submit_body(&r.body)?;
    if let Some(height) = body.after_height {
        let deadline = tokio::time::Instant::now() + CATCH_UP_MAX;
        while shared.height() < height {
            if tokio::time::Instant::now() > deadline {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "behind",
                    format!(
                        "this node is at height {} and did not reach {height} within {} s; retry or use another node",
                        shared.height(),
                        CATCH_UP_MAX.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Subscribe before admitting, so a fast commit is not missed.
    let mut commits = shared.commits.subscribe();
    let admitted = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.admit(&bytes, Origin::Client)).await
    };
    let id = match admitted {
        Ok(Ok(id)) => id,
        Ok(Err(refusal)) => {
            return Err(ApiError::new(
                refusal_status(&refusal),
                refusal.code(),
                refusal.to_string(),
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    if !body.wait {
        return ok(&api::SubmitAnswer::Accepted(api::Accepted {
            tx: id.0.into(),
            status: api::AcceptedStatus::Accepted,
        }));
    }
    let waited = tokio::time::timeout(WAIT_MAX, async {
        loop {
            match commits.recv().await {
                Ok(event) if event.transactions.contains(&id) => return Ok(true),
                Ok(event) => {
                    if let Some((_, rejection)) = event.untraced.iter().find(|(t, _)| *t == id) {
                        return Err((event.header.height, rejection.clone()));
                    }
                    if matches!(shared.store.receipt(&id), Ok(Some(_))) {
                        return Ok(true);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if matches!(shared.store.receipt(&id), Ok(Some(_))) {
                        return Ok(true);
                    }
                }
                Err(_) => return Ok(false),
            }
        }
    })
    .await;
    let waited = match waited {
        Ok(Err((height, rejection))) if shared.store.receipt(&id)?.is_none() => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                api::RejectionCode::from(&rejection).name(),
                format!(
                    "block {height} took this transaction and rejected it, leaving no trace: {rejection}"
                ),
            ));
        }
        Ok(Err(_)) => Ok(true),
        Ok(Ok(committed)) => Ok(committed),
        Err(elapsed) => Err(elapsed),
    };
    match (waited, shared.store.receipt(&id)?) {
        (Ok(true), Some((height, receipt))) => ok(&api::SubmitAnswer::Committed(
            api::Receipt::new(height, &receipt),
        )),
        _ => Err(ApiError::new(
            StatusCode::ACCEPTED,
            "not_yet_committed",
            format!(
                "transaction {} is accepted but not committed within {} s; ask GET /v1/receipts/{}",
                id.0.to_hex(),
                WAIT_MAX.as_secs(),
                id.0.to_hex()
            ),
        )),
    }
}

/// `POST /v1/gossip`: transactions another member's node passes on.
pub async fn gossip(shared: &Arc<Shared>, r: &Request) -> Answer {
    let batch = gossip_body(&r.body)?;
    // Signature checks take a while for a big batch: off the async threads.
    let shared = shared.clone();
    let (accepted, refused) = tokio::task::spawn_blocking(move || {
        let batch: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let accepted = shared
            .admit_many(&batch, Origin::Peer)
            .iter()
            .filter(|r| r.is_ok())
            .count();
        (accepted, batch.len() - accepted)
    })
    .await
    .map_err(ApiError::internal)?;
    ok(&api::GossipAnswer {
        accepted: accepted as u64,
        refused: refused as u64,
    })
}

/// `GET /v1/status`.
pub fn status(shared: &Shared) -> Answer {
    let height = shared.height();
    let latest = shared.store.header(height)?;
    ok(&api::Status {
        chain_id: shared.chain.id.as_str().to_string(),
        crypto_suite: shared.chain.suite.name().to_string(),
        institution: shared.institution.as_str().to_string(),
        validator: shared
            .validators(height + 1)
            .is_ok_and(|set| set.get(&shared.institution).is_some()),
        height,
        latest_block_hash: latest.as_ref().map(|h| h.hash(shared.chain.hash()).into()),
        latest_block_time_ms: latest.as_ref().map(|h| h.time.0),
        state_root: latest.as_ref().map(|h| h.state_root.into()),
        audit_root: latest.as_ref().map(|h| h.audit_root.into()),
        audit_size: latest.as_ref().map_or(0, |h| h.audit_size),
        round: shared.telemetry.round.load(Ordering::Relaxed) as u64,
        peers: shared.telemetry.peers.load(Ordering::Relaxed) as u64,
        mempool_size: shared.mempool().len() as u64,
        tx_validity_window_ms: shared.validity_window(),
    })
}

pub(crate) fn parse_height(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_height",
            format!("a height is a whole number, got {text:?}"),
        )
    })
}

/// A record stored per block height, or `no_such_block`.
fn by_height<T>(
    height: u64,
    shared: &Shared,
    found: Result<Option<T>, medledger_store::StoreError>,
) -> Result<T, ApiError> {
    found?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_block",
            format!(
                "no block at height {height} (latest is {})",
                shared.height()
            ),
        )
    })
}

/// `GET /v1/headers/{height}`.
pub fn header(shared: &Shared, height: &str) -> Answer {
    let height = parse_height(height)?;
    ok(&api::Header::of(
        shared.chain.hash(),
        &by_height(height, shared, shared.store.header(height))?,
    ))
}

fn stored_block(shared: &Shared, height: u64) -> Result<Block, ApiError> {
    let bytes = by_height(height, shared, shared.store.block_bytes(height))?;
    Block::from_bytes(&bytes).map_err(ApiError::internal)
}

/// The ids of a block's transactions, and their signed hashes (the leaves
/// of the header's transaction root).
fn transaction_hashes(shared: &Shared, block: &Block) -> (Vec<api::Hex32>, Vec<api::Hex32>) {
    block
        .transactions
        .iter()
        .map(|t| {
            let id = t.id(&shared.chain);
            let signed = t.signed_hash(shared.chain.hash(), &id);
            (api::Hex32::from(id.0), api::Hex32::from(signed))
        })
        .unzip()
}

/// `GET /v1/blocks/{height}`: the header and the ids of the transactions.
/// Ids are hashes: they say nothing about who or what until someone
/// entitled reads the transaction.
pub fn block(shared: &Shared, height: &str) -> Answer {
    let height = parse_height(height)?;
    let block = stored_block(shared, height)?;
    let (transactions, signed_hashes) = transaction_hashes(shared, &block);
    ok(&api::BlockAnswer {
        header: api::Header::of(shared.chain.hash(), &block.header),
        transactions,
        signed_hashes,
    })
}

/// `GET /v1/blocks/{height}/transactions`: the ids of a block's transactions, in order.
pub fn block_transactions(shared: &Shared, height: &str) -> Answer {
    let height = parse_height(height)?;
    let block = stored_block(shared, height)?;
    let (transactions, signed_hashes) = transaction_hashes(shared, &block);
    ok(&api::BlockTransactions {
        height,
        time_ms: block.header.time.0,
        transactions,
        signed_hashes,
    })
}

/// The certificate of a height, decoded.
pub fn stored_certificate(shared: &Shared, height: u64) -> Result<CommitCertificate, ApiError> {
    let bytes = by_height(height, shared, shared.store.certificate_bytes(height))?;
    from_bytes(&bytes, CERTIFICATE_BYTES_MAX).map_err(ApiError::internal)
}

/// `GET /v1/certificates/{height}`: who signed a block's precommits (public).
pub fn certificate(shared: &Shared, height: &str) -> Answer {
    let height = parse_height(height)?;
    let c = stored_certificate(shared, height)?;
    ok(&api::Certificate {
        height: c.height,
        round: c.round,
        block: c.block.into(),
        bcs: hex::encode(to_bytes(&c)),
        signatures: c
            .signatures
            .iter()
            .map(|s| api::CertificateSigner {
                validator: s.validator.to_string(),
            })
            .collect(),
    })
}

/// A state value at `height` with everything a light client needs to check it.
pub fn prove(shared: &Shared, key: StateKey, height: u64) -> Result<ProvedValue, ApiError> {
    let (header, certificate) = certified_header(shared, height)?;
    let (value, proof) = shared.store.get_with_proof(&key, height)?;
    Ok(ProvedValue {
        header,
        certificate,
        key,
        value,
        proof,
    })
}

/// The header and certificate of `height`; the latest pair is kept decoded,
/// since nearly every proof is asked for at the latest height.
fn certified_header(
    shared: &Shared,
    height: u64,
) -> Result<(BlockHeader, CommitCertificate), ApiError> {
    if let Some((h, header, certificate)) = shared.latest_certified().as_ref()
        && *h == height
    {
        return Ok((header.clone(), certificate.clone()));
    }
    let header = by_height(height, shared, shared.store.header(height))?;
    let certificate = stored_certificate(shared, height)?;
    if height == shared.height() {
        *shared.latest_certified() = Some((height, header.clone(), certificate.clone()));
    }
    Ok((header, certificate))
}

/// `GET /v1/validators/{height}`: the set that certifies `height`, and the
/// validator-set record of `height - 1` proved against its certified header
/// (how a light client follows changes). Height 1's set is genesis's.
pub fn validators(shared: &Shared, height: &str) -> Answer {
    let height = parse_height(height)?;
    if height == 0 || height > shared.height() + 1 {
        return Err(ApiError::not_found(
            "no_such_block",
            format!(
                "validator sets are known for heights 1 to {}",
                shared.height() + 1
            ),
        ));
    }
    let previous = height - 1;
    let (record, proved) = if previous == 0 {
        // Genesis's record: the client has it from the genesis file, so no proof.
        let (value, _) = shared.store.get_with_proof(&StateKey::ValidatorSet, 0)?;
        let bytes = value.ok_or_else(|| ApiError::internal("no validator set in genesis state"))?;
        let record: ValidatorSetRecord =
            from_bytes(&bytes, PROVED_VALUE_BYTES_MAX).map_err(ApiError::internal)?;
        (record, None)
    } else {
        let proved = prove(shared, StateKey::ValidatorSet, previous)?;
        let bytes = proved
            .value
            .as_deref()
            .ok_or_else(|| ApiError::internal("no validator set in state"))?;
        let record: ValidatorSetRecord =
            from_bytes(bytes, PROVED_VALUE_BYTES_MAX).map_err(ApiError::internal)?;
        (record, Some(proved))
    };
    let set = record.at(height);
    ok(&api::Validators {
        height,
        validator_set: api::ValidatorSet::of(shared.chain.hash(), set),
        scheduled: record
            .scheduled
            .as_ref()
            .map(|(from, set)| api::ScheduledValidators {
                from_height: *from,
                validator_set: api::ValidatorSet::of(shared.chain.hash(), set),
            }),
        proved_record: proved.map(|p| hex::encode(to_bytes(&p))),
    })
}

/// `GET /v1/archive/{height}`: a block as an auditor replays it (block,
/// certificate, audit entries; hex of BCS `ArchivedBlock`). Whole blocks
/// name every patient's pseudonymous id, grants and releases, so they go
/// only to member nodes (node key: they hold every block already) and to
/// regulators' auditors (a regulator's admin key) — not to another
/// institution's staff or admins, nor to individuals.
pub fn archived(shared: &Shared, r: &Request) -> Answer {
    let reader = r.reader()?;
    let regulator_admin = reader.regulator
        && matches!(
            reader.signer,
            medledger_contracts::transaction::Signer::Institution(_)
        );
    if reader.node_of.is_none() && !regulator_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "whole blocks are read by member nodes (node key) and by regulators' auditors (a regulator's admin key)",
        ));
    }
    let height = parse_height(r.param(0))?;
    if height == 0 || height > shared.height() {
        return Err(ApiError::not_found(
            "no_such_block",
            format!(
                "no block at height {height} (latest is {})",
                shared.height()
            ),
        ));
    }
    let archived = shared
        .store
        .archived_block(height)
        .map_err(ApiError::internal)?;
    ok(&api::Archived {
        height,
        archived: hex::encode(to_bytes(&archived)),
    })
}

/// `GET /v1/receipts/{tx}`.
pub fn receipt(shared: &Shared, id: &str) -> Answer {
    let hash = parse_tx(id)?;
    match shared.store.receipt(&hash)? {
        Some((height, r)) => ok(&api::Receipt::new(height, &r)),
        None => {
            let waiting = shared.mempool().verified(&hash).is_some();
            Err(if waiting {
                ApiError::not_found(
                    "pending",
                    "the transaction is waiting in this node's mempool",
                )
            } else {
                ApiError::not_found(
                    "unknown_transaction",
                    "no committed transaction has this id",
                )
            })
        }
    }
}

/// A transaction (or grant, request…) id from a path segment.
pub fn parse_tx(id: &str) -> Result<TxHash, ApiError> {
    Hash32::from_hex(id).map(TxHash).map_err(|_| {
        ApiError::bad_request("bad_id", format!("an id is 64 hex characters, got {id:?}"))
    })
}
