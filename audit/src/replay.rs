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
//! 5. `transaction signature` — every transaction's signature verifies, on
//!    every core, in batches (`contracts::transaction::verify_many`: one
//!    batch equation, which accepts exactly what verification one by one
//!    does (ZIP-215); on failure one by one, so the failing transaction is
//!    named);
//! 6. re-execution with `contracts`: `block time`, `transaction root`,
//!    `state root`, `audit-log root`, `validator set` — the recomputed header
//!    must equal the stored one field by field;
//! 7. `audit entry` — the entries the node stored are exactly the recomputed
//!    ones. The audit log is recomputed from genesis, so it can only have grown
//!    by the entries of each block.
//!
//! Only the newest state is kept (one state tree in memory, whatever the
//! ledger's length). A replay can write a checkpoint — the newest header and
//! state — and resume from it: blocks up to the checkpoint are then only
//! skimmed (decoded, hash-chained, their audit entries folded into the log
//! and checked against each header's audit root, for the reports), and the
//! header at the checkpoint's height must be the checkpoint's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medledger_contracts::Hash32;
use medledger_contracts::block::{Block, BlockHeader};
use medledger_contracts::certificate::CommitCertificate;
use medledger_contracts::constants::CERTIFICATE_BYTES_MAX;
use medledger_contracts::crypto::KeyCache;
use medledger_contracts::encoding::{HashFunction, from_bytes, to_bytes};
use medledger_contracts::ledger::Checkpoint;
use medledger_contracts::merkle::Frontier;
use medledger_contracts::records::{AuditEntry, ValidatorSetRecord};
use medledger_contracts::state::StateKey;
use medledger_contracts::state_machine::BlockExecution;
use medledger_contracts::transaction::{SignedTransaction, VerifiedTransaction, verify_many};
use medledger_contracts::types::{Chain, ChainId, TxHash};
use medledger_genesis::Genesis;

use super::archive::ArchivedBlock;
use super::state::{DiskState, ReplayState};

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
    state: ReplayState,
    chain: Chain,
    genesis_hash: Hash32,
    /// Transactions replayed so far.
    pub transactions: u64,
    /// Set when resumed: the blocks up to the checkpoint are skimmed.
    skim: Option<Skim>,
    /// Where and how often to write checkpoints.
    checkpoints: Option<(PathBuf, Duration, Instant)>,
}

/// Blocks before a resumed replay's checkpoint: only linked and their audit
/// entries folded, up to the checkpoint's own header.
struct Skim {
    hash: HashFunction,
    upto: u64,
    checkpoint_hash: Hash32,
    next: u64,
    previous: Hash32,
    frontier: Frontier,
}

impl Skim {
    /// Skims from genesis up to `resume_point`, which the block at its height must be.
    fn up_to(hash: HashFunction, resume_point: &BlockHeader, genesis_hash: Hash32) -> Self {
        Self {
            hash,
            upto: resume_point.height,
            checkpoint_hash: resume_point.hash(hash),
            next: 1,
            previous: genesis_hash,
            frontier: Frontier::new(),
        }
    }
}

/// What a checkpoint file holds (BCS, gzip-compressed).
#[derive(serde::Serialize, serde::Deserialize)]
struct ReplayCheckpoint {
    /// Format version.
    format: u32,
    chain: ChainId,
    genesis_hash: Hash32,
    transactions: u64,
    ledger: Checkpoint,
}

/// The checkpoint format written now.
const CHECKPOINT_FORMAT: u32 = 1;
/// The largest checkpoint read back (the state of a very large ledger).
const CHECKPOINT_BYTES_MAX: usize = 64 << 30;

/// What one replayed block produced, for reports.
pub struct Replayed {
    /// Its header.
    pub header: BlockHeader,
    /// Its execution (receipts, audit entries).
    pub execution: BlockExecution,
}

/// Most signers' keys the replay keeps prepared; past this the cache
/// starts afresh.
const SIGNING_KEYS_MAX: usize = 1 << 16;

/// Verifies signatures on every core, one batch per core, in order; the
/// first failure's index. Keys prepared once are kept for later blocks.
fn verify_all(
    chain: &Chain,
    transactions: Vec<SignedTransaction>,
) -> Result<Vec<VerifiedTransaction>, (usize, TxHash, String)> {
    static SIGNING_KEYS: std::sync::OnceLock<KeyCache> = std::sync::OnceLock::new();
    let keys = SIGNING_KEYS.get_or_init(|| KeyCache::new(SIGNING_KEYS_MAX));
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
                        verify_many(chain, txs, keys)
                            .map_err(|(i, id, e)| (part * per + i, id, e.to_string()))
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
        let mut ledger = genesis.memory_ledger()?;
        ledger.keep_latest_only();
        Ok(Self {
            state: ReplayState::Memory(ledger),
            chain: genesis.chain(),
            genesis_hash: genesis.hash(),
            transactions: 0,
            skim: None,
            checkpoints: None,
        })
    }

    /// A replay that goes on from the checkpoint in `file` (written by an
    /// earlier replay of the same genesis); its state must hash to its
    /// header's state root.
    pub fn resume(genesis: &Genesis, file: &Path) -> anyhow::Result<Self> {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(file)?)
            .take(CHECKPOINT_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        Self::resume_from(genesis, &bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
    }

    /// A replay that goes on from a checkpoint's uncompressed bytes.
    pub fn resume_from(genesis: &Genesis, bytes: &[u8]) -> anyhow::Result<Self> {
        let mut replay = Self::new(genesis)?;
        let checkpoint: ReplayCheckpoint = from_bytes(bytes, CHECKPOINT_BYTES_MAX)
            .map_err(|e| anyhow::anyhow!("not a replay checkpoint: {e}"))?;
        if checkpoint.format != CHECKPOINT_FORMAT
            || checkpoint.chain != replay.chain.id
            || checkpoint.genesis_hash != replay.genesis_hash
        {
            anyhow::bail!("a checkpoint of another chain, genesis or format");
        }
        let header = checkpoint.ledger.header.clone();
        if let ReplayState::Memory(ledger) = &mut replay.state {
            ledger.restore(checkpoint.ledger)?;
        }
        replay.transactions = checkpoint.transactions;
        replay.skim = Some(Skim::up_to(
            replay.chain.hash(),
            &header,
            replay.genesis_hash,
        ));
        Ok(replay)
    }

    /// A replay whose state lives in a RocksDB store in `dir` (the node's
    /// format): memory stays bounded, and if `dir` already holds part of a
    /// replay of this genesis, it goes on from there (the blocks before are
    /// skimmed, as after a checkpoint).
    pub fn on_disk(
        genesis: &Genesis,
        dir: &Path,
        compression: medledger_store::Compression,
    ) -> anyhow::Result<Self> {
        let disk = DiskState::open(dir, genesis, compression)?;
        let mut replay = Self::new(genesis)?;
        replay.state = ReplayState::Disk(disk);
        if let Some(tip) = replay.state.last_header() {
            replay.skim = Some(Skim::up_to(replay.chain.hash(), tip, replay.genesis_hash));
        }
        Ok(replay)
    }

    /// Writes a checkpoint to `file` every `every` (and when the replay ends).
    pub fn checkpoint_to(&mut self, file: PathBuf, every: Duration) {
        self.checkpoints = Some((file, every, Instant::now()));
    }

    /// The height a resumed replay starts executing after (0 from genesis).
    pub fn resumed_at(&self) -> u64 {
        self.skim.as_ref().map_or(0, |s| s.upto)
    }

    /// Writes the checkpoint now (atomically: a crash leaves the old one).
    pub fn save_checkpoint(&self, file: &Path) -> anyhow::Result<()> {
        let ReplayState::Memory(ledger) = &self.state else {
            // On disk the store itself is the checkpoint.
            return Ok(());
        };
        let Some(ledger) = ledger.checkpoint()? else {
            return Ok(());
        };
        let bytes = to_bytes(&ReplayCheckpoint {
            format: CHECKPOINT_FORMAT,
            chain: self.chain.id.clone(),
            genesis_hash: self.genesis_hash,
            transactions: self.transactions,
            ledger,
        });
        let tmp = file.with_extension("tmp");
        {
            let mut out = flate2::write::GzEncoder::new(
                std::fs::File::create(&tmp)?,
                flate2::Compression::fast(),
            );
            out.write_all(&bytes)?;
            out.finish()?.sync_all()?;
        }
        std::fs::rename(&tmp, file)?;
        Ok(())
    }

    /// Checks a block before the checkpoint: decoded, next in height, linked
    /// to the one before, its audit entries extend the log to its audit root;
    /// at the checkpoint's height, the checkpoint's own header.
    fn skim_prepared(&mut self, prepared: Prepared) -> Result<Option<Skimmed>, ReplayFailure> {
        let Some(skim) = self.skim.as_mut() else {
            return Ok(None);
        };
        let height = skim.next;
        if prepared.archived.height != height {
            return Err(fail(
                height,
                "height",
                format!("the source gives height {} next", prepared.archived.height),
            ));
        }
        let header = prepared.header?;
        if header.height != height || header.previous_hash != skim.previous {
            return Err(fail(
                height,
                "hash chain",
                "the block does not follow the one before it",
            ));
        }
        for entry in &prepared.archived.audit_entries {
            skim.frontier.push(skim.hash, entry.leaf_hash(skim.hash));
        }
        if skim.frontier.root(skim.hash) != header.audit_root
            || skim.frontier.size() != header.audit_size
        {
            return Err(fail(
                height,
                "audit entry",
                "the stored audit entries do not extend the log to the header's audit root",
            ));
        }
        skim.previous = header.hash(skim.hash);
        skim.next += 1;
        if height == skim.upto {
            if skim.previous != skim.checkpoint_hash {
                return Err(fail(
                    height,
                    "checkpoint",
                    "the source's block at the checkpoint's height is not the checkpoint's",
                ));
            }
            self.skim = None;
        }
        Ok(Some(Skimmed {
            header,
            audit_entries: prepared.archived.audit_entries,
        }))
    }

    /// The replayed state (at the last replayed height).
    pub fn state(&self) -> &ReplayState {
        &self.state
    }

    /// Checks and applies the next block, its decoding and signatures
    /// already checked by [`prepare`] (possibly on another thread).
    pub fn apply_prepared(&mut self, prepared: Prepared) -> Result<Replayed, ReplayFailure> {
        let height = self.state.height() + 1;
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
        if stored.chain_id != self.chain.id {
            return Err(fail(
                height,
                "chain id",
                format!("the header is for {}", stored.chain_id.as_str()),
            ));
        }
        let previous = self
            .state
            .last_header()
            .map_or(self.genesis_hash, |header| header.hash(self.chain.hash()));
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
            .state
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
            .verify(&self.chain, set, height, &stored.hash(self.chain.hash()))
            .map_err(|e| fail(height, "commit certificate", e.to_string()))?;
        // [5]
        let verified = prepared.verified?;
        // [6]
        let executed = self
            .state
            .execute(stored.time, &stored.proposer, &verified)
            .map_err(|(check, detail)| fail(height, check, detail))?;
        let (recomputed, execution) = (executed.header, executed.execution);
        stored
            .check_against(self.chain.hash(), &recomputed)
            .map_err(|m| {
                fail(
                    height,
                    m.field,
                    format!(
                        "the stored header says {}, replay computes {}",
                        m.stated, m.computed
                    ),
                )
            })?;
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
        // Every check passed: only now does a disk-backed replay keep the block.
        self.state
            .keep(&recomputed, &execution, executed.state, archived)
            .map_err(|e| fail(height, "storage", e.to_string()))?;
        self.transactions += verified.len() as u64;
        Ok(Replayed {
            header: recomputed,
            execution,
        })
    }

    /// Replays every block of `source`, verifying the next blocks' signatures
    /// on another thread while this one executes (a pipeline two blocks
    /// deep), calling `each` with every block's header and audit entries
    /// (skimmed ones too, when resumed) and the transactions replayed so far.
    pub fn run(
        &mut self,
        source: impl Iterator<Item = anyhow::Result<ArchivedBlock>> + Send,
        mut each: impl FnMut(&ReplayState, &BlockHeader, &[AuditEntry], u64),
    ) -> anyhow::Result<()> {
        let chain = self.chain.clone();
        let skim_upto = self.resumed_at();
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<Prepared>>(2);
            scope.spawn(move || {
                for block in source {
                    // Skimmed blocks are not executed: no signatures to check.
                    let prepared = block.map(|b| {
                        if b.height <= skim_upto {
                            decode_only(b)
                        } else {
                            prepare(&chain, b)
                        }
                    });
                    let stop = prepared.is_err();
                    if tx.send(prepared).is_err() || stop {
                        return;
                    }
                }
            });
            for prepared in rx {
                let prepared = prepared?;
                if self.skim.is_some() {
                    if let Some(skimmed) = self.skim_prepared(prepared)? {
                        each(
                            &self.state,
                            &skimmed.header,
                            &skimmed.audit_entries,
                            self.transactions,
                        );
                    }
                    continue;
                }
                let replayed = self.apply_prepared(prepared)?;
                each(
                    &self.state,
                    &replayed.header,
                    &replayed.execution.audit_entries,
                    self.transactions,
                );
                if let Some((file, every, last)) = &self.checkpoints
                    && last.elapsed() >= *every
                {
                    let file = file.clone();
                    self.save_checkpoint(&file)?;
                    if let Some((_, _, last)) = self.checkpoints.as_mut() {
                        *last = Instant::now();
                    }
                }
            }
            if self.skim.is_some() {
                anyhow::bail!(
                    "the source ends before the checkpoint's height {}",
                    self.resumed_at()
                );
            }
            if let Some((file, ..)) = &self.checkpoints {
                self.save_checkpoint(file)?;
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

/// A skimmed block: its header and stored audit entries.
struct Skimmed {
    header: BlockHeader,
    audit_entries: Vec<AuditEntry>,
}

/// Decodes a block without checking its signatures (it is only skimmed).
fn decode_only(archived: ArchivedBlock) -> Prepared {
    let header = Block::from_bytes(&archived.block)
        .map(|b| b.header)
        .map_err(|e| fail(archived.height, "block decoding", e.to_string()));
    Prepared {
        header,
        verified: Ok(Vec::new()),
        archived,
    }
}

/// Decodes a block and verifies its transactions' signatures (on every core).
pub fn prepare(chain: &Chain, archived: ArchivedBlock) -> Prepared {
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
