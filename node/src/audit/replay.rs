//! Replay from genesis, trusting no node. For every block, in order, the
//! first failed check stops the replay with the height, the transaction if
//! one is at fault, and the check's name:
//!
//! 1. `block decoding` — the stored bytes are a canonical block;
//! 2. `height` and `chain id` — the block is the next one of this chain;
//! 3. `hash chain` — it names the previous block's hash (genesis's for height 1);
//! 4. `commit certificate` — more than two thirds of the voting power of the
//!    validator set *of that height*, read from the replayed state (so
//!    governance changes are followed), signed precommits for this header;
//! 5. `transaction signature` — every transaction verifies strictly, on every
//!    core;
//! 6. re-execution with `contracts`: `block time`, `transaction root`,
//!    `state root`, `audit-log root`, `validator set` — the recomputed header
//!    must equal the stored one field by field;
//! 7. `audit entry` — the entries the node stored are exactly the recomputed
//!    ones. The audit log is recomputed from genesis, so it can only have grown
//!    by the entries of each block.

use std::time::{Duration, Instant};

use medledger_contracts::block::{Block, BlockHeader};
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::constants::CERTIFICATE_BYTES_MAX;
use medledger_contracts::encoding::from_bytes;
use medledger_contracts::ledger::MemoryLedger;
use medledger_contracts::records::ValidatorSetRecord;
use medledger_contracts::state::StateKey;
use medledger_contracts::state_machine::BlockExecution;
use medledger_contracts::transaction::{SignedTransaction, VerifiedTransaction};
use medledger_contracts::types::{ChainId, TxHash};
use medledger_genesis::Genesis;

use super::archive::ArchivedBlock;

/// The first check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay failed at height {height}{}: {check} check failed: {detail}", tx.map(|(i, id)| format!(", transaction {i} ({id})")).unwrap_or_default())]
pub struct ReplayFailure {
    /// The block.
    pub height: u64,
    /// The transaction at fault, if one is: its index and id.
    pub tx: Option<(usize, TxHash)>,
    /// The check's name.
    pub check: &'static str,
    /// What was found.
    pub detail: String,
}

fn fail(height: u64, check: &'static str, detail: impl Into<String>) -> ReplayFailure {
    ReplayFailure {
        height,
        tx: None,
        check,
        detail: detail.into(),
    }
}

/// A replay in progress.
pub struct Replay {
    ledger: MemoryLedger,
    chain: ChainId,
    genesis_hash: medledger_contracts::Hash32,
    /// Transactions replayed so far.
    pub transactions: u64,
}

/// What one replayed block produced, for reports.
pub struct Replayed {
    /// Its header.
    pub header: BlockHeader,
    /// Its execution (receipts, audit entries).
    pub execution: BlockExecution,
}

/// Verifies signatures on every core, in order; the first failure's index.
fn verify_all(
    chain: &ChainId,
    transactions: Vec<SignedTransaction>,
) -> Result<Vec<VerifiedTransaction>, (usize, TxHash, String)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let per = transactions.len().div_ceil(threads).max(1);
    let mut parts: Vec<Vec<SignedTransaction>> = Vec::new();
    let mut rest = transactions;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        parts.push(rest);
        rest = tail;
    }
    let results: Vec<Result<Vec<VerifiedTransaction>, (usize, TxHash, String)>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .enumerate()
                .map(|(part, txs)| {
                    scope.spawn(move || {
                        txs.into_iter()
                            .enumerate()
                            .map(|(i, tx)| {
                                let id = tx.transaction.id(chain);
                                tx.verify(chain)
                                    .map_err(|e| (part * per + i, id, e.to_string()))
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err((
                            0,
                            TxHash(Default::default()),
                            "verifier thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
    let mut out = Vec::new();
    for part in results {
        out.extend(part?);
    }
    Ok(out)
}

impl Replay {
    /// A replay from `genesis` (the only thing trusted).
    pub fn new(genesis: &Genesis) -> anyhow::Result<Self> {
        Ok(Self {
            ledger: genesis.memory_ledger()?,
            chain: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            transactions: 0,
        })
    }

    /// The replayed ledger (state at the last replayed height).
    pub fn ledger(&self) -> &MemoryLedger {
        &self.ledger
    }

    /// Checks and applies the next block, its decoding and signatures
    /// already checked by [`prepare`] (possibly on another thread).
    pub fn apply_prepared(&mut self, prepared: Prepared) -> Result<Replayed, ReplayFailure> {
        let height = self.ledger.height() + 1;
        let archived = &prepared.archived;
        if archived.height != height {
            return Err(fail(
                height,
                "height",
                format!("the source gives height {} next", archived.height),
            ));
        }
        let stored = prepared.header?;
        if stored.height != height {
            return Err(fail(
                height,
                "height",
                format!("the header says {}", stored.height),
            ));
        }
        if stored.chain_id != self.chain {
            return Err(fail(
                height,
                "chain id",
                format!("the header is for {}", stored.chain_id.as_str()),
            ));
        }
        let previous = self
            .ledger
            .headers()
            .last()
            .map_or(self.genesis_hash, BlockHeader::hash);
        if stored.previous_hash != previous {
            return Err(fail(
                height,
                "hash chain",
                format!(
                    "the header names previous block {}, the replayed chain has {previous}",
                    stored.previous_hash
                ),
            ));
        }
        // [4] The set that certifies this height, from the replayed state.
        let record: ValidatorSetRecord = self
            .ledger
            .get(&StateKey::ValidatorSet)
            .map_err(|e| fail(height, "commit certificate", e.to_string()))?
            .ok_or_else(|| fail(height, "commit certificate", "no validator set in state"))?;
        let set = record.at(height);
        let certificate: CommitCertificate =
            from_bytes(&archived.certificate, CERTIFICATE_BYTES_MAX).map_err(|e| {
                fail(
                    height,
                    "commit certificate",
                    format!("does not decode: {e}"),
                )
            })?;
        certificate
            .verify(self.chain.as_str(), set, height, &stored.hash())
            .map_err(|e| fail(height, "commit certificate", e.to_string()))?;
        // [5]
        let verified = prepared.verified?;
        // [6]
        let (recomputed, execution) = self
            .ledger
            .execute_verified(stored.time, &stored.proposer, &verified)
            .map_err(|e| match e {
                medledger_contracts::ledger::LedgerError::TimeWentBack { .. } => {
                    fail(height, "block time", e.to_string())
                }
                other => fail(height, "re-execution", other.to_string()),
            })?;
        let compare = |check: &'static str, ours: String, theirs: String| {
            if ours == theirs {
                Ok(())
            } else {
                Err(fail(
                    height,
                    check,
                    format!("the stored header says {theirs}, replay computes {ours}"),
                ))
            }
        };
        compare(
            "transaction root",
            recomputed.transaction_root.to_hex(),
            stored.transaction_root.to_hex(),
        )?;
        compare(
            "state root",
            recomputed.state_root.to_hex(),
            stored.state_root.to_hex(),
        )?;
        compare(
            "audit-log root",
            format!(
                "{} ({} entries)",
                recomputed.audit_root, recomputed.audit_size
            ),
            format!("{} ({} entries)", stored.audit_root, stored.audit_size),
        )?;
        compare(
            "validator set",
            recomputed.validator_set_hash.to_hex(),
            stored.validator_set_hash.to_hex(),
        )?;
        compare("header", recomputed.hash().to_hex(), stored.hash().to_hex())?;
        // [7]
        if archived.audit_entries != execution.audit_entries {
            let at = archived
                .audit_entries
                .iter()
                .zip(&execution.audit_entries)
                .position(|(a, b)| a != b)
                .map_or_else(
                    || "their number".to_string(),
                    |i| format!("entry {}", execution.audit_entries[i].index),
                );
            return Err(fail(
                height,
                "audit entry",
                format!("the node's stored audit entries differ from the replayed ones at {at}"),
            ));
        }
        self.transactions += verified.len() as u64;
        Ok(Replayed {
            header: recomputed,
            execution,
        })
    }

    /// Replays every block of `source`, verifying the next blocks' signatures
    /// on another thread while this one executes (a pipeline two blocks
    /// deep), calling `each` after every block.
    pub fn run(
        &mut self,
        source: impl Iterator<Item = anyhow::Result<ArchivedBlock>> + Send,
        mut each: impl FnMut(&Replayed, u64),
    ) -> anyhow::Result<()> {
        let chain = self.chain.clone();
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<Prepared>>(2);
            scope.spawn(move || {
                for block in source {
                    let prepared = block.map(|b| prepare(&chain, b));
                    let stop = prepared.is_err();
                    if tx.send(prepared).is_err() || stop {
                        return;
                    }
                }
            });
            for prepared in rx {
                let replayed = self.apply_prepared(prepared?)?;
                each(&replayed, self.transactions);
            }
            Ok(())
        })
    }
}

/// A block decoded and its signatures checked, ahead of execution; failures
/// are kept and reported when the replay reaches the block, in check order.
pub struct Prepared {
    archived: ArchivedBlock,
    header: Result<BlockHeader, ReplayFailure>,
    verified: Result<Vec<VerifiedTransaction>, ReplayFailure>,
}

/// Decodes a block and verifies its transactions' signatures (on every core).
pub fn prepare(chain: &ChainId, archived: ArchivedBlock) -> Prepared {
    let height = archived.height;
    match Block::from_bytes(&archived.block) {
        Err(e) => Prepared {
            header: Err(fail(height, "block decoding", e.to_string())),
            verified: Ok(Vec::new()),
            archived,
        },
        Ok(block) => {
            let header = block.header.clone();
            let verified =
                verify_all(chain, block.transactions.into_inner()).map_err(|(index, id, error)| {
                    ReplayFailure {
                        height,
                        tx: Some((index, id)),
                        check: "transaction signature",
                        detail: error,
                    }
                });
            Prepared {
                header: Ok(header),
                verified,
                archived,
            }
        }
    }
}

/// Prints progress to stderr at most once a second.
pub struct Progress {
    started: Instant,
    last: Instant,
    total_blocks: Option<u64>,
}

impl Progress {
    /// Progress for a replay of `total_blocks` (if known).
    pub fn new(total_blocks: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            total_blocks,
        }
    }

    /// Reports, if a second has passed.
    pub fn tick(&mut self, height: u64, transactions: u64) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = transactions as f64 / seconds;
        let eta = self
            .total_blocks
            .filter(|total| height > 0 && *total >= height)
            .map(|total| {
                format!(
                    ", about {:.0} s left",
                    seconds * (total - height) as f64 / height as f64
                )
            })
            .unwrap_or_default();
        eprintln!(
            "  replayed {height}{} blocks, {transactions} transactions, {rate:.0} tx/s{eta}",
            self.total_blocks
                .map(|t| format!(" of {t}"))
                .unwrap_or_default()
        );
    }

    /// Seconds since the start.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
