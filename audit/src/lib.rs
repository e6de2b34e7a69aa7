//! What an auditor runs, as a library (the `medledger audit` and `export`
//! commands call it): export a node's ledger to a self-contained archive,
//! replay a ledger from genesis trusting no node, and report on it.
//!
//! - [`archive`]: the archive format (gzip of framed BCS records) and the
//!   sources a replay reads blocks from (an archive, or a stopped node's data
//!   directory).
//! - [`replay`]: every check, in order, stopping at the first failure.
//! - [`state`]: where the replayed state lives — in memory (newest state
//!   only, checkpoint files) or in a RocksDB store (bounded memory, resumable).
//! - [`report`]: summary, per patient, per institution, anomalies; JSON, CSV
//!   and a self-contained HTML page.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod archive;
pub mod replay;
pub mod report;
pub mod state;
