//! Seeded simulation of a medledger consortium under load and faults: real node processes driven through the SDK and the records gateway, with the consortium's promises checked as invariants.
//!
//! - [`cluster`]: the four node processes, their homes, and a proxy on
//!   every node-to-node connection ([`net`]) that can cut, slow and meter it;
//!   a tmpfs under one node's data directory for the full-disk fault.
//! - [`world`]: the region (adults, minors with guardians, elderly people
//!   with proxies, two hospitals' doctors, the CDC) acting step by step,
//!   the faults of each round's plan, and the checks.
//! - [`run`]: configuration, fault plans, the seeded generator, the chain
//!   comparison made during the run, failures and the report's data.
//! - [`summary`]: the report as Markdown.
//!
//! One seed fixes every choice; a failing run prints one block with the seed
//! and every parameter, and `medledger-sim --seed N …` reruns it.
//! docs/simulation.md lists the faults and invariants.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cluster;
pub mod net;
pub mod run;
pub mod summary;
pub mod world;

pub use run::{Failure, Faults, Report, SimConfig, percentile, simulate};
