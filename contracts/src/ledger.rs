//! An in-memory ledger: genesis state plus blocks executed in order, with the
//! authenticated store. Tools, tests and benchmarks use it; a node does the
//! same over RocksDB.

use crate::block::{BlockHeader, Parent};
use crate::encoding::Hash32;
use crate::records::{LedgerParameters, Receipt};
use crate::state::{JmtStore, Overlay, SparseProof, StateError, StateKey};
use crate::state_machine::{
    BlockContext, BlockExecution, GenesisLicence, GenesisPractitioner, GenesisStateError,
    execute_block, genesis_writes,
};
use crate::transaction::{
    InstitutionSpec, SignedTransaction, TransactionError, VerifiedTransaction,
};
use crate::types::{Chain, InstitutionId, Timestamp};

/// Why a block could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A transaction failed stateless verification.
    #[error("transaction {index}: {error}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TransactionError,
    },
    /// The store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The block's time went backwards.
    #[error("block time {time} is before the previous block's {previous}")]
    TimeWentBack {
        /// Proposed time (ms).
        time: u64,
        /// Previous time (ms).
        previous: u64,
    },
}

/// A single-process ledger over the in-memory JMT store.
pub struct MemoryLedger {
    chain: Chain,
    store: JmtStore,
    headers: Vec<BlockHeader>,
    genesis_hash: Hash32,
    genesis_time: Timestamp,
    default_proposer: InstitutionId,
    /// Only the newest state and header are kept (see [`MemoryLedger::keep_latest_only`]).
    latest_only: bool,
}

/// A replayed ledger's newest header and state: enough to go on replaying
/// from the next height without the blocks before it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The newest header.
    pub header: BlockHeader,
    /// Every (JMT key hash, value) of the state after it.
    pub values: Vec<crate::state::HashedValue>,
}

impl MemoryLedger {
    /// Starts a ledger from genesis contents.
    pub fn new(
        chain: Chain,
        genesis_hash: Hash32,
        genesis_time: Timestamp,
        parameters: &LedgerParameters,
        institutions: &[InstitutionSpec],
        practitioners: &[GenesisPractitioner],
        licences: &[GenesisLicence],
    ) -> Result<Self, GenesisStateError> {
        let writes = genesis_writes(
            chain.hash(),
            parameters,
            institutions,
            practitioners,
            licences,
        )?;
        let mut store = JmtStore::new(chain.hash());
        store
            .commit(&writes, 0)
            .map_err(|e| GenesisStateError::Invalid(e.to_string()))?;
        let default_proposer = institutions
            .iter()
            .find(|i| i.voting_power > 0)
            .map(|i| i.id.clone())
            .ok_or_else(|| GenesisStateError::Invalid("no validator".into()))?;
        Ok(Self {
            chain,
            store,
            headers: Vec::new(),
            genesis_hash,
            genesis_time,
            default_proposer,
            latest_only: false,
        })
    }

    /// From now on keeps only the newest state and header (older roots,
    /// proofs and headers are dropped): memory then holds one state tree,
    /// whatever the ledger's length. For replays.
    pub fn keep_latest_only(&mut self) {
        self.latest_only = true;
        self.store.keep_latest_only();
        let keep = self.headers.len().saturating_sub(1);
        self.headers.drain(..keep);
    }

    /// The newest header and state, to resume from; `None` before the first block.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, StateError> {
        let Some(header) = self.headers.last() else {
            return Ok(None);
        };
        Ok(Some(Checkpoint {
            header: header.clone(),
            values: self.store.latest_values()?,
        }))
    }

    /// Continues from `checkpoint` instead of what this ledger holds, keeping
    /// only the newest state from then on. Refused unless the checkpoint's
    /// state hashes to its header's state root.
    pub fn restore(&mut self, checkpoint: Checkpoint) -> Result<(), StateError> {
        let height = checkpoint.header.height;
        let (store, root) =
            JmtStore::from_latest_values(self.chain.hash(), checkpoint.values, height)?;
        if root != checkpoint.header.state_root {
            return Err(StateError::Storage(format!(
                "the checkpoint's state has state root {root}, its header at height {height} says {}",
                checkpoint.header.state_root
            )));
        }
        self.store = store;
        self.headers = vec![checkpoint.header];
        self.latest_only = true;
        Ok(())
    }

    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The height of the last block (0 before the first).
    pub fn height(&self) -> u64 {
        self.headers.last().map_or(0, |h| h.height)
    }

    /// The time of the last block (the genesis time before the first).
    pub fn time(&self) -> Timestamp {
        self.headers.last().map_or(self.genesis_time, |h| h.time)
    }

    /// The headers so far (only the newest once [`MemoryLedger::keep_latest_only`]).
    pub fn headers(&self) -> &[BlockHeader] {
        &self.headers
    }

    /// The store.
    pub fn store(&self) -> &JmtStore {
        &self.store
    }

    /// Verifies and executes a block of signed transactions at `time`.
    pub fn execute(
        &mut self,
        time: Timestamp,
        proposer: &InstitutionId,
        transactions: Vec<SignedTransaction>,
    ) -> Result<(BlockHeader, BlockExecution), LedgerError> {
        let verified: Vec<VerifiedTransaction> = transactions
            .into_iter()
            .enumerate()
            .map(|(index, tx)| {
                tx.verify(&self.chain)
                    .map_err(|error| LedgerError::Transaction { index, error })
            })
            .collect::<Result<_, _>>()?;
        self.execute_verified(time, proposer, &verified)
    }

    /// Executes a block of transactions already verified (an auditor's
    /// replay verifies signatures in parallel first).
    pub fn execute_verified(
        &mut self,
        time: Timestamp,
        proposer: &InstitutionId,
        verified: &[VerifiedTransaction],
    ) -> Result<(BlockHeader, BlockExecution), LedgerError> {
        if time < self.time() {
            return Err(LedgerError::TimeWentBack {
                time: time.0,
                previous: self.time().0,
            });
        }
        let height = self.height() + 1;
        let ctx = BlockContext {
            height,
            time,
            hash: self.chain.hash(),
        };
        let execution = execute_block(&self.store, &ctx, verified)?;
        let state_root = self.store.commit(&execution.writes, height)?;
        let parent = Parent::of(self.chain.hash(), self.headers.last(), self.genesis_hash);
        let header =
            BlockHeader::following(&self.chain, parent, time, proposer, &execution, state_root);
        if self.latest_only {
            self.headers.clear();
        }
        self.headers.push(header.clone());
        Ok((header, execution))
    }

    /// Executes one transaction in a block of its own and returns its receipt.
    pub fn execute_one(
        &mut self,
        time: Timestamp,
        tx: SignedTransaction,
    ) -> Result<Receipt, LedgerError> {
        let proposer = self.default_proposer.clone();
        let (_, mut execution) = self.execute(time, &proposer, vec![tx])?;
        execution
            .receipts
            .pop()
            .ok_or_else(|| StateError::Storage("block produced no receipt".into()).into())
    }

    /// Reads and decodes a record at the latest height.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &StateKey,
    ) -> Result<Option<T>, StateError> {
        Overlay::new(&self.store).get(key)
    }

    /// A value and its proof at `height`.
    pub fn prove(
        &self,
        key: &StateKey,
        height: u64,
    ) -> Result<(Option<Vec<u8>>, SparseProof), StateError> {
        self.store.get_with_proof(key, height)
    }
}
