//! Records routes: an access request and its release, and the relay through
//! which a practitioner's SDK fetches sealed records from the holder's
//! gateway. This node never holds the one-time key: it passes sealed chunks on.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::records::{AccessRecord, OwnAccessRecord};
use medledger_contracts::state::{Overlay, StateKey};
use medledger_transfer::{
    GATEWAY_MESSAGE_BYTES_MAX, GatewayRequest, GatewayResponse, SignedFetch, SignedOwnFetch,
};
use tokio::sync::mpsc;
use warp::Reply;
use warp::http::StatusCode;

use super::access::Visibility;
use super::chain::{parse_tx, prove};
use super::{Answer, ApiError, Request, ok};
use crate::gateway::Relay;
use crate::shared::Shared;

/// Largest fetch body: a signed fetch authorization in hex.
pub const FETCH_BODY_MAX: usize = 8 * 1024;

/// `GET /v1/accesses/{request}`: an access (request, decision, release).
pub fn access(shared: &Shared, r: &Request) -> Answer {
    let id = parse_tx(r.param(0))?;
    let reader = r.reader()?;
    let access: AccessRecord = Overlay::new(&shared.store)
        .get(&StateKey::Access(id))?
        .ok_or_else(ApiError::forbidden)?;
    if !Visibility::new(shared, reader, access.patient)?.access(&access) {
        return Err(ApiError::forbidden());
    }
    ok(&medledger_api::Access::new(&id, &access))
}

/// Frames: a big-endian u32 length, then BCS of a `GatewayResponse`.
/// `None` if the response is larger than a gateway message may be: it came
/// from the holder within `GATEWAY_MESSAGE_BYTES_MAX`, so that would be a
/// broken invariant, and no frame with a wrong length may go out.
fn frame(response: &GatewayResponse) -> Option<Bytes> {
    let body = to_bytes(response);
    if body.len() > GATEWAY_MESSAGE_BYTES_MAX {
        tracing::error!(
            bytes = body.len(),
            "a gateway response larger than a gateway message"
        );
        return None;
    }
    let length = u32::try_from(body.len()).ok()?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&body);
    Some(Bytes::from(out))
}

struct Frames {
    rx: mpsc::Receiver<Bytes>,
}

impl Stream for Frames {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

fn refusal_status(code: &str) -> StatusCode {
    match code {
        "already_served" | "key_change_pending" => StatusCode::CONFLICT,
        "busy" | "release_not_recorded" => StatusCode::SERVICE_UNAVAILABLE,
        "internal" | "source_unavailable" | "holder_refused" | "holder_unreachable" => {
            StatusCode::BAD_GATEWAY
        }
        _ => StatusCode::FORBIDDEN,
    }
}

/// What the practitioner is told of a holder's refusal: the code, if it is
/// one the protocol knows, and this node's own fixed words for it. Nothing
/// the holder wrote crosses: its text could carry what must not (a record
/// number in an error, say), whether by mistake or on purpose.
fn holder_refusal(code: &str) -> (&str, &'static str) {
    let message = match code {
        "not_a_member" => "this node is not an active member the holder recognises",
        "bad_authorization" => "the holder could not verify the signed fetch",
        "wrong_institution" => {
            "the practitioner is not of the institution whose node relayed the fetch"
        }
        "not_authorized" => "the ledger does not authorise this signer to fetch under this request",
        "key_change_pending" => {
            "a replacement of the patient's key is pending: their own records are not sent until it takes effect or is cancelled"
        }
        "already_served" => "this request was served already; make a new request",
        "grant_not_active" => {
            "what the access rests on no longer holds (a grant revoked or expired, an emergency access past its window or found unjustified, the practitioner or their institution no longer active)"
        }
        "licence_not_in_force" => {
            "the practitioner's licence is no longer in force (rule R4.14): suspended, revoked, expired or no longer binding this registration"
        }
        "too_many_resources" => "too many resources for one fetch; ask for fewer categories",
        "busy" => "the holder is busy; try again shortly",
        "holder_unreachable" => "the holder's gateway did not answer",
        "release_not_recorded" => {
            "the holder's release was not committed to the ledger, so nothing was sent; fetch again"
        }
        "unknown_transfer" => "the holder knows no such transfer",
        "out_of_order" => "chunks were asked for out of order",
        "source_unavailable" => "the holder could not read its records; ask again later",
        "internal" => "the holder failed; ask again later",
        _ => {
            return (
                "holder_refused",
                "the holder refused for a reason this node does not know",
            );
        }
    };
    (code, message)
}

/// The body of `POST /v1/records/fetch` (a `SignedFetch`) or
/// `/v1/records/own-fetch` (a `SignedOwnFetch`): the signed fetch it carries.
pub(crate) fn fetch_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: medledger_api::FetchBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected {{\"fetch\": \"<hex>\"}}: {e}"),
        )
    })?;
    let bytes = hex::decode(body.fetch.trim()).map_err(|e| {
        ApiError::bad_request(
            "bad_hex",
            format!(
                "`fetch` must be hex of BCS {}: {e}",
                std::any::type_name::<T>().rsplit("::").next().unwrap_or("")
            ),
        )
    })?;
    from_bytes(&bytes, FETCH_BODY_MAX)
        .map_err(|e| ApiError::bad_request("malformed", format!("`fetch` does not decode: {e}")))
}

/// `POST /v1/records/fetch`: relays a practitioner's signed fetch to the
/// holder's gateway and streams back the manifest and the sealed chunks as
/// frames. The practitioner (the request's signer) must be of this node's
/// institution and the one the fetch names.
pub async fn fetch(shared: &Shared, relay: Option<&Relay>, r: &Request) -> Answer {
    let reader = r.reader()?;
    let relay = relay.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_gateway",
            "this node runs no records gateway",
        )
    })?;
    let fetch: SignedFetch = fetch_body(&r.body)?;
    if reader.practitioner != Some(fetch.authorization.practitioner)
        || reader.institution.as_ref() != Some(&shared.institution)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the practitioner named in the fetch, at this node's institution, may relay it here",
        ));
    }
    let holder = fetch.authorization.holder.as_str().to_string();
    relay_transfer(relay, holder, GatewayRequest::Open(Box::new(fetch))).await
}

/// `POST /v1/records/own-fetch`: relays a patient's signed fetch of their
/// own records [R7.8] to the holder's gateway, as `fetch` does a
/// practitioner's; any member's node relays for a patient: the records
/// and the manifest's items (names, sizes, hashes) are sealed to the
/// patient's one-time key, so this node learns how many items there are
/// (as every member does from the release on the ledger) and nothing else.
/// The patient (the request's signer, with their own key) must be the one
/// the fetch names.
pub async fn own_fetch(relay: Option<&Relay>, r: &Request) -> Answer {
    let reader = r.reader()?;
    let relay = relay.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_gateway",
            "this node runs no records gateway",
        )
    })?;
    let fetch: SignedOwnFetch = fetch_body(&r.body)?;
    if reader.patient != Some(fetch.authorization.patient) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the patient named in the fetch, signing with their own key, may relay it",
        ));
    }
    let holder = fetch.authorization.holder.as_str().to_string();
    relay_transfer(relay, holder, GatewayRequest::OpenOwn(Box::new(fetch))).await
}

/// `GET /v1/own-accesses/{request}`: a patient's request for their own
/// records and its release, for the patient, a guardian or proxy, a
/// regulator and the holder.
pub fn own_access(shared: &Shared, r: &Request) -> Answer {
    let id = parse_tx(r.param(0))?;
    let reader = r.reader()?;
    let own: OwnAccessRecord = Overlay::new(&shared.store)
        .get(&StateKey::OwnAccess(id))?
        .ok_or_else(ApiError::forbidden)?;
    if !Visibility::new(shared, reader, own.patient)?.own_access(&own) {
        return Err(ApiError::forbidden());
    }
    // The proof at the latest height: a patient's SDK checks the release
    // with it rather than take this node's word (docs/records.md).
    let height = shared.height();
    let proved = if height == 0 {
        None
    } else {
        Some(hex::encode(to_bytes(&prove(
            shared,
            StateKey::OwnAccess(id),
            height,
        )?)))
    };
    ok(&medledger_api::OwnAccess::new(&id, &own, proved))
}

/// Opens a transfer at `holder` with `open` (a practitioner's or a
/// patient's signed fetch) and streams back the manifest and the sealed
/// chunks as frames.
async fn relay_transfer(relay: &Relay, holder: String, open: GatewayRequest) -> Answer {
    if !relay.knows(&holder) {
        return Err(ApiError::not_found(
            "unknown_holder",
            format!("this node knows no gateway for {holder}"),
        ));
    }
    let relay = relay.clone();
    // The holder answers `Wait` while its node has not reached the height
    // that committed the request; asked again for at most this long.
    let open_until = tokio::time::Instant::now() + Duration::from_secs(15);
    let first = loop {
        let answer = relay.request(&holder, open.clone()).await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "holder_unreachable",
                format!("the holder's gateway did not answer: {e}"),
            )
        })?;
        match answer {
            GatewayResponse::Wait { retry_ms } if tokio::time::Instant::now() < open_until => {
                let pause = u64::from(retry_ms).clamp(20, 1_000);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            GatewayResponse::Wait { .. } => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "holder_unreachable",
                    "the holder's node has not reached the block that committed the request",
                ));
            }
            other => break other,
        }
    };
    // The transfer's id and how many items its chunks carry: in clear for
    // a practitioner's, a count beside the sealed items for a patient's own.
    let (transfer, items) = match &first {
        GatewayResponse::Manifest(m) => (m.transfer, m.items.len()),
        GatewayResponse::SealedManifest {
            transfer,
            item_count,
            ..
        } => (*transfer, *item_count as usize),
        GatewayResponse::Refused { code, .. } => {
            let (code, message) = holder_refusal(code);
            let status = refusal_status(code);
            return Ok(warp::reply::with_status(
                warp::reply::json(&medledger_api::ErrorBody {
                    code: code.to_string(),
                    message: format!("the holder refused: {message}"),
                }),
                status,
            )
            .into_response());
        }
        GatewayResponse::Chunk(_) | GatewayResponse::Wait { .. } => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "holder_protocol",
                "the holder did not start with its manifest",
            ));
        }
    };
    // A few frames in flight: memory stays bounded by the chunk size.
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let first_frame = frame(&first)
        .ok_or_else(|| ApiError::internal("the holder's manifest does not fit a frame"))?;
    tokio::spawn(async move {
        if tx.send(first_frame).await.is_err() {
            return;
        }
        let mut remaining = items;
        let mut seq = 0u64;
        // The holder sends no content until its release is committed; it
        // answers `Wait` meanwhile, for at most its own bound (30 s): this
        // one is a backstop against a holder that never stops waiting.
        let wait_until = tokio::time::Instant::now() + Duration::from_secs(60);
        while remaining > 0 {
            let answer = relay
                .request(&holder, GatewayRequest::Chunk { transfer, seq })
                .await
                .unwrap_or_else(|e| GatewayResponse::Refused {
                    code: "holder_unreachable".into(),
                    message: e.to_string(),
                });
            let answer = match answer {
                GatewayResponse::Wait { retry_ms } if tokio::time::Instant::now() < wait_until => {
                    let pause = u64::from(retry_ms).clamp(20, 1_000);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue;
                }
                GatewayResponse::Wait { .. } => GatewayResponse::Refused {
                    code: "release_not_recorded".into(),
                    message: String::new(),
                },
                other => other,
            };
            let stop = match &answer {
                GatewayResponse::Chunk(chunk) => {
                    if chunk.last_of_item {
                        remaining -= 1;
                    }
                    false
                }
                _ => true,
            };
            // The holder's own words do not cross: only a known code, in
            // this node's words.
            let answer = match answer {
                GatewayResponse::Refused { code, .. } => {
                    let (code, message) = holder_refusal(&code);
                    GatewayResponse::Refused {
                        code: code.into(),
                        message: format!("the holder refused: {message}"),
                    }
                }
                other => other,
            };
            // A frame that cannot be written ends the stream: the
            // requester sees an incomplete transfer, never a wrong length.
            let Some(bytes) = frame(&answer) else { return };
            if tx.send(bytes).await.is_err() || stop {
                return;
            }
            seq += 1;
        }
    });
    Ok(warp::reply::with_header(
        warp::reply::stream(Frames { rx }),
        "content-type",
        "application/octet-stream",
    )
    .into_response())
}
