//! Seeded simulation of a medledger consortium under load and faults: real node processes driven through the SDK and the records gateway, with the consortium's promises checked as invariants.
//!
//! - [`cluster`]: the node processes (four validators unless asked for
//!   more), their homes, and a proxy on
//!   every node-to-node connection ([`net`]) that can cut, slow and meter it;
//!   a tmpfs under one node's data directory for the full-disk fault.
//! - [`config`]: what a run is asked to do (seed, size, faults).
//! - [`plan`]: the seeded generator and each round's fault plan.
//! - [`world`]: the region (adults, minors with guardians, elderly people
//!   with proxies, two hospitals' doctors, the CDC): its people's actions
//!   (`world/actors.rs`), the faults applied (`world/faults.rs`), one
//!   member's attacks (`world/hostile.rs`) and the end-of-run invariants
//!   (`world/checks.rs`).
//! - [`checks`]: the invariants checked during the run (acknowledged
//!   commits stay committed; every node's chain agrees).
//! - [`report`]: a run's failure or its report's data; [`summary`] renders
//!   the report as Markdown.
//!
//! Modules depend one way: `world` on all the others, `checks` on
//! `cluster`, `config` and `report`, `plan` on `config`, and nothing on `world`
//! but [`simulate`].
//!
//! One seed fixes every choice; a failing run prints one block with the seed
//! and every parameter, and `medledger-sim --seed N …` reruns it.
//! docs/simulation.md lists the faults and invariants.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checks;
pub mod cluster;
pub mod config;
pub mod net;
pub mod plan;
pub mod report;
pub mod summary;
pub mod world;

pub use config::{Faults, SimConfig};
pub use report::{Failure, Report, percentile};

/// Runs one simulation; a broken invariant is the error.
pub async fn simulate(config: &SimConfig) -> Result<Report, Failure> {
    world::World::run(config).await
}
