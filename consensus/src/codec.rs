//! Wire and WAL encodings of Malachite's messages: each is mirrored by a
//! plain serde type and written as BCS, decoded strictly with a size bound.
//! Certificates use `medledger_contracts::certificate::CommitCertificate`,
//! the same bytes the node stores and light clients verify.

use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::engine::util::streaming::StreamContent;
use malachitebft_app_channel::app::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal,
    PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedMessage, ValidatorProof, Validity, VoteType,
};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use malachitebft_sync::{ValueRequest, ValueResponse};
use medledger_contracts::Hash32;
use medledger_contracts::certificate::{self as cert, ConsensusAddress};
use medledger_contracts::constants::{BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX};
use medledger_contracts::crypto::Signature;
use medledger_contracts::encoding::BoundedVec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::{Address, BlockId, BlockPart, Ctx, Height, Proposal, Vote};

/// Largest consensus or sync message decoded: a sync response may carry
/// several blocks.
const MESSAGE_BYTES_MAX: usize = 4 * BLOCK_BYTES_MAX;

/// Why bytes from a peer or the WAL were refused.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Not canonical BCS of the expected type, or too large.
    #[error("undecodable {what}: {why}")]
    Decode {
        /// The message type.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// Decoded but not meaningful (e.g. a signature of the wrong length).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, CodecError> {
    medledger_contracts::encoding::from_bytes(bytes, MESSAGE_BYTES_MAX).map_err(|e| {
        CodecError::Decode {
            what,
            why: e.to_string(),
        }
    })
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(medledger_contracts::encoding::to_bytes(value))
}

/// A round from the wire. Malachite's own conversion panics above
/// `u32::MAX`, so a peer's number is range-checked first.
fn round_from(value: i64) -> Result<Round, CodecError> {
    if value < -1 || value > i64::from(u32::MAX) {
        return Err(CodecError::Invalid("round out of range"));
    }
    Ok(Round::from(value))
}

#[derive(Serialize, Deserialize)]
struct WireVote {
    precommit: bool,
    height: u64,
    round: i64,
    block: Option<BlockId>,
    validator: Address,
}

impl From<&Vote> for WireVote {
    fn from(v: &Vote) -> Self {
        Self {
            precommit: v.vote_type == VoteType::Precommit,
            height: v.height.0,
            round: v.round.as_i64(),
            block: match v.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(id),
            },
            validator: v.validator,
        }
    }
}

impl TryFrom<WireVote> for Vote {
    type Error = CodecError;
    fn try_from(w: WireVote) -> Result<Self, CodecError> {
        Ok(Vote {
            vote_type: if w.precommit {
                VoteType::Precommit
            } else {
                VoteType::Prevote
            },
            height: Height(w.height),
            round: round_from(w.round)?,
            value: w.block.map_or(NilOrVal::Nil, NilOrVal::Val),
            validator: w.validator,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct WireProposal {
    height: u64,
    round: i64,
    block: BlockId,
    pol_round: i64,
    proposer: Address,
}

#[derive(Serialize, Deserialize)]
struct WireSigned<T> {
    message: T,
    signature: Signature,
}

/// Consensus signatures are the ledger's own (`LedgerSigning`): carried
/// as they are, tag and all, so a message has one encoding on the wire;
/// whether its scheme is the chain's is the verifier's question.
fn sig_out(s: &Signature) -> Signature {
    *s
}

fn sig_in(s: &Signature) -> Result<Signature, CodecError> {
    Ok(*s)
}

fn signed_vote_out(v: &SignedMessage<Ctx, Vote>) -> WireSigned<WireVote> {
    WireSigned {
        message: WireVote::from(&v.message),
        signature: sig_out(&v.signature),
    }
}

fn signed_vote_in(w: WireSigned<WireVote>) -> Result<SignedMessage<Ctx, Vote>, CodecError> {
    Ok(SignedMessage::new(
        Vote::try_from(w.message)?,
        sig_in(&w.signature)?,
    ))
}

#[derive(Serialize, Deserialize)]
enum WireConsensusMsg {
    Vote(WireSigned<WireVote>),
    Proposal(WireSigned<WireProposal>),
}

#[derive(Serialize, Deserialize)]
struct WireSignatureBy {
    validator: Address,
    signature: Signature,
}

#[derive(Serialize, Deserialize)]
struct WirePolka {
    height: u64,
    round: i64,
    block: BlockId,
    signatures: Vec<WireSignatureBy>,
}

#[derive(Serialize, Deserialize)]
struct WireRoundSignature {
    precommit: bool,
    block: Option<BlockId>,
    validator: Address,
    signature: Signature,
}

#[derive(Serialize, Deserialize)]
struct WireRoundCertificate {
    height: u64,
    round: i64,
    skip: bool,
    signatures: Vec<WireRoundSignature>,
}

#[derive(Serialize, Deserialize)]
enum WireLiveness {
    Vote(WireSigned<WireVote>),
    Polka(WirePolka),
    Skip(WireRoundCertificate),
}

#[derive(Serialize, Deserialize)]
struct WireStreamMessage {
    stream_id: Vec<u8>,
    sequence: u64,
    /// `None` closes the stream.
    content: Option<BlockPart>,
}

#[derive(Serialize, Deserialize)]
struct WireValidatorProof {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    signature: Signature,
}

#[derive(Serialize, Deserialize)]
struct WireProposedValue {
    height: u64,
    round: i64,
    valid_round: i64,
    proposer: Address,
    block: BlockId,
    valid: bool,
}

#[derive(Serialize, Deserialize)]
struct WireStatus {
    peer_id: Vec<u8>,
    tip_height: u64,
    history_min_height: u64,
}

#[derive(Serialize, Deserialize)]
struct WireRequest {
    from: u64,
    to: u64,
}

#[derive(Serialize, Deserialize)]
struct WireDecided {
    block: Vec<u8>,
    certificate: cert::CommitCertificate,
}

#[derive(Serialize, Deserialize)]
struct WireResponse {
    start_height: u64,
    values: Vec<WireDecided>,
}

fn polka_out(p: &PolkaCertificate<Ctx>) -> WirePolka {
    WirePolka {
        height: p.height.0,
        round: p.round.as_i64(),
        block: p.value_id,
        signatures: p
            .polka_signatures
            .iter()
            .map(|s| WireSignatureBy {
                validator: s.address,
                signature: sig_out(&s.signature),
            })
            .collect(),
    }
}

fn polka_in(w: WirePolka) -> Result<PolkaCertificate<Ctx>, CodecError> {
    Ok(PolkaCertificate {
        height: Height(w.height),
        round: round_from(w.round)?,
        value_id: w.block,
        polka_signatures: w
            .signatures
            .into_iter()
            .map(|s| Ok(PolkaSignature::new(s.validator, sig_in(&s.signature)?)))
            .collect::<Result<_, CodecError>>()?,
    })
}

/// A decided block's certificate in medledger's form (extensions are never
/// used, so none are lost).
pub fn certificate_to_contract(
    c: &CommitCertificate<Ctx>,
) -> Result<cert::CommitCertificate, CodecError> {
    let signatures = c
        .commit_signatures
        .iter()
        .map(|s| cert::CommitSignature {
            validator: ConsensusAddress(s.address.0),
            signature: sig_out(&s.signature),
        })
        .collect();
    Ok(cert::CommitCertificate {
        height: c.height.0,
        round: c.round.as_i64(),
        block: Hash32(c.value_id.0),
        signatures: BoundedVec::new(signatures)
            .map_err(|_| CodecError::Invalid("certificate: too many signatures"))?,
    })
}

fn extended_out(c: &ExtendedCommitCertificate<Ctx>) -> Result<cert::CommitCertificate, CodecError> {
    certificate_to_contract(&c.trim_vote_extensions())
}

/// A stored certificate as Malachite's sync wants it.
pub fn certificate_from_contract(
    c: &cert::CommitCertificate,
) -> Result<ExtendedCommitCertificate<Ctx>, CodecError> {
    Ok(ExtendedCommitCertificate {
        height: Height(c.height),
        round: round_from(c.round)?,
        value_id: BlockId(c.block.0),
        commit_signatures: c
            .signatures
            .iter()
            .map(|s| {
                Ok(ExtendedCommitSignature::new(
                    Address(s.validator.0),
                    sig_in(&s.signature)?,
                    None,
                ))
            })
            .collect::<Result<_, CodecError>>()?,
    })
}

/// Decodes a stored certificate.
pub fn decode_certificate(bytes: &[u8]) -> Result<cert::CommitCertificate, CodecError> {
    medledger_contracts::encoding::from_bytes(bytes, CERTIFICATE_BYTES_MAX).map_err(|e| {
        CodecError::Decode {
            what: "certificate",
            why: e.to_string(),
        }
    })
}

/// The one codec for network, sync and WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct WireCodec;

impl Codec<BlockPart> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<BlockPart, CodecError> {
        decode(&bytes, "block part")
    }
    fn encode(&self, msg: &BlockPart) -> Result<Bytes, CodecError> {
        Ok(encode(msg))
    }
}

impl Codec<SignedConsensusMsg<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<Ctx>, CodecError> {
        Ok(
            match decode::<WireConsensusMsg>(&bytes, "consensus message")? {
                WireConsensusMsg::Vote(v) => SignedConsensusMsg::Vote(signed_vote_in(v)?),
                WireConsensusMsg::Proposal(p) => SignedConsensusMsg::Proposal(SignedMessage::new(
                    Proposal {
                        height: Height(p.message.height),
                        round: round_from(p.message.round)?,
                        value: p.message.block,
                        pol_round: round_from(p.message.pol_round)?,
                        proposer: p.message.proposer,
                    },
                    sig_in(&p.signature)?,
                )),
            },
        )
    }
    fn encode(&self, msg: &SignedConsensusMsg<Ctx>) -> Result<Bytes, CodecError> {
        Ok(encode(&match msg {
            SignedConsensusMsg::Vote(v) => WireConsensusMsg::Vote(signed_vote_out(v)),
            SignedConsensusMsg::Proposal(p) => WireConsensusMsg::Proposal(WireSigned {
                message: WireProposal {
                    height: p.message.height.0,
                    round: p.message.round.as_i64(),
                    block: p.message.value,
                    pol_round: p.message.pol_round.as_i64(),
                    proposer: p.message.proposer,
                },
                signature: sig_out(&p.signature),
            }),
        }))
    }
}

impl Codec<LivenessMsg<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<Ctx>, CodecError> {
        Ok(match decode::<WireLiveness>(&bytes, "liveness message")? {
            WireLiveness::Vote(v) => LivenessMsg::Vote(signed_vote_in(v)?),
            WireLiveness::Polka(p) => LivenessMsg::PolkaCertificate(polka_in(p)?),
            WireLiveness::Skip(r) => LivenessMsg::SkipRoundCertificate(RoundCertificate {
                height: Height(r.height),
                round: round_from(r.round)?,
                cert_type: if r.skip {
                    RoundCertificateType::Skip
                } else {
                    RoundCertificateType::Precommit
                },
                round_signatures: r
                    .signatures
                    .into_iter()
                    .map(|s| {
                        Ok(RoundSignature::new(
                            if s.precommit {
                                VoteType::Precommit
                            } else {
                                VoteType::Prevote
                            },
                            s.block.map_or(NilOrVal::Nil, NilOrVal::Val),
                            s.validator,
                            sig_in(&s.signature)?,
                        ))
                    })
                    .collect::<Result<_, CodecError>>()?,
            }),
        })
    }
    fn encode(&self, msg: &LivenessMsg<Ctx>) -> Result<Bytes, CodecError> {
        Ok(encode(&match msg {
            LivenessMsg::Vote(v) => WireLiveness::Vote(signed_vote_out(v)),
            LivenessMsg::PolkaCertificate(p) => WireLiveness::Polka(polka_out(p)),
            LivenessMsg::SkipRoundCertificate(r) => WireLiveness::Skip(WireRoundCertificate {
                height: r.height.0,
                round: r.round.as_i64(),
                skip: r.cert_type == RoundCertificateType::Skip,
                signatures: r
                    .round_signatures
                    .iter()
                    .map(|s| WireRoundSignature {
                        precommit: s.vote_type == VoteType::Precommit,
                        block: match s.value_id {
                            NilOrVal::Nil => None,
                            NilOrVal::Val(id) => Some(id),
                        },
                        validator: s.address,
                        signature: sig_out(&s.signature),
                    })
                    .collect(),
            }),
        }))
    }
}

impl Codec<StreamMessage<BlockPart>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<BlockPart>, CodecError> {
        let w: WireStreamMessage = decode(&bytes, "stream message")?;
        Ok(StreamMessage::new(
            StreamId::new(Bytes::from(w.stream_id)),
            w.sequence,
            w.content.map_or(StreamContent::Fin, StreamContent::Data),
        ))
    }
    fn encode(&self, msg: &StreamMessage<BlockPart>) -> Result<Bytes, CodecError> {
        Ok(encode(&WireStreamMessage {
            stream_id: msg.stream_id.to_bytes().to_vec(),
            sequence: msg.sequence,
            content: msg.content.as_data().cloned(),
        }))
    }
}

impl Codec<ValidatorProof<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<Ctx>, CodecError> {
        let w: WireValidatorProof = decode(&bytes, "validator proof")?;
        Ok(ValidatorProof::new(
            w.public_key,
            w.peer_id,
            sig_in(&w.signature)?,
        ))
    }
    fn encode(&self, msg: &ValidatorProof<Ctx>) -> Result<Bytes, CodecError> {
        Ok(encode(&WireValidatorProof {
            public_key: msg.public_key.clone(),
            peer_id: msg.peer_id.clone(),
            signature: sig_out(&msg.signature),
        }))
    }
}

impl Codec<ProposedValue<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<Ctx>, CodecError> {
        let w: WireProposedValue = decode(&bytes, "proposed value")?;
        Ok(ProposedValue {
            height: Height(w.height),
            round: round_from(w.round)?,
            valid_round: round_from(w.valid_round)?,
            proposer: w.proposer,
            value: w.block,
            validity: Validity::from_bool(w.valid),
        })
    }
    fn encode(&self, msg: &ProposedValue<Ctx>) -> Result<Bytes, CodecError> {
        Ok(encode(&WireProposedValue {
            height: msg.height.0,
            round: msg.round.as_i64(),
            valid_round: msg.valid_round.as_i64(),
            proposer: msg.proposer,
            block: msg.value,
            valid: msg.validity.is_valid(),
        }))
    }
}

impl Codec<PolkaCertificate<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<Ctx>, CodecError> {
        polka_in(decode(&bytes, "polka certificate")?)
    }
    fn encode(&self, msg: &PolkaCertificate<Ctx>) -> Result<Bytes, CodecError> {
        Ok(encode(&polka_out(msg)))
    }
}

impl Codec<Status<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Status<Ctx>, CodecError> {
        let w: WireStatus = decode(&bytes, "sync status")?;
        Ok(Status {
            peer_id: PeerId::from_bytes(&w.peer_id)
                .map_err(|_| CodecError::Invalid("sync status: peer id"))?,
            tip_height: Height(w.tip_height),
            history_min_height: Height(w.history_min_height),
        })
    }
    fn encode(&self, msg: &Status<Ctx>) -> Result<Bytes, CodecError> {
        Ok(encode(&WireStatus {
            peer_id: msg.peer_id.to_bytes(),
            tip_height: msg.tip_height.0,
            history_min_height: msg.history_min_height.0,
        }))
    }
}

impl Codec<Request<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Request<Ctx>, CodecError> {
        let w: WireRequest = decode(&bytes, "sync request")?;
        if w.from > w.to {
            return Err(CodecError::Invalid("sync request: empty range"));
        }
        Ok(Request::ValueRequest(ValueRequest::new(
            Height(w.from)..=Height(w.to),
        )))
    }
    fn encode(&self, msg: &Request<Ctx>) -> Result<Bytes, CodecError> {
        let Request::ValueRequest(r) = msg;
        Ok(encode(&WireRequest {
            from: r.range.start().0,
            to: r.range.end().0,
        }))
    }
}

impl Codec<Response<Ctx>> for WireCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Response<Ctx>, CodecError> {
        let w: WireResponse = decode(&bytes, "sync response")?;
        let values = w
            .values
            .into_iter()
            .map(|v| {
                Ok(RawDecidedValue::new(
                    Bytes::from(v.block),
                    certificate_from_contract(&v.certificate)?,
                ))
            })
            .collect::<Result<Vec<_>, CodecError>>()?;
        Ok(Response::ValueResponse(ValueResponse::new(
            Height(w.start_height),
            values,
        )))
    }
    fn encode(&self, msg: &Response<Ctx>) -> Result<Bytes, CodecError> {
        let Response::ValueResponse(r) = msg;
        let values = r
            .values
            .iter()
            .map(|v| {
                Ok(WireDecided {
                    block: v.value_bytes.to_vec(),
                    certificate: extended_out(&v.certificate)?,
                })
            })
            .collect::<Result<Vec<_>, CodecError>>()?;
        Ok(encode(&WireResponse {
            start_height: r.start_height.0,
            values,
        }))
    }
}

impl HasEncodedLen<Response<Ctx>> for WireCodec {
    fn encoded_len(&self, msg: &Response<Ctx>) -> Result<usize, CodecError> {
        Ok(<Self as Codec<Response<Ctx>>>::encode(self, msg)?.len())
    }
}

/// One valid message of every kind, each prefixed by its [`crate::fuzz`]
/// selector byte: the seeds of the consensus fuzz targets.
pub(crate) fn seed_messages() -> Vec<Vec<u8>> {
    let address = Address([7; 20]);
    let block = BlockId([9; 32]);
    let key = medledger_contracts::crypto::SecretKey::from_seed([1; 32]);
    let signature = key.sign(&Hash32([2; 32]));
    let vote = || WireSigned {
        message: WireVote {
            precommit: true,
            height: 5,
            round: 0,
            block: Some(block),
            validator: address,
        },
        signature,
    };
    let certificate = cert::CommitCertificate {
        height: 5,
        round: 0,
        block: Hash32(block.0),
        signatures: BoundedVec::new(vec![cert::CommitSignature {
            validator: ConsensusAddress(address.0),
            signature,
        }])
        .unwrap_or_default(),
    };
    let with_kind = |kind: u8, bytes: Bytes| {
        let mut v = vec![kind];
        v.extend_from_slice(&bytes);
        v
    };
    vec![
        with_kind(0, encode(&BlockPart::Chunk(vec![1, 2, 3]))),
        with_kind(1, encode(&WireConsensusMsg::Vote(vote()))),
        with_kind(
            1,
            encode(&WireConsensusMsg::Proposal(WireSigned {
                message: WireProposal {
                    height: 5,
                    round: 1,
                    block,
                    pol_round: 0,
                    proposer: address,
                },
                signature,
            })),
        ),
        with_kind(2, encode(&WireLiveness::Vote(vote()))),
        with_kind(
            2,
            encode(&WireLiveness::Polka(WirePolka {
                height: 5,
                round: 0,
                block,
                signatures: vec![WireSignatureBy {
                    validator: address,
                    signature,
                }],
            })),
        ),
        with_kind(
            2,
            encode(&WireLiveness::Skip(WireRoundCertificate {
                height: 5,
                round: 2,
                skip: true,
                signatures: vec![WireRoundSignature {
                    precommit: false,
                    block: None,
                    validator: address,
                    signature,
                }],
            })),
        ),
        with_kind(
            3,
            encode(&WireStreamMessage {
                stream_id: [5u64.to_be_bytes(), 0u64.to_be_bytes()].concat(),
                sequence: 0,
                content: Some(BlockPart::Init {
                    height: 5,
                    round: 0,
                    valid_round: -1,
                    proposer: address,
                }),
            }),
        ),
        with_kind(
            4,
            encode(&WireValidatorProof {
                public_key: vec![1; 32],
                peer_id: vec![0, 36, 8, 1, 18, 32],
                signature,
            }),
        ),
        with_kind(
            5,
            encode(&WireProposedValue {
                height: 5,
                round: 0,
                valid_round: -1,
                proposer: address,
                block,
                valid: true,
            }),
        ),
        with_kind(
            6,
            encode(&WirePolka {
                height: 5,
                round: 0,
                block,
                signatures: Vec::new(),
            }),
        ),
        with_kind(
            7,
            encode(&WireStatus {
                peer_id: libp2p_identity::ed25519::PublicKey::try_from_bytes(
                    key.public_key().raw_bytes(),
                )
                .map(|k| libp2p_identity::PublicKey::from(k).to_peer_id().to_bytes())
                .unwrap_or_default(),
                tip_height: 9,
                history_min_height: 1,
            }),
        ),
        with_kind(8, encode(&WireRequest { from: 1, to: 4 })),
        with_kind(
            9,
            encode(&WireResponse {
                start_height: 5,
                values: vec![WireDecided {
                    block: vec![0; 8],
                    certificate: certificate.clone(),
                }],
            }),
        ),
        with_kind(10, encode(&certificate)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vote's signature keeps its scheme's tag through the wire: an SM2
    /// signature is not read back as an Ed25519 one with the same bytes, so
    /// a message has one encoding.
    #[test]
    fn a_votes_signature_keeps_its_scheme() {
        let vote = |signature| {
            WireConsensusMsg::Vote(WireSigned {
                message: WireVote {
                    precommit: true,
                    height: 5,
                    round: 0,
                    block: Some(BlockId([9; 32])),
                    validator: Address([7; 20]),
                },
                signature,
            })
        };
        let signature =
            medledger_contracts::crypto::SecretKey::from_seed([1; 32]).sign(&Hash32([2; 32]));
        let decode = |message: &WireConsensusMsg| {
            <WireCodec as Codec<SignedConsensusMsg<Ctx>>>::decode(&WireCodec, encode(message))
        };
        let (Signature::Ed25519 { r, s } | Signature::Sm2 { r, s }) = signature;
        for signature in [signature, Signature::Sm2 { r, s }] {
            let Ok(SignedConsensusMsg::Vote(decoded)) = decode(&vote(signature)) else {
                panic!("a vote decodes");
            };
            assert_eq!(decoded.signature, signature);
        }
    }
}
