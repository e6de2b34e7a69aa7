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
//! Faults built so far: SIGKILL and restart of a validator; a validator cut
//! off from the others and healed; a two-two split of the consortium (no
//! quorum) healed, after which it must commit again within a bound. Not built
//! yet: slow links, full disks, clock skew, Byzantine proposers, and the
//! scale projection.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod net;
pub mod run;

pub use run::{Failure, Report, SimConfig, simulate};
