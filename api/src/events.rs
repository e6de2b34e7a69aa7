//! The data of server-sent events (`GET /v1/events/…`): each event's
//! `data:` line is one of these as JSON.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Header;

/// Event `block`: a block was committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockEvent {
    /// Its header.
    pub header: Header,
    /// How many transactions it committed (copies it rejected without a
    /// trace — duplicates, expired — are not counted).
    pub transactions: u64,
}

/// Event `lagged`: the stream fell behind and skipped blocks; read what was
/// missed with the list routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaggedEvent {
    /// Blocks skipped.
    pub missed_blocks: u64,
}

/// Event `ended`: the node closes the stream (e.g. the reader's key is no
/// longer accepted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndedEvent {
    /// Why.
    pub reason: String,
}
