//! What the medledger ledger means: its types, canonical bytes, crypto suite, transactions and the deterministic consent, audit and membership state machine.
//!
//! This crate is pure: no I/O, no async, no clock, no randomness. Everything a
//! node, the SDK, an auditor's replay and the patient app must agree on
//! byte for byte is defined here, once.
//!
//! - [`encoding`]: BCS with bounded containers and domain-separated hashes.
//! - [`crypto`]: keys and signatures tagged by scheme (`ed25519-sha256`).
//! - [`types`] and [`transaction`]: the vocabulary and every transaction.
//! - [`state_machine`]: the numbered rules and `execute_block`.
//! - [`state`]: typed records over a key-value map; the JMT store and proofs.
//! - [`merkle`]: RFC 6962 trees for transaction roots and the audit log.
//! - [`block`]: the block header every node signs off.
//! - [`light`]: what a client trusting no node checks in an answer.
//! - [`request_auth`]: how a reader signs an HTTP request.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod block;
pub mod certificate;
pub mod constants;
pub mod crypto;
pub mod encoding;
pub mod ledger;
pub mod light;
pub mod merkle;
mod newest_tree;
pub mod records;
pub mod request_auth;
pub mod state;
pub mod state_machine;
pub mod transaction;
pub mod types;

pub use encoding::Hash32;
