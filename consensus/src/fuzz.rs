//! Entry points for the fuzz targets (`fuzz/`): each takes bytes as a peer
//! could send them and must never panic, whatever they are. Not used by the
//! node; public so the fuzz crate reaches the private codec and reassembly.

use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::engine::util::streaming::StreamContent;
use malachitebft_app_channel::app::streaming::StreamMessage;
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{PolkaCertificate, ValidatorProof};
use malachitebft_app_channel::app::types::sync::{Request, Response, Status};
use malachitebft_app_channel::app::types::{ProposedValue, SignedConsensusMsg};

use crate::codec::WireCodec;
use crate::context::{BlockPart, Ctx};
use crate::reassembly::{OPEN_STREAMS_MAX, Outcome, Piece, Streams};

/// Decodes `bytes` as message type `M`; whatever decodes must encode back
/// to exactly the same bytes (one encoding per message: nothing a relay
/// could alter without the signature or the id noticing).
fn round_trip<M>(bytes: &[u8]) -> bool
where
    WireCodec: Codec<M>,
{
    let Ok(message) = WireCodec.decode(Bytes::copy_from_slice(bytes)) else {
        return false;
    };
    let again = WireCodec
        .encode(&message)
        .unwrap_or_else(|_| panic!("a decoded message does not encode"));
    assert_eq!(&again[..], bytes, "decoding accepted a second encoding");
    true
}

/// Every message type of the consensus, liveness and sync protocols and the
/// write-ahead log, and the stored certificate: the first byte chooses
/// which, the rest is the message. True if it decoded.
pub fn consensus_message(data: &[u8]) -> bool {
    let Some((&kind, bytes)) = data.split_first() else {
        return false;
    };
    match kind % 11 {
        0 => round_trip::<BlockPart>(bytes),
        1 => round_trip::<SignedConsensusMsg<Ctx>>(bytes),
        2 => round_trip::<LivenessMsg<Ctx>>(bytes),
        3 => round_trip::<StreamMessage<BlockPart>>(bytes),
        4 => round_trip::<ValidatorProof<Ctx>>(bytes),
        5 => round_trip::<ProposedValue<Ctx>>(bytes),
        6 => round_trip::<PolkaCertificate<Ctx>>(bytes),
        7 => round_trip::<Status<Ctx>>(bytes),
        8 => round_trip::<Request<Ctx>>(bytes),
        9 => round_trip::<Response<Ctx>>(bytes),
        _ => {
            let Ok(certificate) = crate::codec::decode_certificate(bytes) else {
                return false;
            };
            assert_eq!(
                medledger_contracts::encoding::to_bytes(&certificate),
                bytes,
                "a certificate decoded from a second encoding"
            );
            true
        }
    }
}

/// A block limit small enough for the fuzzer to reach.
const FUZZ_BLOCK_BYTES_MAX: usize = 4096;

/// A sequence of proposal-stream messages from up to four publishers, as
/// gossip would deliver them: each is a publisher byte, a big-endian u16
/// length and a stream message. The reassembly must stay within its bounds
/// and hand over only streams of at most a block's bytes. True if a stream
/// was handed over.
pub fn proposal_stream(data: &[u8]) -> bool {
    let mut streams = Streams::new(FUZZ_BLOCK_BYTES_MAX);
    let mut complete = false;
    let mut rest = data;
    while let [publisher, high, low, tail @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (message, after) = tail.split_at(length);
        rest = after;
        let decoded: Result<StreamMessage<BlockPart>, _> =
            WireCodec.decode(Bytes::copy_from_slice(message));
        let Ok(message) = decoded else {
            continue;
        };
        let piece = match message.content {
            StreamContent::Data(part) => Piece::Part(part),
            StreamContent::Fin => Piece::End,
        };
        let publisher = format!("peer-{}", publisher % 4);
        let outcome = streams.receive(
            &publisher,
            message.stream_id.to_bytes(),
            message.sequence,
            piece,
            5,
        );
        if let Outcome::Complete(assembled) = outcome {
            assert!(assembled.bytes.len() <= FUZZ_BLOCK_BYTES_MAX + 1024);
            assert_eq!(assembled.publisher, publisher);
            complete = true;
        }
        assert!(streams.len() <= OPEN_STREAMS_MAX);
    }
    complete
}

/// Valid messages of every kind for [`consensus_message`], and one whole
/// proposal stream for [`proposal_stream`].
pub fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let messages = crate::codec::seed_messages();
    let address = crate::context::Address([7; 20]);
    let stream_id = Bytes::from([5u64.to_be_bytes(), 0u64.to_be_bytes()].concat());
    let parts = [
        StreamContent::Data(BlockPart::Init {
            height: 5,
            round: 0,
            valid_round: -1,
            proposer: address,
        }),
        StreamContent::Data(BlockPart::Chunk(vec![1; 100])),
        StreamContent::Data(BlockPart::Fin {
            block_id: crate::context::BlockId([9; 32]),
        }),
        StreamContent::Fin,
    ];
    let mut stream = Vec::new();
    for (sequence, content) in parts.into_iter().enumerate() {
        let message = StreamMessage::new(
            malachitebft_app_channel::app::streaming::StreamId::new(stream_id.clone()),
            sequence as u64,
            content,
        );
        let Ok(bytes) = WireCodec.encode(&message) else {
            continue;
        };
        stream.push(0);
        stream.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
        stream.extend_from_slice(&bytes);
    }
    (messages, vec![stream])
}
