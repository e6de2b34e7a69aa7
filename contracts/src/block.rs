//! The block header: what validators certify and light clients verify.
//!
//! Rules:
//! 1. A header commits to the previous block, the transactions (RFC 6962 root
//!    of their ids), the state after the block (JMT root), the audit log after
//!    the block (root and size), and the validator set of its height.
//! 2. Its hash is `H("medledger/header/v1" ‖ BCS(header))`, `H` the chain's
//!    suite's hash function; consensus certifies this hash.
//! 3. The header of a block follows from its parent and its execution alone
//!    ([`BlockHeader::following`]): a node proposing, a node checking a
//!    proposal, the auditor's replay and the in-memory ledger all build it
//!    with that one function, and a stated header is accepted only if it
//!    equals the one built ([`BlockHeader::check_against`]).

use serde::{Deserialize, Serialize};

use crate::constants::{BLOCK_BYTES_MAX, BLOCK_TRANSACTIONS_MAX};
use crate::encoding::{BoundedVec, DecodeError, Hash32, HashFunction, from_bytes, tags, to_bytes};
use crate::state_machine::BlockExecution;
use crate::transaction::SignedTransaction;
use crate::types::{Chain, ChainId, InstitutionId, Timestamp};

/// What a block's header takes from its parent: the parent header's hash
/// (the genesis hash for the first block) and the next height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The parent header's hash, or the genesis hash.
    pub hash: Hash32,
    /// The parent's height (0 for genesis).
    pub height: u64,
}

impl Parent {
    /// The parent of the block after `previous` (the genesis, hashing to
    /// `genesis_hash`, when there is no block yet) on a chain hashing with `hash`.
    pub fn of(hash: HashFunction, previous: Option<&BlockHeader>, genesis_hash: Hash32) -> Self {
        Self {
            hash: previous.map_or(genesis_hash, |header| header.hash(hash)),
            height: previous.map_or(0, |h| h.height),
        }
    }
}

/// Where a stated header and the one its execution gives part (rule 3):
/// the field first found different, and both values as text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: the header says {stated}, its execution gives {computed}")]
pub struct HeaderMismatch {
    /// The field (`transaction root`, `state root`, `audit-log root`,
    /// `validator set`, or `header` for any other field).
    pub field: &'static str,
    /// The stated header's value.
    pub stated: String,
    /// The value execution gives.
    pub computed: String,
}

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
    /// RFC 6962 root over the block's transactions as signed (their
    /// `SignedTransaction::signed_hash`es): it fixes their signatures too.
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
    /// The header's hash (rule 2) on a chain hashing with `hash`.
    pub fn hash(&self, hash: HashFunction) -> Hash32 {
        hash.hash_of(tags::BLOCK_HEADER, self)
    }

    /// The header of the block after `parent`, proposed by `proposer` at
    /// `time`, given its execution and the state root its writes give
    /// (rule 3).
    pub fn following(
        chain: &Chain,
        parent: Parent,
        time: Timestamp,
        proposer: &InstitutionId,
        execution: &BlockExecution,
        state_root: Hash32,
    ) -> Self {
        Self {
            chain_id: chain.id.clone(),
            height: parent.height + 1,
            time,
            previous_hash: parent.hash,
            transaction_root: execution.transaction_root,
            state_root,
            audit_root: execution.audit_root,
            audit_size: execution.audit_size,
            validator_set_hash: execution.validator_set.hash(chain.hash()),
            proposer: proposer.clone(),
        }
    }

    /// Whether this (stated) header is the one `computed` by
    /// [`BlockHeader::following`] for the same block (rule 3). The roots are
    /// compared first, so a mismatch names what execution disagrees on;
    /// then the whole hash, which covers every other field.
    pub fn check_against(
        &self,
        hash: HashFunction,
        computed: &BlockHeader,
    ) -> Result<(), HeaderMismatch> {
        let differ = |field, stated: String, computed: String| {
            if stated == computed {
                Ok(())
            } else {
                Err(HeaderMismatch {
                    field,
                    stated,
                    computed,
                })
            }
        };
        differ(
            "transaction root",
            self.transaction_root.to_hex(),
            computed.transaction_root.to_hex(),
        )?;
        differ(
            "state root",
            self.state_root.to_hex(),
            computed.state_root.to_hex(),
        )?;
        differ(
            "audit-log root",
            format!("{} ({} entries)", self.audit_root, self.audit_size),
            format!("{} ({} entries)", computed.audit_root, computed.audit_size),
        )?;
        differ(
            "validator set",
            self.validator_set_hash.to_hex(),
            computed.validator_set_hash.to_hex(),
        )?;
        differ(
            "header",
            self.hash(hash).to_hex(),
            computed.hash(hash).to_hex(),
        )
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
