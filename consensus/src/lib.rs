//! The one place Malachite (Tendermint BFT) is used: its context, signing,
//! codecs, the reassembly of proposal streams (pure, in `reassembly.rs`,
//! with its own rules and tests) and the application message loop, behind
//! medledger's own types.
//!
//! The node implements [`Application`] in plain medledger terms (heights,
//! block bytes, header hashes, `CommitCertificate`s); [`run`] starts
//! Malachite's engine with libp2p and a write-ahead log and answers its
//! messages by calling the application. No Malachite type leaves this crate.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod context;
mod driver;
pub mod fuzz;
mod reassembly;
mod signing;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use medledger_contracts::Hash32;
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::crypto::{PublicKey, SecretKey};
use medledger_contracts::records::ValidatorSet;

pub use codec::decode_certificate;
pub use driver::run;

/// How a block to check arrived, which decides the checks of its time
/// against this node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Proposed fresh in the current round (no valid round): its time must
    /// be within the genesis tolerance of this node's clock, ahead or
    /// behind, so a proposer cannot date a block in the past (where a grant
    /// had not yet expired, say).
    Fresh,
    /// Proposed again with the valid round of an earlier polka: its time is
    /// as old as that round, so only a time ahead of the clock is refused
    /// (refusing old ones could leave a locked value no round can decide).
    Reproposed,
    /// Decided already (sync, replay): no clock checks.
    Decided,
}

/// What consensus asks of the node. Every method is called from the
/// consensus task, one at a time.
pub trait Application: Send + 'static {
    /// The next height to decide: the last committed height plus one.
    fn next_height(&self) -> u64;

    /// The validator set that certifies `height` (read from state).
    fn validators(&self, height: u64) -> Result<ValidatorSet, AppError>;

    /// How many transactions wait for a block (a proposer gathers some
    /// before proposing, and waits longer before proposing an empty block).
    fn waiting_transactions(&self) -> usize;

    /// Builds, executes and remembers a block for `height`; returns its
    /// header hash and canonical bytes.
    fn propose(&mut self, height: u64) -> Result<(Hash32, Vec<u8>), AppError>;

    /// Checks a block from another validator or from sync (`arrival` says
    /// which, and so which clock checks apply): decodes it, re-executes it
    /// and compares every root in its header. Returns the header hash of a
    /// valid block and remembers its execution for commit.
    fn check(
        &mut self,
        height: u64,
        block: &[u8],
        arrival: Arrival,
    ) -> Result<Hash32, BlockRefusal>;

    /// Commits a block checked or proposed earlier, with its certificate.
    fn commit(
        &mut self,
        height: u64,
        block: &Hash32,
        certificate: CommitCertificate,
    ) -> Result<(), AppError>;

    /// Every member institution's node as the committed state names it:
    /// only active members' nodes may stay connected, and a proposal counts
    /// only from its proposer's node.
    fn member_nodes(&self) -> Result<Vec<MemberNode>, AppError>;

    /// A committed block's bytes and certificate, to serve sync.
    fn decided(&self, height: u64) -> Option<(Vec<u8>, CommitCertificate)>;
}

/// A member institution's node, from the committed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberNode {
    /// The institution.
    pub institution: medledger_contracts::types::InstitutionId,
    /// The key its node's libp2p peer id derives from: its transport key
    /// where the chain's nodes have one (`sm2-sm3`), else its node key.
    pub transport_identity: PublicKey,
    /// Whether it is an active member (not suspended or removed).
    pub active: bool,
}

/// The application's own failure: never a judgement on a block (that is
/// [`BlockRefusal`]), and nothing consensus can go on without.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// This node's store failed, or lacks a record it committed.
    #[error("storage: {0}")]
    Storage(String),
    /// The committed state lacks what the ledger always holds (a validator
    /// set, the members), or could not be read.
    #[error("state: {0}")]
    State(String),
    /// Consensus named a block this node never proposed or checked.
    #[error("block {0} was never executed here")]
    UnknownBlock(Hash32),
    /// An invariant of the application broke (a bug): which one.
    #[error("invariant broken: {0}")]
    Invariant(&'static str),
}

/// Why consensus could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// A key is not a usable consensus or libp2p key.
    #[error("key: {0}")]
    Key(String),
    /// A listen or peer address does not parse.
    #[error("address: {0}")]
    Address(String),
    /// Malachite's engine failed to start, sign or encode, or stopped.
    #[error("engine: {0}")]
    Engine(String),
    /// The application failed where consensus cannot go on without it.
    #[error("application: {0}")]
    App(#[from] AppError),
}

/// Why a block was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRefusal {
    /// The bytes are not a block at all (the sender is at fault).
    Undecodable(String),
    /// A well-formed block that is wrong (roots, time, transactions): its id
    /// and why.
    Invalid(Hash32, String),
    /// Our own failure (storage); says nothing about the block.
    Local(String),
}

/// Consensus timeouts (from genesis).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Wait for a proposal.
    pub propose: Duration,
    /// Prevote step.
    pub prevote: Duration,
    /// Precommit step.
    pub precommit: Duration,
}

/// How to run consensus on this node.
pub struct Settings {
    /// The chain: its id is bound into every consensus signature, its
    /// suite's hash makes the digests and consensus addresses.
    pub chain: medledger_contracts::types::Chain,
    /// Human-readable name in logs (the institution id).
    pub moniker: String,
    /// The node key: signs votes and proposals.
    pub node_key: SecretKey,
    /// The node's libp2p identity (Ed25519): the node key itself on an
    /// `ed25519-sha256` chain, its own transport key on `sm2-sm3`.
    pub transport_key: SecretKey,
    /// Where the write-ahead log lives.
    pub wal_dir: PathBuf,
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/27000`.
    pub listen: String,
    /// Other members' libp2p addresses.
    pub peers: Vec<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Longest this node waits for transactions before proposing an empty block.
    pub empty_block_wait: Duration,
    /// Least time from the previous commit to this node's next proposal
    /// while transactions wait, so blocks carry batches, not one or two.
    pub block_interval: Duration,
    /// Transactions that fill a block (no point waiting for more).
    pub block_capacity: usize,
    /// The genesis limit on a block's bytes: no proposal stream is buffered
    /// beyond it.
    pub block_bytes_max: usize,
}

/// Live figures the node shows in its status.
#[derive(Default, Debug)]
pub struct Telemetry {
    /// Peers connected right now.
    pub peers: AtomicUsize,
    /// The round of the height in progress.
    pub round: AtomicUsize,
}

/// The libp2p peer id of a transport identity (an Ed25519 key), as text
/// (for peer addresses).
pub fn peer_id_of(key: &SecretKey) -> Result<String, ConsensusError> {
    driver::keypair(key).map(|k| k.public().to_peer_id().to_string())
}

/// A shared handle to telemetry.
pub type SharedTelemetry = Arc<Telemetry>;
