//! The Rust SDK for hospitals' systems: keys, transaction builders, a typed client of the node's HTTP API, and a light client that verifies answers trusting no node.
//!
//! - [`KeyFile`]: keys on disk (mode 0600).
//! - [`TxBuilder`], [`TermsBuilder`]: build and sign every transaction.
//! - [`Client`]: the HTTP API, with reads signed by an [`Identity`].
//! - [`LightClient`]: [`LightClient::verify_grant`] and
//!   [`LightClient::check_access`] check commit certificates and state
//!   proofs from the genesis file up.
//! - [`records::fetch_records`]: fetches released records from the holding
//!   hospital through the records gateway, sealed to a one-time key, every
//!   item checked against the manifest and the holder's `AccessServed`.
//!
//! A hospital checking a grant before it releases records:
//!
//! ```no_run
//! # async fn example() -> Result<(), medledger_client_sdk::SdkError> {
//! use std::time::Duration;
//! use medledger_client_sdk::{Client, Identity, KeyFile, LightClient};
//! # let genesis_path = std::path::Path::new("genesis.json");
//! # let grant_id = medledger_contracts::types::TxHash(Default::default());
//! let genesis = medledger_genesis::GenesisFile::read(genesis_path)
//!     .map_err(|e| medledger_client_sdk::SdkError::Genesis(e.to_string()))?
//!     .validate()
//!     .map_err(|e| medledger_client_sdk::SdkError::Genesis(e.to_string()))?;
//! let client = Client::new("http://127.0.0.1:8645", genesis.chain())?;
//! let light = LightClient::new(client, &genesis, Duration::from_secs(30))?;
//! let doctor = Identity::practitioner(&KeyFile::load(std::path::Path::new("doctor.json")).unwrap());
//! let grant = light.verify_grant(&grant_id, &doctor).await?;
//! println!("grant is {:?} at height {}", grant.status, grant.height);
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod error;
pub mod keys;
pub mod light;
pub mod records;
pub mod tx;

pub use client::{Client, Identity, TxOutcome, TxReceipt};
pub use error::SdkError;
pub use keys::{KeyFile, KeyFileError};
pub use light::{AccessAnswer, LightClient, VerifiedGrant};
/// The API's JSON types, as the node writes them.
pub use medledger_api as api;
pub use medledger_contracts::transaction::licence_hash;
pub use tx::{
    TX_LIFETIME_MS_DEFAULT, TermsBuilder, TxBuilder, case_reference_hash, new_salt, notice_hash,
    review_record_hash,
};
