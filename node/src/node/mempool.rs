//! Transactions waiting for a block: each checked once on arrival (size,
//! decoding, chain, signature, form) and kept verified, so no node verifies
//! the same signature twice. Bounded in count and bytes, with a per-signer
//! share so that one busy submitter cannot crowd out the rest.

use std::collections::{BTreeMap, HashMap};

use medledger_contracts::constants::TRANSACTION_BYTES_MAX;
use medledger_contracts::transaction::{SignedTransaction, TransactionError, VerifiedTransaction};
use medledger_contracts::types::{ChainId, TxHash};

/// Mempool bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most transactions held.
    pub transactions: usize,
    /// Most bytes held.
    pub bytes: usize,
    /// Most transactions held from one signing key.
    pub per_signer: usize,
}

/// Why a transaction was not taken. Each says what the submitter can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Larger than any transaction may be.
    #[error("transaction is {actual} bytes; the limit is {max}")]
    TooLarge {
        /// Size.
        actual: usize,
        /// Limit.
        max: usize,
    },
    /// Not a transaction, or malformed, or wrongly signed.
    #[error("{0}")]
    Invalid(TransactionError),
    /// Already waiting here.
    #[error("transaction {0} is already in the mempool")]
    Duplicate(TxHash),
    /// Already on the ledger.
    #[error("transaction {0} is already committed")]
    AlreadyCommitted(TxHash),
    /// The ledger would reject it now.
    #[error("the ledger would reject this transaction: {0}")]
    WouldReject(String),
    /// This signer has its share of the mempool already.
    #[error("this key already has {0} transactions waiting; wait for some to commit")]
    SignerQuota(usize),
    /// The mempool is full.
    #[error("the mempool is full ({0}); retry shortly")]
    Full(&'static str),
}

impl Refusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Invalid(TransactionError::Decode(_)) => "malformed",
            Refusal::Invalid(TransactionError::Signature { .. }) => "bad_signature",
            Refusal::Invalid(TransactionError::Field { .. }) => "invalid_field",
            Refusal::Duplicate(_) => "duplicate",
            Refusal::AlreadyCommitted(_) => "already_committed",
            Refusal::WouldReject(_) => "would_be_rejected",
            Refusal::SignerQuota(_) => "signer_quota",
            Refusal::Full(_) => "mempool_full",
        }
    }
}

struct Entry {
    verified: VerifiedTransaction,
    bytes: usize,
    signer: Vec<u8>,
    sequence: u64,
}

/// The pool.
pub struct Mempool {
    chain: ChainId,
    limits: Limits,
    entries: HashMap<TxHash, Entry>,
    /// Arrival order.
    order: BTreeMap<u64, TxHash>,
    per_signer: HashMap<Vec<u8>, usize>,
    bytes: usize,
    next_sequence: u64,
}

impl Mempool {
    /// An empty pool for `chain`.
    pub fn new(chain: ChainId, limits: Limits) -> Self {
        Self {
            chain,
            limits,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            per_signer: HashMap::new(),
            bytes: 0,
            next_sequence: 0,
        }
    }

    /// Transactions waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Decodes bytes from outside and refuses what cannot be taken before
    /// any signature is checked: too large, malformed, a repeat, no room.
    /// `committed` says whether an id is on the ledger already. The caller
    /// verifies the result (outside the pool's lock) and then `insert`s it.
    pub fn precheck(
        &self,
        bytes: &[u8],
        committed: impl Fn(&TxHash) -> bool,
    ) -> Result<SignedTransaction, Refusal> {
        if bytes.len() > TRANSACTION_BYTES_MAX {
            return Err(Refusal::TooLarge {
                actual: bytes.len(),
                max: TRANSACTION_BYTES_MAX,
            });
        }
        let signed = SignedTransaction::from_bytes(bytes).map_err(Refusal::Invalid)?;
        // The id is a hash, cheap next to a signature check: refuse repeats first.
        let id = signed.transaction.id(&self.chain);
        if self.entries.contains_key(&id) {
            return Err(Refusal::Duplicate(id));
        }
        if committed(&id) {
            return Err(Refusal::AlreadyCommitted(id));
        }
        let signer = signed.public_key.raw_bytes().to_vec();
        self.check_room(bytes.len(), &signer)?;
        Ok(signed)
    }

    fn check_room(&self, size: usize, signer: &[u8]) -> Result<(), Refusal> {
        if self.entries.len() >= self.limits.transactions {
            return Err(Refusal::Full("transaction count"));
        }
        if self.bytes + size > self.limits.bytes {
            return Err(Refusal::Full("bytes"));
        }
        let held = self.per_signer.get(signer).copied().unwrap_or(0);
        if held >= self.limits.per_signer {
            return Err(Refusal::SignerQuota(held));
        }
        Ok(())
    }

    /// Adds a checked transaction.
    pub fn insert(&mut self, verified: VerifiedTransaction) -> Result<TxHash, Refusal> {
        let id = verified.id();
        if self.entries.contains_key(&id) {
            return Err(Refusal::Duplicate(id));
        }
        let signer = verified.public_key().raw_bytes().to_vec();
        let bytes = verified.encoded_len();
        self.check_room(bytes, &signer)?;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        *self.per_signer.entry(signer.clone()).or_default() += 1;
        self.bytes += bytes;
        self.order.insert(sequence, id);
        self.entries.insert(
            id,
            Entry {
                verified,
                bytes,
                signer,
                sequence,
            },
        );
        Ok(id)
    }

    /// Up to `count` transactions and `bytes` bytes, oldest first, for a block.
    pub fn take_for_block(&self, count: usize, bytes: usize) -> Vec<VerifiedTransaction> {
        let mut out = Vec::new();
        let mut total = 0usize;
        for id in self.order.values() {
            if out.len() >= count {
                break;
            }
            let Some(entry) = self.entries.get(id) else {
                continue;
            };
            if total + entry.bytes > bytes {
                break;
            }
            total += entry.bytes;
            out.push(entry.verified.clone());
        }
        out
    }

    /// The verified form of a waiting transaction, so a block that carries
    /// it needs no second signature check.
    pub fn verified(&self, id: &TxHash) -> Option<&VerifiedTransaction> {
        self.entries.get(id).map(|e| &e.verified)
    }

    /// Drops transactions a block committed.
    pub fn remove(&mut self, ids: impl IntoIterator<Item = TxHash>) {
        for id in ids {
            if let Some(entry) = self.entries.remove(&id) {
                self.order.remove(&entry.sequence);
                self.bytes -= entry.bytes;
                if let Some(n) = self.per_signer.get_mut(&entry.signer) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_signer.remove(&entry.signer);
                    }
                }
            }
        }
    }
}
