//! `medledger bench`: a local consortium of `--validators` validators (four
//! by default) under a stream of signed grant and access-request
//! transactions, measured from outside.
//!
//! Phases: set-up (patients register and each grants the second hospital
//! access), throughput (as fast as the consortium takes them, for
//! `--seconds`), latency (paced at half the measured throughput). Commit
//! times come from polling the first node's blocks every 20 ms, so latencies
//! carry up to that much extra. The bench client runs on the same machine as
//! nodes and takes CPU from them; its share is printed.
//!
//! Besides the rates it prints what one committed transaction costs each
//! node in CPU (what a hospital's own server would spend), and which limit
//! capped the rate: busy cores, full blocks, blocks leaving work waiting, or
//! admission — from the blocks the poller saw and the first node's mempool
//! size, sampled every 100 ms. With many validators on two cores the
//! wall-clock rate says more about the machine than the consortium, so it
//! also prints what grows with their number: the bytes each node receives
//! from its peers per block (consensus over libp2p, read from the kernel's
//! per-socket counters with `ss`) and the CPU per transaction per node.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use medledger_client_sdk::KeyFile;
use medledger_client_sdk::api;
use medledger_contracts::crypto::{CryptoSuite, SecretKey};
use medledger_contracts::encoding::{BoundedVec, HashFunction};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::*;
use serde_json::json;
use tokio::sync::Semaphore;

use medledger_testnet::{Consortium, TestnetLayout};

use crate::socket_bytes::{self, Link};

/// Bench settings from the command line.
pub struct BenchOptions {
    /// Where the consortium goes (default: a temporary directory).
    pub dir: Option<PathBuf>,
    /// Length of the throughput phase.
    pub seconds: u64,
    /// Simulated patients.
    pub patients: usize,
    /// HTTP requests in flight at once.
    pub concurrency: usize,
    /// Transactions per request in the throughput phase (1: `POST /v1/tx`
    /// each; more: `POST /v1/txs`).
    pub batch: usize,
    /// Validators (at least 4, so that one may be killed).
    pub validators: usize,
    /// The crypto suite of the consortium.
    pub suite: CryptoSuite,
    /// Every node's store codec.
    pub compression: medledger_store::Compression,
}

/// When each transaction was first seen committed, by id.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// A block as the poller saw it: how many transactions, and when.
#[derive(Clone, Copy)]
struct BlockSeen {
    transactions: usize,
    at: Instant,
}

/// The first node's mempool and round, sampled every 100 ms.
#[derive(Clone, Copy)]
struct StatusSample {
    at: Instant,
    mempool: u64,
    round: u64,
}

/// What the blocks and the first node's pool did during a window: enough to
/// tell which limit capped what committed.
struct WindowFigures {
    blocks: usize,
    full_blocks: usize,
    mean_transactions: f64,
    blocks_per_second: f64,
    /// Median of the first node's waiting transactions.
    mempool_median: f64,
    /// Highest consensus round seen (above 0: a round timed out).
    round_max: u64,
}

impl WindowFigures {
    /// Which limit capped the committed rate, in a few words. Busy cores
    /// come first: when the machine has no CPU left, blocks fill and work
    /// waits because each block takes that long to build, check and commit,
    /// and larger blocks would not commit more. Then full blocks (block size
    /// times cadence), work waiting that blocks did not take (cadence), and
    /// otherwise admission or the client not offering more.
    fn limit(&self, capacity: usize, cpu_cores_busy: f64, cores: f64) -> String {
        let full = self.blocks > 0 && self.full_blocks * 5 >= self.blocks * 4;
        let blocks = format!(
            "{} of {} blocks full at {capacity}, {:.1} blocks/s, the first node's pool median {:.0}",
            self.full_blocks, self.blocks, self.blocks_per_second, self.mempool_median
        );
        if cpu_cores_busy >= 0.9 * cores {
            format!("CPU: nodes and client used {cpu_cores_busy:.2} of {cores:.0} cores ({blocks})")
        } else if full {
            format!("block size: {blocks}")
        } else if self.mempool_median >= capacity as f64 {
            format!(
                "block cadence: a block's worth waited but blocks averaged {:.0} transactions ({blocks})",
                self.mean_transactions
            )
        } else {
            format!(
                "submission: admission (HTTP, decoding, signatures, trial runs) or the client held the rate, {cpu_cores_busy:.2} of {cores:.0} cores busy ({blocks})"
            )
        }
    }
}

struct Bench {
    layout: TestnetLayout,
    /// Submissions go round-robin to the first `live` nodes.
    live: usize,
    chain: Chain,
    http: reqwest::Client,
    seen: Seen,
    blocks: Arc<Mutex<Vec<BlockSeen>>>,
    samples: Arc<Mutex<Vec<StatusSample>>>,
}

/// A synthetic, reproducible key of `suite`'s scheme (for SM2 the same 32
/// bytes as the scalar, drawn again in the 2^-224 case they are not one).
pub(super) fn synthetic_key_of(suite: CryptoSuite, label: &str, n: u64) -> SecretKey {
    let mut seed = synthetic_seed(label, n);
    loop {
        match SecretKey::from_seed_of(suite, seed) {
            Ok(key) => return key,
            Err(_) => {
                seed = HashFunction::Sha256
                    .tagged_hash(b"medledger/bench-key-again", &[&seed])
                    .0
            }
        }
    }
}

fn synthetic_seed(label: &str, n: u64) -> [u8; 32] {
    // Bench keys are synthetic and reproducible; never for real use.
    HashFunction::Sha256
        .tagged_hash(
            b"medledger/bench-key",
            &[label.as_bytes(), &n.to_be_bytes()],
        )
        .0
}

/// A bench testnet's validity window (R1): the throughput phase's
/// transactions are all signed before it starts, up to a few minutes
/// before they are sent.
pub(super) const BENCH_TX_VALIDITY_WINDOW_MS: u64 = 3_600_000;

/// Signs a bench transaction valid until `valid_until`.
pub(super) fn sign(
    chain: &Chain,
    key: &SecretKey,
    signer: Signer,
    nonce: u64,
    valid_until: Timestamp,
    payload: Payload,
) -> SignedTransaction {
    Transaction {
        signer,
        nonce,
        valid_until,
        payload,
    }
    .sign(chain, key)
}

/// Nearest-rank percentile of sorted values (a bench figure: rounding is fine).
#[allow(clippy::cast_possible_truncation)]
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks; USER_HZ is 100 on every mainstream build.
    Some((utime + stime) / 100.0)
}

/// A memory figure of a process from /proc (`VmHWM:` peak, `VmRSS:` now), in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Peak resident memory of a process, in MiB.
pub(super) fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// Current resident memory of a process, in MiB.
pub(super) fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// The layout `bench-verify` and `bench-records` run on: four validators
/// on `suite` in `dir`, the default validity window.
pub(super) fn four_validators_on(
    suite: medledger_contracts::crypto::CryptoSuite,
    dir: &Path,
) -> anyhow::Result<medledger_testnet::TestnetLayout> {
    medledger_testnet::init_on(
        suite,
        dir,
        4,
        0,
        0,
        "medledger-bench",
        medledger_testnet::TX_VALIDITY_WINDOW_MS,
    )
}

pub(super) fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Bench {
    /// The ports the nodes listen on, by kind of link.
    fn ports(&self) -> socket_bytes::Ports {
        let port = |address: &str| -> Option<u16> {
            // `http://127.0.0.1:P` or `/ip4/127.0.0.1/tcp/P/p2p/…`.
            match address.split_once("/tcp/") {
                Some((_, rest)) => rest.split('/').next()?.parse().ok(),
                None => address.rsplit_once(':')?.1.parse().ok(),
            }
        };
        let nodes = &self.layout.nodes;
        socket_bytes::Ports {
            consensus: nodes.iter().filter_map(|n| port(&n.p2p)).collect(),
            http: nodes.iter().filter_map(|n| port(&n.http)).collect(),
            gateway: nodes.iter().filter_map(|n| port(&n.gateway)).collect(),
        }
    }

    fn data_bytes(&self) -> u64 {
        self.layout
            .nodes
            .iter()
            .map(|n| dir_bytes(&n.home.join("data").join("ledger")))
            .sum::<u64>()
            / self.layout.nodes.len() as u64
    }

    async fn height(&self) -> Option<u64> {
        self.height_of(0).await
    }

    async fn height_of(&self, node: usize) -> Option<u64> {
        let url = format!("{}/v1/status", self.layout.nodes[node].http);
        let status: api::Status = self.http.get(url).send().await.ok()?.json().await.ok()?;
        Some(status.height)
    }

    /// Restarts the killed validator `node` on its data: how long until it
    /// answers again, and until it has every block the others committed
    /// meanwhile. (seconds to serve, seconds to catch up, blocks caught up)
    async fn restart(&self, node: usize) -> anyhow::Result<(f64, f64, u64)> {
        // A consortium of which only `node` runs: it is killed when this ends.
        let mut restarted = Consortium::new(std::env::current_exe()?, self.layout.clone());
        restarted.start(node)?;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(300);
        let (serving, own) = loop {
            if let Some(h) = self.height_of(node).await {
                break (started.elapsed().as_secs_f64(), h);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the restarted node never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let target = self.height().await.unwrap_or(own);
        while self.height_of(node).await.unwrap_or(0) < target {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the restarted node never caught up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok((
            serving,
            started.elapsed().as_secs_f64(),
            target.saturating_sub(own),
        ))
    }

    /// Follows the first node's blocks and notes when each transaction commits.
    fn spawn_poller(&self) {
        let http = self.http.clone();
        let base = self.layout.nodes[0].http.clone();
        let seen = self.seen.clone();
        let blocks = self.blocks.clone();
        tokio::spawn(async move {
            let mut next = 1u64;
            loop {
                let url = format!("{base}/v1/blocks/{next}/transactions");
                let body = match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        r.json::<api::BlockTransactions>().await.ok()
                    }
                    _ => None,
                };
                match body {
                    Some(body) => {
                        let now = Instant::now();
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        for id in &body.transactions {
                            seen.entry(id.to_string()).or_insert(now);
                        }
                        blocks
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(BlockSeen {
                                transactions: body.transactions.len(),
                                at: now,
                            });
                        next += 1;
                    }
                    None => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
    }

    /// Samples the first node's mempool size and round every 100 ms.
    fn spawn_sampler(&self) {
        let http = self.http.clone();
        let url = format!("{}/v1/status", self.layout.nodes[0].http);
        let samples = self.samples.clone();
        tokio::spawn(async move {
            loop {
                let status = async {
                    http.get(&url)
                        .send()
                        .await
                        .ok()?
                        .json::<api::Status>()
                        .await
                        .ok()
                };
                if let Some(status) = status.await {
                    samples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(StatusSample {
                            at: Instant::now(),
                            mempool: status.mempool_size,
                            round: status.round,
                        });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    /// Blocks and pool between `from` and `to`; a block is full at `capacity`.
    fn window_figures(&self, from: Instant, to: Instant, capacity: usize) -> WindowFigures {
        let blocks: Vec<BlockSeen> = self
            .blocks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|b| b.at > from && b.at <= to)
            .copied()
            .collect();
        let mut pool: Vec<f64> = Vec::new();
        let mut round_max = 0;
        for s in self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.at > from && s.at <= to)
        {
            pool.push(s.mempool as f64);
            round_max = round_max.max(s.round);
        }
        pool.sort_by(f64::total_cmp);
        let transactions: usize = blocks.iter().map(|b| b.transactions).sum();
        WindowFigures {
            blocks: blocks.len(),
            full_blocks: blocks.iter().filter(|b| b.transactions >= capacity).count(),
            mean_transactions: transactions as f64 / blocks.len().max(1) as f64,
            blocks_per_second: blocks.len() as f64
                / to.saturating_duration_since(from).as_secs_f64().max(0.001),
            mempool_median: if pool.is_empty() {
                0.0
            } else {
                percentile(&pool, 50.0)
            },
            round_max,
        }
    }

    /// Submits one transaction, retrying while the mempool is full or the
    /// node asks to slow down (backing off, like [`Self::drive_batched`]).
    async fn submit(http: &reqwest::Client, url: &str, body: &str) -> anyhow::Result<()> {
        let mut backoff = Duration::from_millis(20);
        loop {
            let response = http
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await?;
            match response.status().as_u16() {
                200 => return Ok(()),
                429 => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                status => bail!(
                    "refused ({status}): {}",
                    response.text().await.unwrap_or_default()
                ),
            }
        }
    }

    /// Submits transactions round-robin over the nodes, `concurrency` at a
    /// time, optionally paced at `rate` per second; stops at `until`.
    /// Returns when each was accepted, by id.
    async fn drive(
        &self,
        transactions: Vec<SignedTransaction>,
        concurrency: usize,
        rate: Option<f64>,
        until: Option<Instant>,
    ) -> anyhow::Result<Vec<(String, Instant)>> {
        let semaphore = Arc::new(Semaphore::new(concurrency));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (n, tx) in transactions.into_iter().enumerate() {
            if until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            if let Some(rate) = rate {
                let due = start + Duration::from_secs_f64(n as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let permit = semaphore.clone().acquire_owned().await?;
            let node = &self.layout.nodes[n % self.live.max(1)];
            let url = format!("{}/v1/tx", node.http);
            let id = tx.id(&self.chain).0.to_hex();
            let body = serde_json::to_string(&api::SubmitBody {
                transaction: hex::encode(tx.to_bytes()),
                wait: false,
                after_height: None,
            })?;
            let http = self.http.clone();
            let accepted = accepted.clone();
            let failures = failures.clone();
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                match Self::submit(&http, &url, &body).await {
                    Ok(()) => accepted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((id, sent)),
                    Err(e) => failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(e.to_string()),
                }
                drop(permit);
            }));
        }
        Self::gather(tasks, &accepted, &failures).await
    }

    /// Waits for the submitting tasks; what they accepted, or the first of
    /// their refusals.
    async fn gather(
        tasks: Vec<tokio::task::JoinHandle<()>>,
        accepted: &Mutex<Vec<(String, Instant)>>,
        failures: &Mutex<Vec<String>>,
    ) -> anyhow::Result<Vec<(String, Instant)>> {
        for task in tasks {
            task.await?;
        }
        let failures = failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = failures.first() {
            bail!("{} transactions refused; first: {first}", failures.len());
        }
        Ok(accepted.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Submits as fast as the nodes take them until `until`, one per
    /// request or `options.batch` per request.
    async fn drive_until(
        &self,
        transactions: Vec<SignedTransaction>,
        options: &BenchOptions,
        until: Instant,
    ) -> anyhow::Result<Vec<(String, Instant)>> {
        if options.batch > 1 {
            self.drive_batched(transactions, options.concurrency, options.batch, until)
                .await
        } else {
            self.drive(transactions, options.concurrency, None, Some(until))
                .await
        }
    }

    /// Like [`Self::drive`] without pacing, `batch` transactions per
    /// `POST /v1/txs`; items refused for room (mempool full, signer quota)
    /// are sent again shortly, any other refusal fails the run.
    async fn drive_batched(
        &self,
        transactions: Vec<SignedTransaction>,
        concurrency: usize,
        batch: usize,
        until: Instant,
    ) -> anyhow::Result<Vec<(String, Instant)>> {
        let semaphore = Arc::new(Semaphore::new(concurrency));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut tasks = Vec::new();
        let mut transactions = transactions.into_iter();
        for n in 0.. {
            if Instant::now() >= until {
                break;
            }
            let chunk: Vec<(String, String)> = transactions
                .by_ref()
                .take(batch)
                .map(|tx| (tx.id(&self.chain).0.to_hex(), hex::encode(tx.to_bytes())))
                .collect();
            if chunk.is_empty() {
                break;
            }
            let permit = semaphore.clone().acquire_owned().await?;
            let url = format!("{}/v1/txs", self.layout.nodes[n % self.live.max(1)].http);
            let (http, accepted, failures) =
                (self.http.clone(), accepted.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                let mut pending = chunk;
                // Over the address's rate, back off: retrying at once spends
                // the budget the retry waits for (each refused request
                // counts), and 64 tasks doing so would never get through.
                let mut backoff = Duration::from_millis(20);
                while !pending.is_empty() {
                    let transactions = pending.iter().map(|(_, hex)| hex.clone()).collect();
                    let answer: anyhow::Result<Option<api::SubmitManyAnswer>> = async {
                        let response = http
                            .post(&url)
                            .json(&api::SubmitManyBody { transactions })
                            .send()
                            .await?;
                        match response.status().as_u16() {
                            200 => Ok(Some(response.json().await?)),
                            // Over the address's rate: the whole batch again shortly.
                            429 => Ok(None),
                            status => bail!("refused ({status}): {}", response.text().await?),
                        }
                    }
                    .await;
                    let body = match answer {
                        Ok(Some(body)) => body,
                        Ok(None) => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                            continue;
                        }
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(e.to_string());
                            break;
                        }
                    };
                    let mut retry = Vec::new();
                    for ((id, hex), result) in pending.into_iter().zip(body.results) {
                        match result {
                            api::SubmitResult::Accepted { .. } => accepted
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((id, sent)),
                            api::SubmitResult::Refused { code, .. }
                                if code == "mempool_full" || code == "signer_quota" =>
                            {
                                retry.push((id, hex))
                            }
                            api::SubmitResult::Refused { code, message } => failures
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("{code}: {message}")),
                        }
                    }
                    pending = retry;
                    if !pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                drop(permit);
            }));
        }
        Self::gather(tasks, &accepted, &failures).await
    }

    /// How many of `accepted` were seen committed by `end`.
    fn committed_by(&self, accepted: &[(String, Instant)], end: Instant) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        accepted
            .iter()
            .filter(|(id, _)| seen.get(id).is_some_and(|t| *t <= end))
            .count()
    }

    /// Submits everything and waits until all of it is committed (set-up).
    async fn commit_all(
        &self,
        transactions: Vec<SignedTransaction>,
        concurrency: usize,
    ) -> anyhow::Result<()> {
        let accepted = self.drive(transactions, concurrency, None, None).await?;
        self.wait_committed(&accepted, Duration::from_secs(120))
            .await
    }

    async fn wait_committed(
        &self,
        ids: &[(String, Instant)],
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let missing = {
                let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                ids.iter().filter(|(id, _)| !seen.contains_key(id)).count()
            };
            if missing == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{missing} of {} transactions not committed within {within:?}",
                    ids.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub fn run(options: BenchOptions) -> anyhow::Result<()> {
    let dir = options.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("medledger-bench-{}", std::process::id()))
    });
    anyhow::ensure!(
        options.validators >= 4,
        "--validators must be at least 4: the bench kills one and the rest must carry on"
    );
    let layout = medledger_testnet::init_on(
        options.suite,
        &dir,
        options.validators,
        0,
        0,
        "medledger-bench",
        BENCH_TX_VALIDITY_WINDOW_MS,
    )?;
    // Each node's store codec, in its own configuration file.
    for node in &layout.nodes {
        let mut config = medledger_node::config::NodeConfig::load(&node.home)?;
        config.storage_compression = options.compression.name().into();
        std::fs::write(node.home.join("config.toml"), config.to_commented_toml())?;
    }
    let nodes = Consortium::launch(std::env::current_exe()?, layout.clone())?;
    let pids: Vec<u32> = (0..layout.nodes.len())
        .map(|i| nodes.pid(i))
        .collect::<Option<_>>()
        .context("every node was just started")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&dir, layout, &pids, &options));
    drop(nodes);
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn bench(
    dir: &Path,
    layout: TestnetLayout,
    pids: &[u32],
    options: &BenchOptions,
) -> anyhow::Result<()> {
    let chain = medledger_testnet::chain_of(dir)?;
    let mut bench = Bench {
        live: layout.nodes.len(),
        layout,
        chain: chain.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(options.concurrency)
            .build()?,
        seen: Arc::new(Mutex::new(HashMap::new())),
        blocks: Arc::default(),
        samples: Arc::default(),
    };
    let capacity = medledger_genesis::GenesisFile::read(&dir.join("genesis.json"))?
        .consensus
        .block_transactions_max as usize;
    let deadline = Instant::now() + Duration::from_secs(90);
    while bench.height().await.unwrap_or(0) < 1 {
        if Instant::now() > deadline {
            bail!("the consortium did not start committing within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bench.spawn_poller();
    bench.spawn_sampler();
    let ports = bench.ports();
    let validators = bench.layout.nodes.len();

    // Idle: blocks without transactions, so what each node receives per
    // block is consensus alone (proposal, votes, certificates).
    let idle_seconds = 5.0;
    let idle_cpu_before: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let idle_before = (
        socket_bytes::read(pids, &ports),
        bench.height().await.unwrap_or(0),
    );
    tokio::time::sleep(Duration::from_secs_f64(idle_seconds)).await;
    let idle_after = (
        socket_bytes::read(pids, &ports),
        bench.height().await.unwrap_or(0),
    );
    // What a node spends with nothing to do (empty blocks, votes, timers,
    // peers' pings), as a share of a core: with many validators on two
    // cores it is a visible part of the CPU per transaction.
    let idle_cpu: Vec<Option<f64>> = idle_cpu_before
        .iter()
        .zip(pids.iter().map(|p| cpu_seconds(*p)))
        .map(|(b, a)| b.zip(a).map(|(b, a)| (a - b) / idle_seconds))
        .collect();
    let idle_cpu_per_node = mean_of(&idle_cpu);
    let idle_blocks = idle_after.1.saturating_sub(idle_before.1);
    let idle_bytes_per_block = per_node_per(
        &idle_before.0,
        &idle_after.0,
        Link::Consensus,
        validators,
        idle_blocks,
    );
    let doctor = KeyFile::load(&dir.join("keys").join("practitioner.dr-second-1.json"))?;
    let doctor_id = doctor.practitioner_id();
    let first = InstitutionId::new("city-first-hospital")?;
    let second = InstitutionId::new("city-second-hospital")?;
    let now = medledger_node::clock::now();
    // Half the window ahead: the last of them is sent well within it.
    let valid_until = Timestamp(now.0 + BENCH_TX_VALIDITY_WINDOW_MS / 2);
    let patients: Vec<SecretKey> = (0..options.patients as u64)
        .map(|n| synthetic_key_of(chain.suite, "patient", n))
        .collect();
    let patient_id = |key: &SecretKey| PatientId::from_key(chain.hash(), &key.public_key());
    let grant = |key: &SecretKey, nonce: u64| -> anyhow::Result<SignedTransaction> {
        let patient = patient_id(key);
        let terms = GrantTerms {
            patient,
            grantee: Grantee::Institution(second.clone()),
            categories: BoundedVec::new(vec![Category::LabReports, Category::Imaging])
                .map_err(|_| anyhow::anyhow!("categories"))?,
            holders: Holders::Listed(
                BoundedVec::new(vec![first.clone()]).map_err(|_| anyhow::anyhow!("holders"))?,
            ),
            purpose: Purpose::Referral,
            not_before: now,
            expires_at: now.plus_days(30),
            records_from: None,
            records_until: None,
            sensitive_included: BoundedVec::default(),
            notice_hash: chain
                .hash()
                .tagged_hash(b"medledger/bench-notice", &[&nonce.to_be_bytes()]),
        };
        Ok(sign(
            &chain,
            key,
            Signer::Patient(patient),
            nonce,
            valid_until,
            Payload::Grant(terms),
        ))
    };

    eprintln!(
        "set-up: {} patients register and grant the second hospital access",
        patients.len()
    );
    let registrations: Vec<_> = patients
        .iter()
        .map(|k| {
            sign(
                &chain,
                k,
                Signer::Patient(patient_id(k)),
                0,
                valid_until,
                Payload::RegisterPatient,
            )
        })
        .collect();
    bench.commit_all(registrations, options.concurrency).await?;
    let disk_before_grants = bench.data_bytes();
    let setup_grants = patients
        .iter()
        .map(|k| grant(k, 1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let grant_ids: Vec<TxHash> = setup_grants.iter().map(|t| t.id(&chain)).collect();
    bench.commit_all(setup_grants, options.concurrency).await?;
    let disk_after_grants = bench.data_bytes();

    // Throughput: half new grants, half access requests under set-up grants.
    let mut nonce = 10u64;
    let mut workload = |count: usize| -> anyhow::Result<Vec<SignedTransaction>> {
        let mut out = Vec::with_capacity(count);
        for n in 0..count {
            nonce += 1;
            let index = n % patients.len();
            if n % 2 == 0 {
                out.push(grant(&patients[index], nonce)?);
            } else {
                out.push(sign(
                    &chain,
                    doctor.secret(),
                    Signer::Practitioner(doctor_id),
                    nonce,
                    valid_until,
                    Payload::AccessRequest {
                        grant: grant_ids[index],
                        holder: first.clone(),
                        categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
                        purpose: Purpose::Referral,
                    },
                ));
            }
        }
        Ok(out)
    };
    // Well above what the consortium commits, so that it, not the supply,
    // limits the rate: Ed25519 chains committed up to ≈5,500 tx/s here, SM2
    // ones ≈300 (docs/scale.md). More would cost the client minutes of
    // signing on SM. (Batched on SM, fewer requests in flight keep what is
    // accepted drainable within the phases' bounds: --concurrency 8.)
    let per_second = match chain.suite {
        CryptoSuite::Ed25519Sha256 => 12_000,
        CryptoSuite::Sm2Sm3 => 1_500,
    };
    let planned = usize::try_from(options.seconds)? * per_second;
    eprintln!("signing {planned} transactions for the throughput phase");
    let transactions = workload(planned)?;
    let cpu_before: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let client_cpu_before = cpu_seconds(std::process::id());
    let disk_before = bench.data_bytes();
    let sockets_before = socket_bytes::read(pids, &ports);
    let height_before = bench.height().await.unwrap_or(0);
    eprintln!("throughput phase: {} s", options.seconds);
    let start = Instant::now();
    let window = Duration::from_secs(options.seconds);
    let accepted = bench
        .drive_until(transactions, options, start + window)
        .await?;
    let submitted_for = start.elapsed();
    // How busy the cores were while submissions ran (the limit's test).
    let busy_cpu: f64 = pids
        .iter()
        .chain(std::iter::once(&std::process::id()))
        .filter_map(|p| cpu_seconds(*p))
        .sum();
    let accepted_in_window = accepted.len();
    eprintln!(
        "  {} accepted in {:.1} s",
        accepted.len(),
        submitted_for.as_secs_f64()
    );
    // Count what committed inside the window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed_in_window = bench.committed_by(&accepted, start + window);
    let committed_total = bench.committed_by(&accepted, Instant::now());
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    let sockets_after = socket_bytes::read(pids, &ports);
    let window_blocks = bench
        .height()
        .await
        .unwrap_or(0)
        .saturating_sub(height_before);
    let consensus_bytes_per_block = per_node_per(
        &sockets_before,
        &sockets_after,
        Link::Consensus,
        validators,
        window_blocks,
    );
    let http_bytes_per_tx = per_node_per(
        &sockets_before,
        &sockets_after,
        Link::Http,
        validators,
        committed_total as u64,
    );
    let client_cpu = cpu_seconds(std::process::id())
        .zip(client_cpu_before)
        .map(|(a, b)| (a - b) / elapsed);
    let throughput = committed_in_window as f64 / window.as_secs_f64();
    let figures = bench.window_figures(start, start + window, capacity);
    // CPU each node spent from the window's start until 3 s after it, over
    // what committed in that time: the cost of one committed transaction.
    let node_cpu_us_per_tx: Vec<Option<f64>> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(b, a)| {
            b.zip(*a)
                .map(|(b, a)| (a - b) / committed_total.max(1) as f64 * 1e6)
        })
        .collect();
    let cpu_us_per_tx = mean_of(&node_cpu_us_per_tx);
    let cores_busy = (busy_cpu
        - cpu_before
            .iter()
            .chain(std::iter::once(&client_cpu_before))
            .flatten()
            .sum::<f64>())
        / submitted_for.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let limit = figures.limit(capacity, cores_busy, cores);
    bench
        .wait_committed(&accepted, Duration::from_secs(120))
        .await?;
    let disk_after = bench.data_bytes();
    let requests = accepted.len() / 2;

    // Latency at half the throughput.
    let rate = (throughput / 2.0).max(1.0);
    let latency_seconds = 20.0;
    #[allow(clippy::cast_possible_truncation)]
    let count = (rate * latency_seconds) as usize;
    eprintln!("latency phase: {count} transactions at {rate:.0}/s");
    let transactions = workload(count)?;
    let accepted = bench
        .drive(transactions, options.concurrency, Some(rate), None)
        .await?;
    bench
        .wait_committed(&accepted, Duration::from_secs(120))
        .await?;
    let mut latencies: Vec<f64> = {
        let seen = bench.seen.lock().unwrap_or_else(|p| p.into_inner());
        accepted
            .iter()
            .filter_map(|(id, sent)| {
                seen.get(id)
                    .map(|t| t.saturating_duration_since(*sent).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    latencies.sort_by(|a, b| a.total_cmp(b));
    let (p50, p95, p99) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0),
        percentile(&latencies, 99.0),
    );

    // One validator killed (SIGKILL), the last, so that submissions keep
    // going round-robin to the others and the first keeps serving the
    // poller: the rest must carry on.
    let victim = validators - 1;
    eprintln!(
        "one-down phase: killing {} and submitting for {} s",
        bench.layout.nodes[victim].institution, options.seconds
    );
    let _ = std::process::Command::new("kill")
        .args(["-9", &pids[victim].to_string()])
        .status();
    bench.live = victim;
    let transactions = workload(planned)?;
    let start = Instant::now();
    let accepted = bench
        .drive_until(transactions, options, start + window)
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let one_down_committed = bench.committed_by(&accepted, start + window);
    let one_down = one_down_committed as f64 / window.as_secs_f64();
    let one_down_figures = bench.window_figures(start, start + window, capacity);

    // The killed validator restarts on its data, now behind by the one-down
    // window's blocks.
    let chain_height = bench.height().await.unwrap_or(0);
    let killed_data = dir_bytes(&bench.layout.nodes[victim].home.join("data"));
    eprintln!(
        "restart: starting {} again",
        bench.layout.nodes[victim].institution
    );
    let (serving_s, caught_up_s, behind) = bench.restart(victim).await?;

    let per_grant =
        (disk_after_grants.saturating_sub(disk_before_grants)) as f64 / patients.len() as f64;
    let per_mixed =
        (disk_after.saturating_sub(disk_before)) as f64 / accepted_len_nonzero(requests * 2);
    println!();
    println!(
        "medledger bench — {validators} validators on this machine ({cores:.0} cores), client on the same machine, crypto suite {}, store compression {}",
        options.suite.name(),
        options.compression.name()
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| throughput window | {} s (submitting for {:.1} s), {} |",
        options.seconds,
        submitted_for.as_secs_f64(),
        if options.batch > 1 {
            format!("{} transactions per POST /v1/txs", options.batch)
        } else {
            "one transaction per POST /v1/tx".into()
        }
    );
    println!(
        "| committed in window | {committed_in_window} of {submitted} accepted ({committed_total} within 3 s after) |",
        submitted = accepted_in_window
    );
    println!("| committed transactions / s | {throughput:.0} |");
    println!(
        "| CPU per committed transaction, per node (CPU from the window's start to 3 s after it, over what committed in that time) | {} µs (nodes: {}) |",
        cpu_us_per_tx.map_or("?".into(), |c| format!("{c:.0}")),
        node_cpu_us_per_tx
            .iter()
            .map(|c| c.map_or("?".into(), |c| format!("{c:.0}")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| blocks in the window | {} ({:.1}/s), {:.0} transactions each on average, {} full at {capacity}; first node's pool median {:.0}; highest round {} |",
        figures.blocks,
        figures.blocks_per_second,
        figures.mean_transactions,
        figures.full_blocks,
        figures.mempool_median,
        figures.round_max
    );
    println!("| what limited the rate | {limit} |");
    println!(
        "| consensus bytes received per block, per node (libp2p: proposal parts, votes, sync) | idle {} over {idle_blocks} empty blocks; throughput {} over {window_blocks} blocks |",
        bytes_text(idle_bytes_per_block),
        bytes_text(consensus_bytes_per_block),
    );
    println!(
        "| HTTP bytes received per committed transaction, per node (client submissions and mempool gossip; what was accepted but not yet committed counts too) | {} |",
        bytes_text(http_bytes_per_tx)
    );
    println!(
        "| CPU per node while idle (empty blocks, before the set-up) | {} |",
        idle_cpu_per_node.map_or("?".into(), |c| format!(
            "{:.1}% of a core (over the throughput phase's rate: {:.0} µs per transaction)",
            c * 100.0,
            c / throughput.max(1.0) * 1e6
        ))
    );
    println!(
        "| committed transactions / s, one of {validators} validators killed | {one_down:.0} ({:.0}% of all up) |",
        one_down / throughput.max(1.0) * 100.0
    );
    println!(
        "| blocks, one down | {} ({:.1}/s), {:.0} transactions each on average, {} full; highest round {} |",
        one_down_figures.blocks,
        one_down_figures.blocks_per_second,
        one_down_figures.mean_transactions,
        one_down_figures.full_blocks,
        one_down_figures.round_max
    );
    println!(
        "| latency phase rate | {rate:.0} / s, {} transactions |",
        latencies.len()
    );
    println!("| submit → commit p50 / p95 / p99 | {p50:.0} / {p95:.0} / {p99:.0} ms |");
    println!(
        "| restart of the killed validator (chain at height {chain_height}, its data {:.0} MiB) | answering after {serving_s:.2} s; {behind} blocks behind, caught up after {caught_up_s:.2} s |",
        killed_data as f64 / (1 << 20) as f64
    );
    println!("| disk per grant (set-up, with its audit entry) | {per_grant:.0} B per node |");
    println!("| disk per transaction (throughput mix) | {per_mixed:.0} B per node |");
    for ((node, before), after) in bench.layout.nodes.iter().zip(&cpu_before).zip(&cpu_after) {
        let cpu = before.zip(*after).map(|(b, a)| (a - b) / elapsed * 100.0);
        let pid = pids[bench
            .layout
            .nodes
            .iter()
            .position(|n| n.institution == node.institution)
            .unwrap_or(0)];
        println!(
            "| {} CPU (throughput phase) / peak memory | {} / {} |",
            node.institution,
            cpu.map_or("?".into(), |c| format!("{c:.0}% of a core")),
            peak_rss_mib(pid).map_or("?".into(), |m| format!("{m:.0} MiB")),
        );
    }
    println!(
        "| bench client CPU | {} |",
        client_cpu.map_or("?".into(), |c| format!("{:.0}% of a core", c * 100.0))
    );
    let line = json!({
        "bench": "medledger",
        "validators": validators,
        "crypto_suite": options.suite.name(),
        "store_compression": options.compression.name(),
        "window_s": options.seconds,
        "transactions_per_request": options.batch,
        "committed_tps": throughput,
        "committed_tps_one_down": one_down,
        "cpu_us_per_tx_per_node": cpu_us_per_tx,
        "node_cpu_us_per_tx": node_cpu_us_per_tx,
        "block_transactions_max": capacity,
        "blocks": {"count": figures.blocks, "per_s": figures.blocks_per_second, "mean_transactions": figures.mean_transactions, "full": figures.full_blocks, "mempool_median": figures.mempool_median, "round_max": figures.round_max},
        "limit": limit,
        "consensus_bytes_per_block_per_node": {"idle": idle_bytes_per_block, "idle_blocks": idle_blocks, "throughput": consensus_bytes_per_block, "throughput_blocks": window_blocks},
        "http_bytes_per_tx_per_node": http_bytes_per_tx,
        "idle_cpu_cores_per_node": idle_cpu_per_node,
        "latency_rate_tps": rate,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
        "restart": {"height": chain_height, "data_bytes": killed_data, "serving_s": serving_s, "caught_up_s": caught_up_s, "blocks_behind": behind},
        "disk_bytes_per_grant": per_grant,
        "disk_bytes_per_tx_mixed": per_mixed,
        "node_cpu_cores": cpu_before.iter().zip(&cpu_after).map(|(b, a)| b.zip(*a).map(|(b, a)| (a - b) / elapsed)).collect::<Vec<_>>(),
        "node_peak_rss_mib": pids.iter().map(|p| peak_rss_mib(*p)).collect::<Vec<_>>(),
    });
    println!();
    println!("{line}");
    Ok(())
}

/// Bytes received on `link` between two readings, per node and per `unit`
/// (blocks or transactions); `None` without both readings or any unit.
fn per_node_per(
    before: &Option<socket_bytes::Reading>,
    after: &Option<socket_bytes::Reading>,
    link: Link,
    nodes: usize,
    units: u64,
) -> Option<f64> {
    let (Some(before), Some(after)) = (before, after) else {
        return None;
    };
    (units > 0 && nodes > 0)
        .then(|| after.received_since(before, link) as f64 / nodes as f64 / units as f64)
}

/// A byte figure in B, KiB or MiB; `?` if unknown.
fn bytes_text(bytes: Option<f64>) -> String {
    match bytes {
        None => "? (`ss` missing or no block)".into(),
        Some(b) if b >= f64::from(1 << 20) => format!("{:.2} MiB", b / f64::from(1 << 20)),
        Some(b) if b >= 1024.0 => format!("{:.1} KiB", b / 1024.0),
        Some(b) => format!("{b:.0} B"),
    }
}

/// The mean of the known values (`None` if none is known).
fn mean_of(values: &[Option<f64>]) -> Option<f64> {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
}

fn accepted_len_nonzero(n: usize) -> f64 {
    n.max(1) as f64
}
