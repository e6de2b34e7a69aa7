//! Entry points for the fuzz targets (`fuzz/`): each takes bytes as a
//! client, a member's node or a peer's gateway could send them and must
//! never panic. Not used by the node; public so the fuzz crate reaches the
//! private parsers that the HTTP handlers and the gateway call.

use medledger_contracts::encoding::to_bytes;
use medledger_contracts::transaction::SignedTransaction;
use medledger_transfer::{
    GATEWAY_MESSAGE_BYTES_MAX, GATEWAY_REQUEST_BYTES_MAX, GatewayRequest, GatewayResponse,
};

use crate::gateway::transport::read_message;
use crate::http::fuzz_entry as http;

/// What the API does with a request before any state is read: the route
/// and query check, the Authorization header, and each body it decodes.
/// The first byte chooses which; the rest is the input. True if it was
/// taken whole (a body's transactions included).
pub fn http_input(data: &[u8]) -> bool {
    let Some((&kind, input)) = data.split_first() else {
        return false;
    };
    match kind % 6 {
        0 => http::submit_body(input).is_ok_and(|(_, bytes)| transaction(&bytes)),
        1 => http::submit_many_body(input).is_ok_and(|body| {
            assert!(!body.transactions.is_empty());
            assert!(body.transactions.len() <= medledger_api::SUBMIT_MANY_MAX);
            let decoded = body
                .transactions
                .iter()
                .filter(|text| hex::decode(text.trim()).is_ok_and(|bytes| transaction(&bytes)))
                .count();
            decoded == body.transactions.len()
        }),
        2 => http::gossip_body(input).is_ok_and(|batch| {
            batch.iter().filter(|bytes| transaction(bytes)).count() == batch.len()
        }),
        3 => {
            // Both kinds of signed fetch ride in the same body.
            let practitioner = http::fetch_body::<medledger_transfer::SignedFetch>(input).is_ok();
            let patient = http::fetch_body::<medledger_transfer::SignedOwnFetch>(input).is_ok();
            practitioner || patient
        }
        4 => http::authorization(input),
        _ => http::route_and_query(input),
    }
}

/// What admission does first with a transaction's bytes. True if they decode.
fn transaction(bytes: &[u8]) -> bool {
    let Ok(tx) = SignedTransaction::from_bytes(bytes) else {
        return false;
    };
    assert_eq!(
        tx.to_bytes(),
        bytes,
        "a transaction decoded from a second encoding"
    );
    true
}

/// A gateway message as a peer's node sends it: a big-endian u32 length and
/// BCS. The first byte chooses a request (what a holder reads) or a
/// response (what a requester's node reads). Whatever decodes must encode
/// back to the same bytes. True if it decoded.
pub fn gateway_message(data: &[u8]) -> bool {
    let Some((&kind, input)) = data.split_first() else {
        return false;
    };
    if kind % 2 == 0 {
        frame_round_trip::<GatewayRequest>(input, GATEWAY_REQUEST_BYTES_MAX)
    } else {
        frame_round_trip::<GatewayResponse>(input, GATEWAY_MESSAGE_BYTES_MAX)
    }
}

/// Reads one frame of `M` as the transport does; what decodes must encode
/// back to the bytes the frame carried.
fn frame_round_trip<M>(input: &[u8], max: usize) -> bool
where
    M: serde::de::DeserializeOwned + serde::Serialize,
{
    let mut io = futures::io::Cursor::new(input);
    let Ok(message) = futures::executor::block_on(read_message::<_, M>(&mut io, max)) else {
        return false;
    };
    assert_eq!(to_bytes(&message), payload(input));
    true
}

/// The bytes a frame that was read whole carries.
fn payload(frame: &[u8]) -> &[u8] {
    let length = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    &frame[4..4 + length]
}
