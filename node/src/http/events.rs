//! Server-sent events: every committed block (public), and what concerns one
//! patient (signed, filtered like the patient's history), so the app shows
//! an access as it happens.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use medledger_api as api;
use medledger_contracts::encoding::Hash32;
use medledger_contracts::types::PatientId;
use tokio::sync::{broadcast, mpsc};
use warp::Reply;
use warp::http::StatusCode;
use warp::sse::Event;

use super::access::{Reader, ReaderError, Visibility, resolve_signer};
use super::{Answer, ApiError, Request};
use crate::shared::{CommitEvent, Shared};

/// Most event streams open at once on one node.
const STREAMS_MAX: usize = 1_000;
static OPEN_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// Counts an open stream; uncounts it when dropped.
struct StreamSlot;

impl StreamSlot {
    fn take() -> Result<Self, ApiError> {
        if OPEN_STREAMS.fetch_add(1, Ordering::SeqCst) >= STREAMS_MAX {
            OPEN_STREAMS.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams",
                format!("this node serves at most {STREAMS_MAX} event streams; retry later"),
            ));
        }
        Ok(Self)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An event stream fed by a task that follows commits; dropping it (the
/// client went away) ends the task at its next send.
struct Events {
    rx: mpsc::Receiver<Event>,
    _slot: StreamSlot,
}

impl Stream for Events {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|event| event.map(Ok))
    }
}

/// Follows commits, turning each into zero or more events with `render`;
/// `Err(last)` sends `last` and ends the stream.
fn follow(
    shared: &Shared,
    render: impl Fn(&CommitEvent) -> Result<Vec<Event>, Event> + Send + 'static,
) -> Result<Events, ApiError> {
    let slot = StreamSlot::take()?;
    let mut commits = shared.commits.subscribe();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let (events, end) = match commits.recv().await {
                Ok(commit) => match render(&commit) {
                    Ok(events) => (events, false),
                    Err(last) => (vec![last], true),
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => (
                    vec![event(
                        "lagged",
                        &api::LaggedEvent {
                            missed_blocks: missed,
                        },
                    )],
                    false,
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for event in events {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if end {
                return;
            }
        }
    });
    Ok(Events { rx, _slot: slot })
}

/// An event named `name` whose data is `data` as JSON (`docs/openapi.json`
/// names each event's schema).
fn event<T: serde::Serialize>(name: &'static str, data: &T) -> Event {
    // Invariant: the API's types are plain structs and enums with string
    // keys, which serde_json always serializes.
    #[allow(clippy::expect_used)]
    let text = serde_json::to_string(data).expect("API types always serialize");
    Event::default().event(name).data(text)
}

fn reply(events: Events) -> Answer {
    Ok(warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response())
}

/// `GET /v1/events/blocks`: one `block` event per commit (the header and transaction count).
pub fn blocks(shared: &Arc<Shared>) -> Answer {
    let hash = shared.chain.hash();
    reply(follow(shared, move |commit| {
        Ok(vec![event(
            "block",
            &api::BlockEvent {
                header: api::Header::of(hash, &commit.header),
                transactions: commit.transactions.len() as u64,
            },
        )])
    })?)
}

/// `GET /v1/events/patients/{patient}`: one `audit` event per audit entry the
/// reader may see (grants, requests, accesses, emergency accesses…).
///
/// The reader is checked again at every block against the committed state:
/// once their key is no longer the current one (rotated, or replaced by
/// recovery contacts), or they lose the right to follow this patient (a
/// delegation ended, a practitioner retired, an institution suspended), the
/// stream sends one `ended` event with the reason and closes, so a stolen
/// phone's open stream stops when the patient recovers their account.
pub fn patient(shared: &Arc<Shared>, r: &Request) -> Answer {
    let patient = Hash32::from_hex(r.param(0))
        .map(PatientId)
        .map_err(|_| ApiError::bad_request("bad_id", "a patient id is 64 hex characters"))?;
    let reader: Reader = r.reader()?.clone();
    let vis = Visibility::new(shared, &reader, patient)?;
    if !vis.whole && reader.institution.is_none() {
        return Err(ApiError::forbidden());
    }
    let owned = shared.clone();
    reply(follow(shared, move |commit| {
        let ended = |reason: &str| {
            event(
                "ended",
                &api::EndedEvent {
                    reason: reason.to_string(),
                },
            )
        };
        let reader = match resolve_signer(&owned, &reader.signer, &reader.key) {
            Ok(reader) => reader,
            // A passing storage error is not a lost right: the stream goes on
            // with the rights it had.
            Err(ReaderError::StateUnavailable(_)) => reader.clone(),
            Err(ReaderError::Refused(why)) => {
                return Err(ended(&format!(
                    "the reader's key is no longer accepted: {why}"
                )));
            }
        };
        // A passing storage error is not a lost right: the stream goes on.
        let may_follow = Visibility::new(&owned, &reader, patient)
            .map_or(true, |v| v.whole || reader.institution.is_some());
        if !may_follow {
            return Err(ended("the reader may no longer follow this patient"));
        }
        Ok(commit
            .audit
            .iter()
            .filter(|entry| entry.patient == patient)
            .filter(|entry| {
                Visibility::new(&owned, &reader, patient)
                    .and_then(|v| v.entry(entry))
                    .unwrap_or(false)
            })
            .map(|entry| event("audit", &api::AuditEntry::from(entry)).id(entry.index.to_string()))
            .collect())
    })?)
}
