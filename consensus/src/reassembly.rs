//! Reassembly of proposal streams, synchronous and pure: the parts of each
//! (publisher, stream) are buffered in whatever order they arrive, and a
//! stream is handed over once every part from its opening to its end is in
//! and its shape is right. The async driver only moves messages in and out.
//!
//! Rules:
//! 1. A stream is keyed by its publisher *and* its id: two peers' streams
//!    never mix, whatever ids they claim.
//! 2. A stream is complete when its end marker has arrived at sequence `n`
//!    and parts `0..n` all have: no gap, nothing at or past `n`. A part seen
//!    twice counts once (the first copy is kept).
//! 3. Its parts are one opening (`Init`, first), chunks, and one closing
//!    `Fin` naming the block id; its round and valid round are within
//!    Malachite's range and the valid round is before the round.
//! 4. A stream's id is its height and round (16 bytes, big-endian), for a
//!    height from the one in progress to two after it; any other is dropped
//!    at its first piece. A stream larger than a block (each part counted
//!    with [`PART_OVERHEAD_BYTES`] on top of its bytes) or of more than
//!    [`PARTS_PER_STREAM_MAX`] parts is dropped as soon as it is; at most
//!    [`STREAMS_PER_PUBLISHER_MAX`] streams per publisher and
//!    [`OPEN_STREAMS_MAX`] in all are buffered, the oldest dropped first. So
//!    what one publisher can make a node hold is bounded by
//!    `STREAMS_PER_PUBLISHER_MAX` blocks, and all of them by `OPEN_STREAMS_MAX`.
//!
//! Whether the publisher is the round's proposer's node, and whether the
//! block is valid, is judged afterwards by the driver.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use malachitebft_app_channel::app::types::core::Round;
use tracing::debug;

use crate::context::{Address, BlockId, BlockPart};

/// Streams of proposal parts buffered at once; past this the oldest is
/// dropped (a proposer sends one per round).
pub(crate) const OPEN_STREAMS_MAX: usize = 64;
/// Streams one publisher may have open: a faulty member cannot crowd out
/// the others' proposals.
pub(crate) const STREAMS_PER_PUBLISHER_MAX: usize = 4;
/// Bytes a stream may carry beyond a block's limit (its opening and
/// closing parts).
const FRAMING_BYTES: usize = 1024;
/// What each part counts toward a stream's size on top of its bytes, so
/// that empty parts are not free.
pub(crate) const PART_OVERHEAD_BYTES: usize = 64;
/// Most parts in one stream: an honest proposer sends a block of at most
/// 32 MiB in 256 KiB chunks, 130 parts with the opening and closing ones.
pub(crate) const PARTS_PER_STREAM_MAX: usize = 1024;
/// Heights after the one in progress whose streams are buffered.
const HEIGHTS_AHEAD_MAX: u64 = 2;

/// One message of a proposal stream as the network delivered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A part of the proposal.
    Part(BlockPart),
    /// The stream's end marker: no part has this sequence number or a later one.
    End,
}

/// A proposal whose parts are all in, not yet judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Assembled {
    /// The peer that published the stream.
    pub publisher: String,
    pub height: u64,
    pub round: Round,
    pub valid_round: Round,
    pub proposer: Address,
    /// The block's bytes, the chunks in order.
    pub bytes: Vec<u8>,
    /// The block id the closing part names (checked against the bytes later).
    pub claimed: BlockId,
}

/// Why a stream was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    /// It carried more than a block's bytes (rule 4).
    #[error("larger than a block")]
    TooLarge,
    /// A part at or past the end marker, or two end markers (rule 2).
    #[error("a part after its end")]
    PartAfterEnd,
    /// More parts than a stream may have (rule 4).
    #[error("more parts than a block needs")]
    TooManyParts,
    /// An id that is not a height and round, or a height this node does
    /// not expect proposals for (rule 4).
    #[error("a stream id for no height in progress or just ahead")]
    StreamId,
    /// Its first part is not an opening part (rule 3).
    #[error("no opening part")]
    NoOpening,
    /// A second opening part (rule 3).
    #[error("two opening parts")]
    TwoOpenings,
    /// No closing part with a block id, or a part after it (rule 3).
    #[error("no closing part naming the block, or a part after it")]
    NoClosing,
    /// A round Malachite cannot represent (rule 3).
    #[error("a round out of range")]
    RoundOutOfRange,
    /// A valid round not before the round (rule 3; Tendermint's vr < r: a
    /// re-proposal naming its own round or a later one would only dodge the
    /// fresh proposal's clock check).
    #[error("a valid round not before its round")]
    ValidRoundNotBefore,
}

/// What receiving one piece came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The stream waits for more pieces.
    Incomplete,
    /// The stream is complete and well formed (it is no longer buffered).
    Complete(Assembled),
    /// The stream was dropped (it is no longer buffered).
    Dropped(Malformed),
}

/// Proposal parts of one stream, by sequence number.
#[derive(Default)]
struct PartBuffer {
    parts: BTreeMap<u64, BlockPart>,
    end: Option<u64>,
    bytes: usize,
    /// Order in which streams were opened, to evict the oldest.
    opened: u64,
}

/// Every stream being received.
pub(crate) struct Streams {
    buffers: HashMap<(String, Bytes), PartBuffer>,
    opened: u64,
    block_bytes_max: usize,
}

impl Streams {
    /// No streams yet; a stream may carry at most `block_bytes_max` bytes
    /// of block.
    pub(crate) fn new(block_bytes_max: usize) -> Self {
        Self {
            buffers: HashMap::new(),
            opened: 0,
            block_bytes_max,
        }
    }

    /// Streams buffered now.
    pub(crate) fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Takes one piece of `publisher`'s stream `stream` at `sequence`,
    /// while `next_height` is the height in progress.
    pub(crate) fn receive(
        &mut self,
        publisher: &str,
        stream: Bytes,
        sequence: u64,
        piece: Piece,
        next_height: u64,
    ) -> Outcome {
        let key = (publisher.to_string(), stream);
        if !self.buffers.contains_key(&key) {
            let expected = next_height..=next_height.saturating_add(HEIGHTS_AHEAD_MAX);
            if !stream_height(&key.1).is_some_and(|h| expected.contains(&h)) {
                return Outcome::Dropped(Malformed::StreamId);
            }
            self.make_room(publisher);
            self.opened += 1;
            let opened = self.opened;
            self.buffers.insert(
                key.clone(),
                PartBuffer {
                    opened,
                    ..PartBuffer::default()
                },
            );
        }
        let Some(buffer) = self.buffers.get_mut(&key) else {
            return Outcome::Incomplete;
        };
        let verdict = match piece {
            Piece::End => match buffer.end {
                Some(end) if end == sequence => Ok(()),
                Some(_) => Err(Malformed::PartAfterEnd),
                None if buffer
                    .parts
                    .last_key_value()
                    .is_some_and(|(s, _)| *s >= sequence) =>
                {
                    Err(Malformed::PartAfterEnd)
                }
                None => {
                    buffer.end = Some(sequence);
                    Ok(())
                }
            },
            Piece::Part(_) if buffer.end.is_some_and(|end| sequence >= end) => {
                Err(Malformed::PartAfterEnd)
            }
            // A copy of a part already held: the first one stands.
            Piece::Part(_) if buffer.parts.contains_key(&sequence) => Ok(()),
            Piece::Part(part) => {
                buffer.bytes += PART_OVERHEAD_BYTES
                    + match &part {
                        BlockPart::Chunk(c) => c.len(),
                        _ => 0,
                    };
                if buffer.parts.len() >= PARTS_PER_STREAM_MAX {
                    Err(Malformed::TooManyParts)
                } else if buffer.bytes > self.block_bytes_max + FRAMING_BYTES {
                    Err(Malformed::TooLarge)
                } else {
                    buffer.parts.insert(sequence, part);
                    Ok(())
                }
            }
        };
        if let Err(malformed) = verdict {
            self.buffers.remove(&key);
            return Outcome::Dropped(malformed);
        }
        // Sequences are distinct and all below the end: as many as the end's
        // sequence means every one of 0..end is in.
        let complete = buffer
            .end
            .is_some_and(|end| buffer.parts.len() as u64 == end);
        if !complete {
            return Outcome::Incomplete;
        }
        let Some(buffer) = self.buffers.remove(&key) else {
            return Outcome::Incomplete;
        };
        match assemble(key.0, buffer.parts) {
            Ok(assembled) => Outcome::Complete(assembled),
            Err(malformed) => Outcome::Dropped(malformed),
        }
    }

    /// Forgets every stream of a height at or below `height` (the stream id
    /// starts with the height, big-endian: see the driver's `stream_id`).
    pub(crate) fn retain_heights_above(&mut self, height: u64) {
        self.buffers
            .retain(|(_, stream), _| stream_height(stream).is_some_and(|h| h > height));
    }

    /// Drops the oldest stream of `publisher` if it has too many open, and
    /// the oldest of all if too many are open (rule 4).
    fn make_room(&mut self, publisher: &str) {
        let oldest = |buffers: &HashMap<(String, Bytes), PartBuffer>, of: Option<&str>| {
            buffers
                .iter()
                .filter(|((p, _), _)| of.is_none_or(|of| p == of))
                .min_by_key(|(_, b)| b.opened)
                .map(|(k, _)| k.clone())
        };
        let of_publisher = self.buffers.keys().filter(|(p, _)| p == publisher).count();
        if of_publisher >= STREAMS_PER_PUBLISHER_MAX
            && let Some(key) = oldest(&self.buffers, Some(publisher))
        {
            debug!(%publisher, "too many open proposal streams from one peer; oldest dropped");
            self.buffers.remove(&key);
        }
        if self.buffers.len() >= OPEN_STREAMS_MAX
            && let Some(key) = oldest(&self.buffers, None)
        {
            debug!("too many open proposal streams; oldest dropped");
            self.buffers.remove(&key);
        }
    }
}

/// The height a stream id names: its first 8 bytes, big-endian, of 16
/// (height, then round; the driver's `stream_id`). `None` for any other shape.
fn stream_height(stream: &Bytes) -> Option<u64> {
    if stream.len() != 16 {
        return None;
    }
    <[u8; 8]>::try_from(stream.get(..8)?)
        .ok()
        .map(u64::from_be_bytes)
}

/// A complete stream's parts, in sequence order, as a proposal (rule 3).
fn assemble(publisher: String, parts: BTreeMap<u64, BlockPart>) -> Result<Assembled, Malformed> {
    let mut parts = parts.into_values();
    let Some(BlockPart::Init {
        height,
        round,
        valid_round,
        proposer,
    }) = parts.next()
    else {
        return Err(Malformed::NoOpening);
    };
    let mut bytes = Vec::new();
    let mut claimed = None;
    for part in parts {
        match part {
            BlockPart::Chunk(_) | BlockPart::Fin { .. } if claimed.is_some() => {
                return Err(Malformed::NoClosing);
            }
            BlockPart::Chunk(c) => bytes.extend_from_slice(&c),
            BlockPart::Fin { block_id } => claimed = Some(block_id),
            BlockPart::Init { .. } => return Err(Malformed::TwoOpenings),
        }
    }
    let claimed = claimed.ok_or(Malformed::NoClosing)?;
    // Malachite's conversion panics on rounds above u32::MAX: check first.
    let in_range = |r: i64| (-1..=i64::from(u32::MAX)).contains(&r);
    if !in_range(round) || !in_range(valid_round) {
        return Err(Malformed::RoundOutOfRange);
    }
    if valid_round >= round {
        return Err(Malformed::ValidRoundNotBefore);
    }
    Ok(Assembled {
        publisher,
        height,
        round: Round::from(round),
        valid_round: Round::from(valid_round),
        proposer,
        bytes,
        claimed,
    })
}

#[cfg(test)]
mod tests {
    use medledger_contracts::crypto::SecretKey;
    use proptest::prelude::*;

    use super::*;
    use crate::signing::address_of;

    const BLOCK_MAX: usize = 4096;

    fn proposer() -> Address {
        address_of(
            medledger_contracts::encoding::HashFunction::Sha256,
            &SecretKey::from_seed([1; 32]).public_key(),
        )
    }

    fn stream_of(height: u64, round: i64) -> Bytes {
        let mut id = height.to_be_bytes().to_vec();
        id.extend_from_slice(&round.to_be_bytes());
        Bytes::from(id)
    }

    /// The pieces a proposer sends for `block` (sequence, piece), in order.
    fn pieces(block: &[u8], chunk: usize, round: i64, valid_round: i64) -> Vec<(u64, Piece)> {
        let mut parts = vec![BlockPart::Init {
            height: 5,
            round,
            valid_round,
            proposer: proposer(),
        }];
        parts.extend(
            block
                .chunks(chunk.max(1))
                .map(|c| BlockPart::Chunk(c.to_vec())),
        );
        parts.push(BlockPart::Fin {
            block_id: BlockId([7; 32]),
        });
        let mut out: Vec<(u64, Piece)> = parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as u64, Piece::Part(p)))
            .collect();
        out.push((out.len() as u64, Piece::End));
        out
    }

    /// The height in progress in these tests.
    const NEXT: u64 = 5;

    fn feed(
        streams: &mut Streams,
        publisher: &str,
        stream: &Bytes,
        pieces: &[(u64, Piece)],
    ) -> Vec<Outcome> {
        pieces
            .iter()
            .map(|(s, p)| streams.receive(publisher, stream.clone(), *s, p.clone(), NEXT))
            .collect()
    }

    fn completed(outcomes: &[Outcome]) -> Vec<Assembled> {
        outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Complete(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    proptest! {
        /// Rule 2: in any order, with any parts repeated, a stream completes
        /// with the block's bytes, and nothing is dropped. (Copies arriving
        /// after it completed start a new stream, which completes again
        /// only if every piece is copied: the driver knows the block by then.)
        #[test]
        fn any_order_and_duplicates_give_the_block(
            block in proptest::collection::vec(any::<u8>(), 0..2_000),
            chunk in 64usize..700,
            order in any::<u64>(),
            repeats in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut sent = pieces(&block, chunk, 0, -1);
            let copies: Vec<_> = repeats.iter().map(|i| sent[i.index(sent.len())].clone()).collect();
            sent.extend(copies);
            // A seeded shuffle.
            let mut state = order | 1;
            for i in (1..sent.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                sent.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
            }
            let mut streams = Streams::new(BLOCK_MAX);
            let outcomes = feed(&mut streams, "peer-a", &stream_of(5, 0), &sent);
            prop_assert!(!outcomes.iter().any(|o| matches!(o, Outcome::Dropped(_))), "{outcomes:?}");
            let done = completed(&outcomes);
            prop_assert!(!done.is_empty());
            for d in &done {
                prop_assert_eq!(&d.bytes, &block);
                prop_assert_eq!(d.height, 5);
            }
        }

        /// Rule 2: a stream missing any one piece never completes.
        #[test]
        fn a_missing_piece_means_no_block(
            block in proptest::collection::vec(any::<u8>(), 1..1_000),
            chunk in 32usize..300,
            missing in any::<prop::sample::Index>(),
        ) {
            let mut sent = pieces(&block, chunk, 0, -1);
            sent.remove(missing.index(sent.len()));
            let mut streams = Streams::new(BLOCK_MAX);
            let outcomes = feed(&mut streams, "peer-a", &stream_of(5, 0), &sent);
            prop_assert!(completed(&outcomes).is_empty());
        }
    }

    /// Rule 1: two publishers using the same stream id do not mix; each
    /// stream completes with its own publisher's bytes.
    #[test]
    fn streams_of_different_publishers_never_mix() {
        let mut streams = Streams::new(BLOCK_MAX);
        let stream = stream_of(5, 0);
        let a = pieces(b"block of a", 4, 0, -1);
        let b = pieces(b"block of b, longer", 4, 0, -1);
        let mut outcomes = Vec::new();
        for i in 0..a.len().max(b.len()) {
            if let Some((s, p)) = a.get(i) {
                outcomes.push(streams.receive("peer-a", stream.clone(), *s, p.clone(), NEXT));
            }
            if let Some((s, p)) = b.get(i) {
                outcomes.push(streams.receive("peer-b", stream.clone(), *s, p.clone(), NEXT));
            }
        }
        let done = completed(&outcomes);
        assert_eq!(done.len(), 2);
        let of = |p: &str| {
            done.iter()
                .find(|d| d.publisher == p)
                .unwrap()
                .bytes
                .clone()
        };
        assert_eq!(of("peer-a"), b"block of a");
        assert_eq!(of("peer-b"), b"block of b, longer");
    }

    /// Rounds interleaved: the streams of two rounds of one publisher
    /// complete independently.
    #[test]
    fn interleaved_rounds_complete_independently() {
        let mut streams = Streams::new(BLOCK_MAX);
        let r0 = pieces(b"round zero", 3, 0, -1);
        let r1 = pieces(b"round one!", 3, 1, 0);
        let mut done = Vec::new();
        for (x, y) in r0.iter().zip(&r1) {
            done.push(streams.receive("p", stream_of(5, 0), x.0, x.1.clone(), NEXT));
            done.push(streams.receive("p", stream_of(5, 1), y.0, y.1.clone(), NEXT));
        }
        let done = completed(&done);
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].bytes, b"round zero");
        assert_eq!(done[1].bytes, b"round one!");
        assert_eq!(done[1].valid_round, Round::from(0i64));
        assert_eq!(streams.len(), 0);
    }

    /// Rule 4: more than a block's bytes drops the stream at once.
    #[test]
    fn an_oversized_stream_is_dropped() {
        let mut streams = Streams::new(BLOCK_MAX);
        let sent = pieces(&vec![0u8; BLOCK_MAX + 2 * FRAMING_BYTES], 512, 0, -1);
        let outcomes = feed(&mut streams, "p", &stream_of(5, 0), &sent);
        assert!(outcomes.contains(&Outcome::Dropped(Malformed::TooLarge)));
        assert!(completed(&outcomes).is_empty());
    }

    /// Rules 2 and 3: each malformed shape is dropped and named.
    #[test]
    fn malformed_streams_are_dropped_with_their_reason() {
        let fin = || BlockPart::Fin {
            block_id: BlockId([7; 32]),
        };
        let init = |round, valid_round| BlockPart::Init {
            height: 5,
            round,
            valid_round,
            proposer: proposer(),
        };
        let chunk = || BlockPart::Chunk(b"x".to_vec());
        let cases: Vec<(Vec<BlockPart>, Malformed)> = vec![
            (vec![chunk(), fin()], Malformed::NoOpening),
            (
                vec![init(0, -1), init(0, -1), fin()],
                Malformed::TwoOpenings,
            ),
            (vec![init(0, -1), chunk()], Malformed::NoClosing),
            (vec![init(0, -1), fin(), chunk()], Malformed::NoClosing),
            (
                vec![init(i64::from(u32::MAX) + 1, -1), fin()],
                Malformed::RoundOutOfRange,
            ),
            (vec![init(1, -2), fin()], Malformed::RoundOutOfRange),
            (vec![init(1, 1), fin()], Malformed::ValidRoundNotBefore),
            (vec![init(1, 2), fin()], Malformed::ValidRoundNotBefore),
        ];
        for (parts, reason) in cases {
            let mut streams = Streams::new(BLOCK_MAX);
            let mut sent: Vec<(u64, Piece)> = parts
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i as u64, Piece::Part(p)))
                .collect();
            sent.push((sent.len() as u64, Piece::End));
            let outcomes = feed(&mut streams, "p", &stream_of(5, 0), &sent);
            assert_eq!(outcomes.last(), Some(&Outcome::Dropped(reason)), "{reason}");
            assert_eq!(streams.len(), 0);
        }
        // A part at or past the end, either before or after the end arrives.
        let mut streams = Streams::new(BLOCK_MAX);
        let s = stream_of(5, 0);
        streams.receive("p", s.clone(), 0, Piece::Part(init(0, -1)), NEXT);
        streams.receive("p", s.clone(), 9, Piece::Part(chunk()), NEXT);
        assert_eq!(
            streams.receive("p", s.clone(), 2, Piece::End, NEXT),
            Outcome::Dropped(Malformed::PartAfterEnd)
        );
        streams.receive("p", s.clone(), 0, Piece::Part(init(0, -1)), NEXT);
        streams.receive("p", s.clone(), 3, Piece::End, NEXT);
        assert_eq!(
            streams.receive("p", s.clone(), 3, Piece::Part(chunk()), NEXT),
            Outcome::Dropped(Malformed::PartAfterEnd)
        );
        streams.receive("p", s.clone(), 3, Piece::End, NEXT);
        assert_eq!(
            streams.receive("p", s, 4, Piece::End, NEXT),
            Outcome::Dropped(Malformed::PartAfterEnd)
        );
    }

    /// Rule 4: a publisher opening many streams evicts only its own oldest;
    /// past the global limit the oldest of all goes.
    #[test]
    fn one_publisher_cannot_crowd_out_the_others() {
        let mut streams = Streams::new(BLOCK_MAX);
        let honest = pieces(b"honest", 2, 0, -1);
        streams.receive(
            "honest",
            stream_of(5, 0),
            honest[0].0,
            honest[0].1.clone(),
            NEXT,
        );
        for round in 0..100 {
            streams.receive(
                "flooder",
                stream_of(5, round),
                0,
                Piece::Part(BlockPart::Chunk(vec![1])),
                NEXT,
            );
        }
        assert_eq!(streams.len(), 1 + STREAMS_PER_PUBLISHER_MAX);
        let rest = feed(&mut streams, "honest", &stream_of(5, 0), &honest[1..]);
        assert_eq!(completed(&rest).len(), 1);

        let mut streams = Streams::new(BLOCK_MAX);
        for peer in 0..OPEN_STREAMS_MAX + 10 {
            streams.receive(
                &format!("peer-{peer}"),
                stream_of(5, 0),
                0,
                Piece::Part(BlockPart::Chunk(vec![1])),
                NEXT,
            );
        }
        assert_eq!(streams.len(), OPEN_STREAMS_MAX);
    }

    /// Streams of committed heights are forgotten; later ones stay.
    #[test]
    fn committed_heights_streams_are_forgotten() {
        let mut streams = Streams::new(BLOCK_MAX);
        for height in NEXT..=NEXT + 2 {
            let piece = Piece::Part(BlockPart::Chunk(vec![1]));
            streams.receive("p", stream_of(height, 0), 0, piece, NEXT);
        }
        assert_eq!(streams.len(), 3);
        streams.retain_heights_above(NEXT);
        assert_eq!(streams.len(), 2);
    }

    /// Rule 4: a stream for a committed height, a height too far ahead, or
    /// with an id that is not a height and round is refused at its first
    /// piece and buffers nothing.
    #[test]
    fn streams_for_unexpected_heights_or_ids_buffer_nothing() {
        let mut streams = Streams::new(BLOCK_MAX);
        let piece = || Piece::Part(BlockPart::Chunk(vec![1]));
        for stream in [
            stream_of(NEXT - 1, 0),
            stream_of(NEXT + 3, 0),
            stream_of(u64::MAX, 0),
            Bytes::from_static(b"short"),
            Bytes::from(vec![0u8; 17]),
        ] {
            assert_eq!(
                streams.receive("p", stream, 0, piece(), NEXT),
                Outcome::Dropped(Malformed::StreamId)
            );
        }
        assert_eq!(streams.len(), 0);
    }

    /// Rule 4: empty parts are not free — a publisher sending many of them
    /// is cut off by the part limit (and each part's overhead), so what it
    /// can make a node hold stays bounded.
    #[test]
    fn a_flood_of_empty_parts_is_bounded() {
        let mut streams = Streams::new(32 * 1024 * 1024);
        let mut dropped = None;
        for sequence in 0..(PARTS_PER_STREAM_MAX as u64 + 10) {
            let piece = Piece::Part(BlockPart::Chunk(Vec::new()));
            if let Outcome::Dropped(why) =
                streams.receive("p", stream_of(NEXT, 0), sequence, piece, NEXT)
            {
                dropped = Some((sequence, why));
                break;
            }
        }
        assert_eq!(
            dropped,
            Some((PARTS_PER_STREAM_MAX as u64, Malformed::TooManyParts))
        );
        // With a small block limit, the overhead alone ends the stream first.
        let mut streams = Streams::new(BLOCK_MAX);
        let outcomes: Vec<_> = (0..200u64)
            .map(|s| {
                streams.receive(
                    "p",
                    stream_of(NEXT, 0),
                    s,
                    Piece::Part(BlockPart::Chunk(Vec::new())),
                    NEXT,
                )
            })
            .collect();
        assert!(outcomes.contains(&Outcome::Dropped(Malformed::TooLarge)));
    }
}
