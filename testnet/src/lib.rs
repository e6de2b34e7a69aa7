//! A local consortium for the demo, the benchmarks, the tests and the
//! simulator: the typed layout of a testnet on 127.0.0.1 and its node processes.
//!
//! - [`layout`]: [`init`] makes genesis, keys and one home per node from the
//!   example city consortium with fresh keys and free ports; [`load`] reads
//!   back its `testnet.json` as a [`TestnetLayout`].
//! - [`processes`]: [`Consortium`] starts, kills and watches the nodes.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod layout;
pub mod processes;

pub use layout::{
    TX_VALIDITY_WINDOW_MS, TestnetLayout, TestnetNode, chain_of, init, init_on, init_with_window,
    key_path, load, load_key,
};
pub use processes::{Consortium, NODE_LOG_FILTER};
