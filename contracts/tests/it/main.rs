//! Integration tests of the contracts crate: one binary, one module per concern.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod batch;
mod decode;
mod golden;
mod header;
mod licences;
mod proofs;
mod props;
mod rules;
mod suites;
mod world;
