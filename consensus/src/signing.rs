//! Consensus signatures with the node key, over the digests that
//! `medledger_contracts::certificate` defines, so that a light client can
//! check a certificate without Malachite; the keys and signatures are the
//! ledger's own, of the chain's suite (Ed25519 or SM2).

use async_trait::async_trait;
use malachitebft_core_types::{
    NilOrVal, Round, SignedMessage, SigningScheme, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use medledger_contracts::Hash32;
use medledger_contracts::certificate::{
    ConsensusAddress, ProposalBody, VoteBody, VoteKind, proposal_message, vote_message,
};
use medledger_contracts::crypto::{PublicKey, SecretKey, Signature};
use medledger_contracts::encoding::{self, DecodeError, HashFunction, tags};
use medledger_contracts::types::Chain;

use crate::context::{Address, BlockId, Ctx, Proposal, Vote};

/// Malachite's view of the ledger's signatures: a key and a signature are
/// the ledger's tagged ones (BCS, as on the ledger), so a consensus message
/// carries the same bytes a commit certificate keeps and a light client
/// checks, on either suite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSigning;

/// The largest encoded key or signature (a tag and 64 bytes).
const KEY_OR_SIGNATURE_BYTES_MAX: usize = 80;

impl SigningScheme for LedgerSigning {
    type DecodingError = DecodeError;
    type Signature = Signature;
    type PublicKey = PublicKey;
    type PrivateKey = SecretKey;

    fn decode_signature(bytes: &[u8]) -> Result<Signature, DecodeError> {
        encoding::from_bytes(bytes, KEY_OR_SIGNATURE_BYTES_MAX)
    }

    fn encode_signature(signature: &Signature) -> Vec<u8> {
        encoding::to_bytes(signature)
    }

    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, DecodeError> {
        encoding::from_bytes(bytes, KEY_OR_SIGNATURE_BYTES_MAX)
    }

    fn encode_public_key(key: &PublicKey) -> Vec<u8> {
        encoding::to_bytes(key)
    }
}

pub(crate) fn to_contract_address(address: &Address) -> ConsensusAddress {
    ConsensusAddress(address.0)
}

pub(crate) fn round_i64(round: Round) -> i64 {
    round.as_i64()
}

pub(crate) fn vote_body(vote: &Vote) -> VoteBody {
    VoteBody {
        kind: match vote.vote_type {
            VoteType::Prevote => VoteKind::Prevote,
            VoteType::Precommit => VoteKind::Precommit,
        },
        height: vote.height.0,
        round: round_i64(vote.round),
        block: match &vote.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(Hash32(id.0)),
        },
        validator: to_contract_address(&vote.validator),
    }
}

fn proposal_body(proposal: &Proposal) -> ProposalBody {
    ProposalBody {
        height: proposal.height.0,
        round: round_i64(proposal.round),
        block: Hash32(proposal.value.0),
        pol_round: round_i64(proposal.pol_round),
        proposer: to_contract_address(&proposal.proposer),
    }
}

/// The digest a node signs to tie its network peer id to its node key.
fn identity_message(chain: &Chain, public_key: &[u8], peer_id: &[u8]) -> Hash32 {
    chain.hash().tagged_hash(
        tags::NODE_IDENTITY,
        &[&ValidatorProof::<Ctx>::signing_bytes(public_key, peer_id)],
    )
}

/// Signs consensus messages with this node's key.
pub struct NodeSigner {
    chain: Chain,
    key: SecretKey,
}

impl NodeSigner {
    /// A signer for `chain` with the node key.
    pub fn new(chain: Chain, key: SecretKey) -> Self {
        Self { chain, key }
    }

    fn sign(&self, digest: &Hash32) -> Signature {
        self.key.sign(digest)
    }
}

#[async_trait]
impl Signer<Ctx> for NodeSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<Ctx, Vote>, Error> {
        let signature = self.sign(&vote_message(&self.chain, &vote_body(&vote)));
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<Ctx, Proposal>, Error> {
        let signature = self.sign(&proposal_message(&self.chain, &proposal_body(&proposal)));
        Ok(SignedMessage::new(proposal, signature))
    }

    async fn sign_vote_extension(
        &self,
        _scope: VoteExtensionScope<Ctx>,
        _extension: (),
    ) -> Result<SignedMessage<Ctx, ()>, Error> {
        Err(Error::from_source(
            "medledger does not use vote extensions".to_string(),
        ))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<Ctx>, Error> {
        let signature = self.sign(&identity_message(&self.chain, &public_key, &peer_id));
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

/// Verifies consensus messages with the same digests, under the ledger's
/// one signature rule (ZIP-215, `medledger_contracts::crypto`).
pub struct NodeVerifier {
    chain: Chain,
}

impl NodeVerifier {
    /// A verifier for `chain`.
    pub fn new(chain: Chain) -> Self {
        Self { chain }
    }
}

impl NodeVerifier {
    /// Whether `key` (of the chain's suite) signed `digest`: a key or a
    /// signature of the other suite never verifies.
    fn check(&self, key: &PublicKey, digest: &Hash32, signature: &Signature) -> VerificationResult {
        VerificationResult::from_bool(
            self.chain.suite.check_key(key).is_ok()
                && self.chain.suite.check_signature(signature).is_ok()
                && key.verify(digest, signature).is_ok(),
        )
    }
}

#[async_trait]
impl Verifier<Ctx> for NodeVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(self.check(
            public_key,
            &vote_message(&self.chain, &vote_body(vote)),
            signature,
        ))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &Signature,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(self.check(
            public_key,
            &proposal_message(&self.chain, &proposal_body(proposal)),
            signature,
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        _scope: &VoteExtensionScope<Ctx>,
        _extension: &(),
        _signature: &Signature,
        _public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        // No extension is ever produced, so none can be genuine.
        Ok(VerificationResult::Invalid)
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<Ctx>,
    ) -> Result<VerificationResult, Error> {
        let Ok(key) = LedgerSigning::decode_public_key(&proof.public_key) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(self.check(
            &key,
            &identity_message(&self.chain, &proof.public_key, &proof.peer_id),
            &proof.signature,
        ))
    }
}

/// The consensus address of a medledger node key on a chain hashing with `hash`.
pub fn address_of(hash: HashFunction, key: &PublicKey) -> Address {
    Address(ConsensusAddress::of_key(hash, key).0)
}

/// A block id from a header hash.
pub fn block_id(hash: &Hash32) -> BlockId {
    BlockId(hash.0)
}
