//! Consensus signatures and commit certificates, in medledger's own terms, so
//! that light clients and auditors verify a block's certificate with nothing
//! but this crate and the validator set of its height.
//!
//! Rules:
//! 1. A validator's consensus address is the first 20 bytes of the chain's
//!    hash (`H`: SHA-256 or SM3, by suite) of its node key's raw bytes.
//! 2. A vote is signed over `H("medledger/vote/v1" ‖ BCS(chain id) ‖
//!    BCS(VoteBody))`, a proposal over the same with `medledger/proposal/v1`
//!    and `ProposalBody`; the node key signs that 32-byte digest.
//! 3. A commit certificate for block `B` at height `h` holds precommits for
//!    `B` at `h` and one round; it is valid when every signer is a distinct
//!    validator of `h`'s set, every signature verifies, and the signers hold
//!    more than two thirds of the set's voting power.

use serde::{Deserialize, Serialize};

use crate::constants::VALIDATORS_MAX;
use crate::crypto::{PublicKey, Signature};
use crate::encoding::{BoundedVec, Hash32, HashFunction, tags};
use crate::records::ValidatorSet;
use crate::types::Chain;

/// A validator's consensus address (rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConsensusAddress(pub [u8; 20]);

impl ConsensusAddress {
    /// The address of a node key on a chain hashing with `hash`.
    pub fn of_key(hash: HashFunction, key: &PublicKey) -> Self {
        let digest = hash.digest(key.raw_bytes());
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Self(out)
    }
}

impl std::fmt::Display for ConsensusAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Which vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VoteKind {
    /// First voting step.
    Prevote,
    /// Second voting step; precommits for one block make its certificate.
    Precommit,
}

/// What a vote signature covers (rule 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteBody {
    /// Prevote or precommit.
    pub kind: VoteKind,
    /// Height.
    pub height: u64,
    /// Round (-1 for none).
    pub round: i64,
    /// The block voted for; `None` is a nil vote.
    pub block: Option<Hash32>,
    /// The voter.
    pub validator: ConsensusAddress,
}

/// What a proposal signature covers (rule 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalBody {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: i64,
    /// The proposed block.
    pub block: Hash32,
    /// The proof-of-lock round (-1 for none).
    pub pol_round: i64,
    /// The proposer.
    pub proposer: ConsensusAddress,
}

/// The digest a validator signs for a vote.
pub fn vote_message(chain: &Chain, body: &VoteBody) -> Hash32 {
    chain
        .hash()
        .hash_of(tags::CONSENSUS_VOTE, &(chain.id.as_str(), body))
}

/// The digest a validator signs for a proposal.
pub fn proposal_message(chain: &Chain, body: &ProposalBody) -> Hash32 {
    chain
        .hash()
        .hash_of(tags::CONSENSUS_PROPOSAL, &(chain.id.as_str(), body))
}

/// One validator's precommit in a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSignature {
    /// The signer.
    pub validator: ConsensusAddress,
    /// Its signature over the precommit.
    pub signature: Signature,
}

/// The proof that a block was committed (rule 3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// Height of the block.
    pub height: u64,
    /// Round in which it was decided.
    pub round: i64,
    /// Hash of the block's header.
    pub block: Hash32,
    /// The precommits.
    pub signatures: BoundedVec<CommitSignature, VALIDATORS_MAX>,
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// It certifies another height.
    #[error("certificate is for height {found}, expected {expected}")]
    WrongHeight {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// It certifies another block.
    #[error("certificate is for block {found}, expected {expected}")]
    WrongBlock {
        /// Expected.
        expected: Hash32,
        /// Found.
        found: Hash32,
    },
    /// A signer is not in the validator set of the height.
    #[error("signer {0} is not a validator at this height")]
    UnknownSigner(ConsensusAddress),
    /// A signer appears twice.
    #[error("signer {0} appears twice")]
    DuplicateSigner(ConsensusAddress),
    /// A signature does not verify.
    #[error("signature of {0} does not verify")]
    BadSignature(ConsensusAddress),
    /// The signers hold too little voting power.
    #[error("signers hold {signed} of {total} voting power; more than two thirds is needed")]
    InsufficientPower {
        /// Power of the valid signers.
        signed: u64,
        /// Total power of the set.
        total: u64,
    },
}

impl CommitCertificate {
    /// Checks the certificate against the validator set of its height (rule 3)
    /// and returns the voting power that signed.
    pub fn verify(
        &self,
        chain: &Chain,
        validators: &ValidatorSet,
        height: u64,
        block: &Hash32,
    ) -> Result<u64, CertificateError> {
        if self.height != height {
            return Err(CertificateError::WrongHeight {
                expected: height,
                found: self.height,
            });
        }
        if &self.block != block {
            return Err(CertificateError::WrongBlock {
                expected: *block,
                found: self.block,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut signed: u64 = 0;
        for commit in self.signatures.iter() {
            if !seen.insert(commit.validator) {
                return Err(CertificateError::DuplicateSigner(commit.validator));
            }
            let validator = validators
                .validators
                .iter()
                .find(|v| ConsensusAddress::of_key(chain.hash(), &v.node_key) == commit.validator)
                .ok_or(CertificateError::UnknownSigner(commit.validator))?;
            let message = vote_message(
                chain,
                &VoteBody {
                    kind: VoteKind::Precommit,
                    height: self.height,
                    round: self.round,
                    block: Some(self.block),
                    validator: commit.validator,
                },
            );
            validator
                .node_key
                .verify(&message, &commit.signature)
                .map_err(|_| CertificateError::BadSignature(commit.validator))?;
            signed = signed.saturating_add(validator.power);
        }
        let total = validators.total_power();
        if u128::from(signed) * 3 <= u128::from(total) * 2 {
            return Err(CertificateError::InsufficientPower { signed, total });
        }
        Ok(signed)
    }
}
