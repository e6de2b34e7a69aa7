//! The node's HTTP API, first routes: submit a transaction, node status,
//! headers and receipts. Every error is a JSON body with a stable `code` and
//! a `message` a developer can act on.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use medledger_contracts::Hash32;
use medledger_contracts::block::{Block, BlockHeader};
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::constants::{CERTIFICATE_BYTES_MAX, TRANSACTION_BYTES_MAX};
use medledger_contracts::encoding::from_bytes;
use medledger_contracts::records::{Outcome, Receipt};
use medledger_contracts::types::TxHash;
use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::mempool::Refusal;
use super::shared::{Origin, Shared};

/// Largest `POST /v1/tx` body: a hex transaction and a flag.
const SUBMIT_BODY_MAX: u64 = 2 * TRANSACTION_BYTES_MAX as u64 + 1024;
/// Largest gossip batch.
const GOSSIP_BODY_MAX: usize = 16 * 1024 * 1024;
/// Longest a client may wait for its transaction to commit.
const WAIT_MAX: Duration = Duration::from_secs(30);

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"code": code, "message": message.into()});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn ok(body: Value) -> Response {
    warp::reply::json(&body).into_response()
}

/// All routes.
pub fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with = {
        let shared = shared.clone();
        warp::any().map(move || shared.clone())
    };
    let submit = warp::path!("v1" / "tx")
        .and(warp::post())
        .and(warp::body::content_length_limit(SUBMIT_BODY_MAX))
        .and(warp::body::bytes())
        .and(with.clone())
        .then(submit);
    let gossip = warp::path!("v1" / "gossip")
        .and(warp::post())
        .and(warp::body::content_length_limit(GOSSIP_BODY_MAX as u64))
        .and(warp::body::bytes())
        .and(with.clone())
        .then(gossip);
    let status = warp::path!("v1" / "status")
        .and(warp::get())
        .and(with.clone())
        .map(status);
    let header = warp::path!("v1" / "headers" / u64)
        .and(warp::get())
        .and(with.clone())
        .map(header);
    let block_transactions = warp::path!("v1" / "blocks" / u64 / "transactions")
        .and(warp::get())
        .and(with.clone())
        .map(block_transactions);
    let certificate = warp::path!("v1" / "certificates" / u64)
        .and(warp::get())
        .and(with.clone())
        .map(certificate);
    let receipt = warp::path!("v1" / "receipts" / String)
        .and(warp::get())
        .and(with)
        .map(receipt);
    submit
        .or(gossip)
        .unify()
        .or(status)
        .unify()
        .or(header)
        .unify()
        .or(block_transactions)
        .unify()
        .or(certificate)
        .unify()
        .or(receipt)
        .unify()
        .recover(rejection)
        .unify()
}

async fn rejection(r: Rejection) -> Result<Response, Infallible> {
    Ok(if r.is_not_found() {
        error(StatusCode::NOT_FOUND, "not_found", "no such route")
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than this route accepts",
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        error(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header",
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    } else {
        error(StatusCode::BAD_REQUEST, "bad_request", format!("{r:?}"))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    /// Hex of the BCS-encoded signed transaction.
    transaction: String,
    /// Wait until the transaction commits and return its receipt.
    #[serde(default)]
    wait: bool,
    /// Check the transaction only once this node has committed this height
    /// (a client that just got a receipt from another node passes its
    /// height, so what it did there is visible here too).
    #[serde(default)]
    after_height: Option<u64>,
}

/// Longest a submission waits for this node to reach `after_height`.
const CATCH_UP_MAX: Duration = Duration::from_secs(10);

fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Duplicate(_) | Refusal::AlreadyCommitted(_) => StatusCode::CONFLICT,
        Refusal::SignerQuota(_) | Refusal::Full(_) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Invalid(_) | Refusal::WouldReject(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

async fn submit(body: Bytes, shared: Arc<Shared>) -> Response {
    let body: SubmitBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!(
                    "expected {{\"transaction\": \"<hex>\", \"wait\": bool, \"after_height\": u64}}: {e}"
                ),
            );
        }
    };
    let bytes = match hex::decode(body.transaction.trim()) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_hex",
                format!("`transaction` must be hex of the BCS-encoded signed transaction: {e}"),
            );
        }
    };
    if let Some(height) = body.after_height {
        tracing::debug!(
            after_height = height,
            at = shared.height(),
            "submission waits for height"
        );
        let deadline = tokio::time::Instant::now() + CATCH_UP_MAX;
        while shared.height() < height {
            if tokio::time::Instant::now() > deadline {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "behind",
                    format!(
                        "this node is at height {} and did not reach {height} within {} s; retry or use another node",
                        shared.height(),
                        CATCH_UP_MAX.as_secs()
                    ),
                );
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
            return error(
                refusal_status(&refusal),
                refusal.code(),
                refusal.to_string(),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    };
    if !body.wait {
        return ok(json!({"tx": id.0.to_hex(), "status": "accepted"}));
    }
    let waited = tokio::time::timeout(WAIT_MAX, async {
        loop {
            match commits.recv().await {
                Ok(event) if event.transactions.contains(&id) => return true,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if matches!(shared.store.receipt(&id), Ok(Some(_))) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    })
    .await;
    match (waited, shared.store.receipt(&id)) {
        (Ok(true), Ok(Some((height, receipt)))) => ok(receipt_json(height, &receipt)),
        _ => error(
            StatusCode::ACCEPTED,
            "not_yet_committed",
            format!(
                "transaction {} is accepted but not committed within {} s; ask GET /v1/receipts/{}",
                id.0.to_hex(),
                WAIT_MAX.as_secs(),
                id.0.to_hex()
            ),
        ),
    }
}

async fn gossip(body: Bytes, shared: Arc<Shared>) -> Response {
    let batch: Vec<Vec<u8>> = match from_bytes(&body, GOSSIP_BODY_MAX) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, "malformed", e.to_string()),
    };
    // Signature checks take a while for a big batch: off the async threads.
    let counted = tokio::task::spawn_blocking(move || {
        let mut accepted = 0usize;
        for tx in &batch {
            if shared.admit(tx, Origin::Peer).is_ok() {
                accepted += 1;
            }
        }
        (accepted, batch.len() - accepted)
    })
    .await;
    match counted {
        Ok((accepted, refused)) => ok(json!({"accepted": accepted, "refused": refused})),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
}

fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Applied => json!({"status": "applied"}),
        Outcome::Authorized => json!({"status": "authorized"}),
        Outcome::Denied(reason) => json!({"status": "denied", "reason": reason.to_string()}),
        Outcome::Rejected(r) => json!({"status": "rejected", "reason": r.to_string()}),
    }
}

fn receipt_json(height: u64, receipt: &Receipt) -> Value {
    json!({
        "tx": receipt.tx.0.to_hex(),
        "status": "committed",
        "height": height,
        "outcome": outcome_json(&receipt.outcome),
        "audit_indexes": receipt.audit_indexes,
    })
}

fn header_json(header: &BlockHeader) -> Value {
    json!({
        "hash": header.hash().to_hex(),
        "chain_id": header.chain_id.as_str(),
        "height": header.height,
        "time_ms": header.time.0,
        "previous_hash": header.previous_hash.to_hex(),
        "transaction_root": header.transaction_root.to_hex(),
        "state_root": header.state_root.to_hex(),
        "audit_root": header.audit_root.to_hex(),
        "audit_size": header.audit_size,
        "validator_set_hash": header.validator_set_hash.to_hex(),
        "proposer": header.proposer.as_str(),
    })
}

fn status(shared: Arc<Shared>) -> Response {
    let height = shared.height();
    let latest = match shared.store.header(height) {
        Ok(h) => h,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    };
    ok(json!({
        "chain_id": shared.chain.as_str(),
        "institution": shared.institution.as_str(),
        "validator": shared
            .validators(height + 1)
            .is_ok_and(|set| set.get(&shared.institution).is_some()),
        "height": height,
        "latest_block_hash": latest.as_ref().map(|h| h.hash().to_hex()),
        "state_root": latest.as_ref().map(|h| h.state_root.to_hex()),
        "audit_root": latest.as_ref().map(|h| h.audit_root.to_hex()),
        "audit_size": latest.as_ref().map_or(0, |h| h.audit_size),
        "round": shared.telemetry.round.load(Ordering::Relaxed),
        "peers": shared.telemetry.peers.load(Ordering::Relaxed),
        "mempool_size": shared.mempool().len(),
    }))
}

/// A record stored per block height, or the JSON error to answer instead.
fn by_height<T>(
    height: u64,
    shared: &Shared,
    found: Result<Option<T>, medledger_store::StoreError>,
) -> Result<T, Box<Response>> {
    match found {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "no_such_block",
            format!(
                "no block at height {height} (latest is {})",
                shared.height()
            ),
        ))),
        Err(e) => Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage",
            e.to_string(),
        ))),
    }
}

fn header(height: u64, shared: Arc<Shared>) -> Response {
    match by_height(height, &shared, shared.store.header(height)) {
        Ok(h) => ok(header_json(&h)),
        Err(response) => *response,
    }
}

/// The ids of a block's transactions, in order. Ids are hashes: they say
/// nothing about who or what until someone entitled reads the transaction.
fn block_transactions(height: u64, shared: Arc<Shared>) -> Response {
    let bytes = match by_height(height, &shared, shared.store.block_bytes(height)) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    match Block::from_bytes(&bytes) {
        Ok(block) => ok(json!({
            "height": height,
            "time_ms": block.header.time.0,
            "transactions": block
                .transactions
                .iter()
                .map(|t| t.transaction.id(&shared.chain).0.to_hex())
                .collect::<Vec<_>>(),
        })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}

/// A block's commit certificate: who signed its precommits (public).
fn certificate(height: u64, shared: Arc<Shared>) -> Response {
    let bytes = match by_height(height, &shared, shared.store.certificate_bytes(height)) {
        Ok(b) => b,
        Err(response) => return *response,
    };
    match from_bytes::<CommitCertificate>(&bytes, CERTIFICATE_BYTES_MAX) {
        Ok(c) => ok(json!({
            "height": c.height,
            "round": c.round,
            "block": c.block.to_hex(),
            "bcs": hex::encode(&bytes),
            "signatures": c.signatures.iter().map(|s| json!({
                "validator": s.validator.to_string(),
            })).collect::<Vec<_>>(),
        })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}

fn receipt(id: String, shared: Arc<Shared>) -> Response {
    let Ok(hash) = Hash32::from_hex(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_hex",
            "a transaction id is 64 hex characters",
        );
    };
    match shared.store.receipt(&TxHash(hash)) {
        Ok(Some((height, r))) => ok(receipt_json(height, &r)),
        Ok(None) => {
            let waiting = shared.mempool().verified(&TxHash(hash)).is_some();
            error(
                StatusCode::NOT_FOUND,
                if waiting {
                    "pending"
                } else {
                    "unknown_transaction"
                },
                if waiting {
                    "the transaction is waiting in this node's mempool"
                } else {
                    "no committed transaction has this id"
                },
            )
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string()),
    }
}
