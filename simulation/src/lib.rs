//! Seeded simulation of a medledger consortium under load and faults: real node processes driven through the SDK and the records gateway, with the consortium's promises checked as invariants.
//!
//! One seed fixes everything random: which patients hold records where,
//! who grants, revokes, asks and fetches, and when a validator is SIGKILLed
//! and restarted. A failing run prints one block with the seed and every
//! parameter; `medledger-sim --seed N …` reruns it.
//!
//! Invariants checked:
//! 1. every fetch made after its grant's revocation committed was refused,
//!    and every fetch under an active grant delivered what the manifest said;
//! 2. all nodes agree on every committed header;
//! 3. every transaction acknowledged as committed is on every node at its height;
//! 4. an auditor's replay from genesis passes, finds no release without an
//!    authorised request and none after its grant ended, and counts every
//!    emergency access we made.
//!
//! Built so far: the workload above with SIGKILL/restart faults. Not built
//! yet: partitions, slow links, full disks, clock skew, Byzantine proposers,
//! and the scale projection.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod run;

pub use run::{Failure, Report, SimConfig, simulate};
