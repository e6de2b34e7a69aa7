//! The ledger as consensus sees it: builds blocks from the mempool,
//! re-executes others' blocks and votes only for those whose every root it
//! reproduces, and commits decided blocks to RocksDB.

use std::collections::HashMap;
use std::sync::Arc;

use medledger_consensus::{AppError, Application, Arrival, BlockRefusal};
use medledger_contracts::Hash32;
use medledger_contracts::block::{Block, BlockHeader, Parent};
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::constants::CERTIFICATE_BYTES_MAX;
use medledger_contracts::encoding::{BoundedVec, from_bytes, to_bytes};
use medledger_contracts::records::{Outcome, Rejection, ValidatorSet};
use medledger_contracts::state_machine::{BlockContext, BlockExecution, execute_block};
use medledger_contracts::transaction::VerifiedTransaction;
use medledger_contracts::types::MemberStatus;
use medledger_contracts::types::{Timestamp, TxHash};
use medledger_genesis::ConsensusParameters;
use medledger_store::{CommittedBlock, PreparedState};
use tracing::warn;

use crate::clock::now;
use crate::faults::Fault;
use crate::shared::{CommitEvent, Shared};

/// A block executed but not yet decided.
struct Pending {
    height: u64,
    header: BlockHeader,
    bytes: Vec<u8>,
    execution: BlockExecution,
    state: PreparedState,
}

/// A decided block could not be written (a full or failing disk): the node
/// stops rather than go on voting on heights it cannot keep. Every block it
/// acknowledged before is on disk (one synced write per block), so after the
/// operator frees space and restarts it, it catches up by sync.
fn storage_failed(height: u64, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(
        height,
        %error,
        "the ledger store refused a decided block (disk full or failing?); stopping this node. Nothing committed is lost: free space or repair the disk, then start it again"
    );
    eprintln!("medledger node: storage failed at height {height}: {error}; stopped");
    std::process::exit(super::disk::EXIT_STORAGE_FAILED)
}

/// The node's [`Application`].
pub struct LedgerApp {
    shared: Arc<Shared>,
    genesis_hash: Hash32,
    genesis_time: Timestamp,
    params: ConsensusParameters,
    pending: HashMap<Hash32, Pending>,
    fault: Option<Fault>,
}

impl LedgerApp {
    /// The application over shared node state.
    pub fn new(
        shared: Arc<Shared>,
        genesis_hash: Hash32,
        genesis_time: Timestamp,
        params: ConsensusParameters,
        faults: &crate::faults::FaultPlan,
    ) -> Self {
        let fault = faults.consensus;
        if let Some(fault) = fault {
            tracing::warn!(
                ?fault,
                "FAULT INJECTION ON: this node proposes invalid blocks"
            );
        }
        Self {
            shared,
            genesis_hash,
            genesis_time,
            params,
            pending: HashMap::new(),
            fault,
        }
    }

    /// The previous block's hash and time for a block at `height`.
    fn parent(&self, height: u64) -> Result<(Hash32, Timestamp), AppError> {
        if height <= 1 {
            return Ok((self.genesis_hash, self.genesis_time));
        }
        let header = self
            .shared
            .store
            .header(height - 1)
            .map_err(|e| AppError::Storage(e.to_string()))?
            .ok_or_else(|| AppError::Storage(format!("header {} missing", height - 1)))?;
        Ok((header.hash(self.shared.chain.hash()), header.time))
    }

    /// Executes transactions as block `height` at `time` and returns the
    /// header this node computes for them.
    fn execute(
        &self,
        height: u64,
        time: Timestamp,
        proposer: &medledger_contracts::types::InstitutionId,
        transactions: &[VerifiedTransaction],
    ) -> Result<(BlockHeader, BlockExecution, PreparedState), AppError> {
        let (previous_hash, _) = self.parent(height)?;
        let ctx = BlockContext {
            height,
            time,
            hash: self.shared.chain.hash(),
        };
        let started = std::time::Instant::now();
        let execution = execute_block(&self.shared.store, &ctx, transactions)
            .map_err(|e| AppError::State(e.to_string()))?;
        let executed = started.elapsed();
        let state = self
            .shared
            .store
            .prepare(height, &execution.writes)
            .map_err(|e| AppError::Storage(e.to_string()))?;
        if !transactions.is_empty() {
            tracing::debug!(
                height,
                transactions = transactions.len(),
                execute_ms = executed.as_millis(),
                state_tree_ms = (started.elapsed() - executed).as_millis(),
                "executed"
            );
        }
        let parent = Parent {
            hash: previous_hash,
            height: height - 1,
        };
        let header = BlockHeader::following(
            &self.shared.chain,
            parent,
            time,
            proposer,
            &execution,
            state.root(),
        );
        Ok((header, execution, state))
    }
}

impl Application for LedgerApp {
    fn next_height(&self) -> u64 {
        self.shared.height() + 1
    }

    fn validators(&self, height: u64) -> Result<ValidatorSet, AppError> {
        self.shared
            .validators(height)
            .map_err(|e| AppError::State(e.to_string()))
    }

    fn waiting_transactions(&self) -> usize {
        self.shared.mempool().len()
    }

    fn propose(&mut self, height: u64) -> Result<(Hash32, Vec<u8>), AppError> {
        let _span = tracing::info_span!("propose", height).entered();
        let (_, parent_time) = self.parent(height)?;
        // Never before the parent: grant expiry depends on block time only going forward.
        let time = match self.fault {
            Some(Fault::BackdatedBlockTime) => Timestamp(parent_time.0 + 1),
            _ => Timestamp(now().0.max(parent_time.0 + 1)),
        };
        let expired = self.shared.mempool().drop_expired(time);
        if expired > 0 {
            tracing::info!(
                expired,
                "dropped transactions past their valid_until from the pool"
            );
        }
        let transactions = self.shared.mempool().take_for_block(
            self.params.block_transactions_max as usize,
            medledger_contracts::constants::usize_from(self.params.block_bytes_max),
        );
        let institution = self.shared.institution.clone();
        let (mut header, execution, state) =
            self.execute(height, time, &institution, &transactions)?;
        match self.fault {
            None => {}
            Some(Fault::BadStateRoot) => header.state_root.0[0] ^= 1,
            Some(Fault::BadTransactionRoot) => header.transaction_root.0[0] ^= 1,
            Some(Fault::BackdatedBlockTime | Fault::SwapSignature) => {}
        }
        let mut signed: Vec<_> = transactions.iter().map(|t| t.signed().clone()).collect();
        if let (Some(Fault::SwapSignature), Some(first)) = (self.fault, signed.first_mut()) {
            let (medledger_contracts::crypto::Signature::Ed25519 { r, .. }
            | medledger_contracts::crypto::Signature::Sm2 { r, .. }) = &mut first.signature;
            r[0] ^= 1;
        }
        let block = Block {
            header: header.clone(),
            transactions: BoundedVec::new(signed).map_err(|_| {
                AppError::Invariant("the mempool gives at most a block's transactions")
            })?,
        };
        let bytes = block.to_bytes();
        let id = header.hash(self.shared.chain.hash());
        self.pending.insert(
            id,
            Pending {
                height,
                header,
                bytes: bytes.clone(),
                execution,
                state,
            },
        );
        Ok((id, bytes))
    }

    fn check(
        &mut self,
        height: u64,
        bytes: &[u8],
        arrival: Arrival,
    ) -> Result<Hash32, BlockRefusal> {
        let _span = tracing::info_span!("check", height, ?arrival).entered();
        let block =
            Block::from_bytes(bytes).map_err(|e| BlockRefusal::Undecodable(e.to_string()))?;
        let header = &block.header;
        let id = header.hash(self.shared.chain.hash());
        let invalid = |why: String| BlockRefusal::Invalid(id, why);
        // The clock checks come before the cache of blocks checked already:
        // a block first seen as a re-proposal (no lower bound) must not pass
        // later as a fresh one.
        let tolerance = self.params.block_time_tolerance_ms;
        if arrival != Arrival::Decided && header.time.0 > now().0 + tolerance {
            return Err(invalid(format!(
                "block time is more than {tolerance} ms ahead of this node's clock"
            )));
        }
        // A fresh proposal is dated now, give or take the tolerance: a
        // proposer may not backdate a block to where, say, a grant was still
        // active (issue 16, item 11). A block proposed again from an earlier
        // round's polka keeps that round's time.
        if arrival == Arrival::Fresh && header.time.0.saturating_add(tolerance) < now().0 {
            return Err(invalid(format!(
                "block time is more than {tolerance} ms behind this node's clock"
            )));
        }
        if self.pending.contains_key(&id) {
            return Ok(id);
        }
        let local = BlockRefusal::Local;
        if header.chain_id != self.shared.chain.id {
            return Err(invalid(format!("chain id {}", header.chain_id.as_str())));
        }
        if header.height != height {
            return Err(invalid(format!(
                "height {} at height {height}",
                header.height
            )));
        }
        let (parent_hash, parent_time) = self.parent(height).map_err(|e| local(e.to_string()))?;
        if header.previous_hash != parent_hash {
            return Err(invalid("previous block hash is not this node's".into()));
        }
        if header.time <= parent_time {
            return Err(invalid(
                "block time is not after the previous block's".into(),
            ));
        }
        if block.transactions.len() > self.params.block_transactions_max as usize
            || bytes.len() as u64 > self.params.block_bytes_max + 4096
        {
            return Err(invalid("block exceeds the genesis block limits".into()));
        }
        let validators = self
            .shared
            .validators(height)
            .map_err(|e| local(e.to_string()))?;
        if validators.get(&header.proposer).is_none() {
            return Err(invalid("proposer is not a validator".into()));
        }
        // Signatures already checked on arrival in this node's mempool are
        // not checked again — but only where the block carries exactly the
        // copy that was checked: the id does not cover the signature, and a
        // proposer could otherwise commit a block whose stored signatures
        // do not verify (issue 21).
        let verified = {
            let pool = self.shared.mempool();
            let mut out = Vec::with_capacity(block.transactions.len());
            let mut unchecked = Vec::new();
            for (index, tx) in block.transactions.iter().enumerate() {
                let id = tx.id(&self.shared.chain);
                match pool.verified(&id).filter(|v| {
                    v.signed().public_key == tx.public_key && v.signed().signature == tx.signature
                }) {
                    Some(v) => out.push(Some(v.clone())),
                    None => {
                        out.push(None);
                        unchecked.push(index);
                    }
                }
            }
            drop(pool);
            let unchecked_count = unchecked.len();
            // The rest in one batch (ZIP-215: a batch accepts what one by one
            // accepts); on failure `verify_many` names the first bad one.
            let copies = unchecked
                .iter()
                .map(|&index| block.transactions.as_slice().get(index).cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("transaction index".into()))?;
            let checked = medledger_contracts::transaction::verify_many(
                &self.shared.chain,
                copies,
                &self.shared.signing_keys,
            )
            .map_err(|(i, _, e)| {
                invalid(format!(
                    "transaction {}: {e}",
                    unchecked.get(i).copied().unwrap_or(i)
                ))
            })?;
            for (index, v) in unchecked.into_iter().zip(checked) {
                if let Some(slot) = out.get_mut(index) {
                    *slot = Some(v);
                }
            }
            let out = out.into_iter().flatten().collect::<Vec<_>>();
            if unchecked_count > 0 {
                tracing::debug!(
                    height,
                    unchecked = unchecked_count,
                    "verified signatures not seen before"
                );
            }
            out
        };
        let (expected, execution, state) = self
            .execute(height, header.time, &header.proposer, &verified)
            .map_err(|e| local(e.to_string()))?;
        header
            .check_against(self.shared.chain.hash(), &expected)
            .map_err(|m| {
            invalid(format!(
                "{} differs from this node's re-execution: the proposal says {}, re-execution gives {}",
                m.field, m.stated, m.computed
            ))
        })?;
        self.pending.insert(
            id,
            Pending {
                height,
                header: expected,
                bytes: bytes.to_vec(),
                execution,
                state,
            },
        );
        Ok(id)
    }

    fn commit(
        &mut self,
        height: u64,
        block: &Hash32,
        certificate: CommitCertificate,
    ) -> Result<(), AppError> {
        let _span = tracing::info_span!("commit", height, block = %block).entered();
        let pending = self
            .pending
            .remove(block)
            .ok_or(AppError::UnknownBlock(*block))?;
        let started = std::time::Instant::now();
        let certificate_bytes = to_bytes(&certificate);
        // What the block committed, and the copies it took but rejected
        // without a trace for good (R1: a duplicate, or expired), which
        // leave the pool without being remembered as committed. One valid
        // for too long at this block's time may fit a later block's window
        // (a proposer's clock behind the admitting node's): it stays.
        let transactions: Vec<_> = pending
            .execution
            .receipts
            .iter()
            .filter(|r| !r.outcome.leaves_no_trace())
            .map(|r| r.tx)
            .collect();
        let untraced: Vec<(TxHash, Rejection)> = pending
            .execution
            .receipts
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Rejected(
                    rejection @ (Rejection::Duplicate | Rejection::Expired { .. }),
                ) => Some((r.tx, rejection.clone())),
                _ => None,
            })
            .collect();
        self.shared
            .store
            .commit(CommittedBlock {
                header: &pending.header,
                block_bytes: &pending.bytes,
                certificate_bytes: &certificate_bytes,
                state: pending.state,
                receipts: &pending.execution.receipts,
                audit_entries: &pending.execution.audit_entries,
            })
            .or_else(|e| match e {
                // The caller's mistake (e.g. out of order): this height
                // restarts and the block comes again by sync.
                medledger_store::StoreError::Invalid(why) => Err(AppError::Storage(why)),
                disk => storage_failed(height, &disk),
            })?;
        if !transactions.is_empty() {
            tracing::info!(
                height,
                transactions = transactions.len(),
                write_ms = started.elapsed().as_millis(),
                "committed"
            );
        }
        {
            let mut pool = self.shared.mempool();
            pool.committed(&transactions);
            pool.remove(untraced.iter().map(|(id, _)| *id));
        }
        self.shared
            .metrics
            .observe_commit(pending.header.time.0, transactions.len());
        self.pending.retain(|_, p| p.height > height);
        let _ = self.shared.commits.send(Arc::new(CommitEvent {
            header: pending.header,
            transactions,
            untraced,
            audit: pending.execution.audit_entries,
        }));
        Ok(())
    }

    fn member_nodes(&self) -> Result<Vec<medledger_consensus::MemberNode>, AppError> {
        Ok(self
            .shared
            .institution_records()
            .map_err(|e| AppError::State(e.to_string()))?
            .into_iter()
            .map(|r| medledger_consensus::MemberNode {
                transport_identity: *r.spec.transport_identity(),
                active: r.status == MemberStatus::Active,
                institution: r.spec.id,
            })
            .collect())
    }

    fn decided(&self, height: u64) -> Option<(Vec<u8>, CommitCertificate)> {
        let store = &self.shared.store;
        let bytes = store.block_bytes(height).ok()??;
        let cert = store.certificate_bytes(height).ok()??;
        match from_bytes(&cert, CERTIFICATE_BYTES_MAX) {
            Ok(cert) => Some((bytes, cert)),
            Err(e) => {
                warn!(height, error = %e, "stored certificate does not decode");
                None
            }
        }
    }
}
