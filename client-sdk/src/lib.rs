//! The Rust SDK for hospitals' systems: key handling and transaction signing today; the HTTP client and trustless light-client checks come with the API.
//!
//! Not built yet (and not claimed): the HTTP `Client`, the light client that
//! verifies commit certificates and state proofs, and records fetch. They
//! need the node's API.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod keys;

pub use keys::{KeyFile, KeyFileError};
