//! Where a replay keeps the state it rebuilds: in memory (the newest state
//! only, resumable from a checkpoint file) or on disk (a RocksDB store in the
//! node's own format: memory stays bounded whatever the ledger's length, and
//! reopening the store resumes the replay).

use std::path::Path;

use medledger_contracts::Hash32;
use medledger_contracts::block::{BlockHeader, Parent};
use medledger_contracts::ledger::{LedgerError, MemoryLedger};
use medledger_contracts::state::{Overlay, StateError, StateKey, StateReader};
use medledger_contracts::state_machine::{BlockContext, BlockExecution, execute_block};
use medledger_contracts::transaction::VerifiedTransaction;
use medledger_contracts::types::{Chain, InstitutionId, Timestamp};
use medledger_genesis::Genesis;
use medledger_store::{CommittedBlock, Compression, PreparedState, Store};

use super::archive::ArchivedBlock;

/// The replayed state.
pub enum ReplayState {
    /// In memory, newest state only.
    Memory(MemoryLedger),
    /// In a RocksDB store.
    Disk(DiskState),
}

/// A replay's state in a RocksDB store of the node's format.
pub struct DiskState {
    store: Store,
    tip: Option<BlockHeader>,
    chain: Chain,
    genesis_hash: Hash32,
    genesis_time: Timestamp,
}

/// A block executed but not yet kept: kept only once every check passed.
pub struct Executed {
    /// The header the replay computes.
    pub header: BlockHeader,
    /// What executing the block produced.
    pub execution: BlockExecution,
    /// On disk: the state tree's new nodes, written by [`ReplayState::keep`].
    pub state: Option<PreparedState>,
}

impl DiskState {
    /// The store the state is kept in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Opens (or creates) the store in `dir` for `genesis`, writing table
    /// files with `compression`; a store of another genesis is refused.
    pub fn open(dir: &Path, genesis: &Genesis, compression: Compression) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let store = Store::open_compressed(dir, genesis.crypto_suite.hash_function(), compression)?;
        match store.genesis_hash()? {
            None => {
                store.initialize(genesis.hash(), &genesis.initial_state()?)?;
            }
            Some(hash) if hash == genesis.hash() => {}
            Some(hash) => anyhow::bail!(
                "{} holds a replay of genesis {hash}, not of this genesis ({})",
                dir.display(),
                genesis.hash()
            ),
        }
        let tip = match store.height()? {
            Some(h) if h > 0 => store.header(h)?,
            _ => None,
        };
        Ok(Self {
            store,
            tip,
            chain: genesis.chain(),
            genesis_hash: genesis.hash(),
            genesis_time: genesis.genesis_time,
        })
    }
}

impl ReplayState {
    /// The last replayed height (0 at genesis).
    pub fn height(&self) -> u64 {
        match self {
            ReplayState::Memory(ledger) => ledger.height(),
            ReplayState::Disk(disk) => disk.tip.as_ref().map_or(0, |h| h.height),
        }
    }

    /// The last replayed header.
    pub fn last_header(&self) -> Option<&BlockHeader> {
        match self {
            ReplayState::Memory(ledger) => ledger.headers().last(),
            ReplayState::Disk(disk) => disk.tip.as_ref(),
        }
    }

    fn reader(&self) -> &dyn StateReader {
        match self {
            ReplayState::Memory(ledger) => ledger.store(),
            ReplayState::Disk(disk) => &disk.store,
        }
    }

    /// A value of the replayed state.
    pub fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: &StateKey,
    ) -> Result<Option<T>, StateError> {
        Overlay::new(self.reader()).get(key)
    }

    /// Executes the next block as stored (its time and proposer); the error
    /// names the check. In memory the state moves on at once; on disk it is
    /// kept by [`ReplayState::keep`].
    pub fn execute(
        &mut self,
        time: Timestamp,
        proposer: &InstitutionId,
        verified: &[VerifiedTransaction],
    ) -> Result<Executed, (&'static str, String)> {
        match self {
            ReplayState::Memory(ledger) => {
                let (header, execution) = ledger
                    .execute_verified(time, proposer, verified)
                    .map_err(|e| match e {
                        LedgerError::TimeWentBack { .. } => ("block time", e.to_string()),
                        other => ("re-execution", other.to_string()),
                    })?;
                Ok(Executed {
                    header,
                    execution,
                    state: None,
                })
            }
            ReplayState::Disk(disk) => {
                let previous_time = disk.tip.as_ref().map_or(disk.genesis_time, |h| h.time);
                if time < previous_time {
                    return Err((
                        "block time",
                        format!(
                            "block time {} is before the previous block's {}",
                            time.0, previous_time.0
                        ),
                    ));
                }
                let height = disk.tip.as_ref().map_or(0, |h| h.height) + 1;
                let ctx = BlockContext {
                    height,
                    time,
                    hash: disk.chain.hash(),
                };
                let execution = execute_block(&disk.store, &ctx, verified)
                    .map_err(|e| ("re-execution", e.to_string()))?;
                let state = disk
                    .store
                    .prepare(height, &execution.writes)
                    .map_err(|e| ("re-execution", e.to_string()))?;
                let parent = Parent::of(disk.chain.hash(), disk.tip.as_ref(), disk.genesis_hash);
                let header = BlockHeader::following(
                    &disk.chain,
                    parent,
                    time,
                    proposer,
                    &execution,
                    state.root(),
                );
                Ok(Executed {
                    header,
                    execution,
                    state: Some(state),
                })
            }
        }
    }

    /// Keeps a block whose every check passed (on disk: one synced write,
    /// block, certificate, state, receipts and audit entries together).
    pub fn keep(
        &mut self,
        header: &BlockHeader,
        execution: &BlockExecution,
        state: Option<PreparedState>,
        archived: &ArchivedBlock,
    ) -> anyhow::Result<()> {
        if let (ReplayState::Disk(disk), Some(state)) = (self, state) {
            disk.store.commit(CommittedBlock {
                header,
                block_bytes: &archived.block,
                certificate_bytes: &archived.certificate,
                state,
                receipts: &execution.receipts,
                audit_entries: &execution.audit_entries,
            })?;
            disk.tip = Some(header.clone());
        }
        Ok(())
    }
}
