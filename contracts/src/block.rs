//! The block header: what validators certify and light clients verify.
//!
//! Rules:
//! 1. A header commits to the previous block, the transactions (RFC 6962 root
//!    of their ids), the state after the block (JMT root), the audit log after
//!    the block (root and size), and the validator set of its height.
//! 2. Its hash is `SHA-256("medledger/header/v1" ‖ BCS(header))`; consensus
//!    certifies this hash.

use serde::{Deserialize, Serialize};

use crate::constants::{BLOCK_BYTES_MAX, BLOCK_TRANSACTIONS_MAX};
use crate::encoding::{BoundedVec, DecodeError, Hash32, from_bytes, hash_of, tags, to_bytes};
use crate::transaction::SignedTransaction;
use crate::types::{ChainId, InstitutionId, Timestamp};

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: ChainId,
    /// Height (genesis is 0; the first block is 1).
    pub height: u64,
    /// The proposer's time.
    pub time: Timestamp,
    /// Hash of the previous header (the genesis hash for height 1).
    pub previous_hash: Hash32,
    /// RFC 6962 root over the block's transaction ids.
    pub transaction_root: Hash32,
    /// JMT root of the state after this block.
    pub state_root: Hash32,
    /// RFC 6962 root of the audit log after this block.
    pub audit_root: Hash32,
    /// Entries in the audit log after this block.
    pub audit_size: u64,
    /// Hash of the validator set that certifies this height.
    pub validator_set_hash: Hash32,
    /// The proposing validator's institution.
    pub proposer: InstitutionId,
}

impl BlockHeader {
    /// The header's hash (rule 2).
    pub fn hash(&self) -> Hash32 {
        hash_of(tags::BLOCK_HEADER, self)
    }
}

/// A block: its header and its transactions, in order. Its BCS encoding is
/// what nodes store, sync and export for auditors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header consensus certified.
    pub header: BlockHeader,
    /// The transactions, in execution order.
    pub transactions: BoundedVec<SignedTransaction, BLOCK_TRANSACTIONS_MAX>,
}

impl Block {
    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(self)
    }

    /// Decodes a block strictly, refusing more than [`BLOCK_BYTES_MAX`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        from_bytes(bytes, BLOCK_BYTES_MAX)
    }
}
