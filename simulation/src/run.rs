//! One simulated run: the consortium of [`crate::cluster`], the region of
//! [`crate::world`] acting on it step by step, faults from the seed's plan,
//! the invariants checked during the run and at its end, and a report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use medledger_client_sdk::{Client, SdkError, TxReceipt};
use medledger_contracts::types::TxHash;
use serde_json::Value;

use crate::cluster::Cluster;

/// How long a healed consortium may take to commit again.
pub const HEAL_BOUND_SECS: u64 = 120;

/// Which faults a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// SIGKILL a validator and restart it.
    pub kill: bool,
    /// Cut a validator off and heal; at the end, split the consortium two-two and heal.
    pub partition: bool,
    /// Slow every link of one node for a while.
    pub slow: bool,
    /// Run one node with its clock shifted within the genesis tolerance.
    pub skew: bool,
    /// Fill one node's disk, then free it and restart the node.
    pub disk: bool,
    /// A validator that proposes blocks with a wrong state root; a holder
    /// that alters the records it sends; replayed fetches; one transaction
    /// sent to two nodes at once; a revocation racing a request.
    pub byzantine: bool,
    /// One member (the second hospital) attacks the others with its own
    /// keys: a forged guardianship, reviewing its own emergency access, a
    /// replayed read, downloading whole blocks, hiding a release, a flood.
    pub hostile: bool,
}

impl Faults {
    /// Every fault.
    pub const ALL: Faults = Faults {
        kill: true,
        partition: true,
        slow: true,
        skew: true,
        disk: true,
        byzantine: true,
        hostile: true,
    };
    /// No fault.
    pub const NONE: Faults = Faults {
        kill: false,
        partition: false,
        slow: false,
        skew: false,
        disk: false,
        byzantine: false,
        hostile: false,
    };

    /// Parses `all`, `none`, or a comma-separated list of names.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "all" => return Ok(Self::ALL),
            "none" => return Ok(Self::NONE),
            _ => {}
        }
        let mut faults = Self::NONE;
        for name in text.split(',').map(str::trim) {
            match name {
                "kill" => faults.kill = true,
                "partition" => faults.partition = true,
                "slow" => faults.slow = true,
                "skew" => faults.skew = true,
                "disk" => faults.disk = true,
                "byzantine" => faults.byzantine = true,
                "hostile" => faults.hostile = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: kill, partition, slow, skew, disk, byzantine, hostile, all or none"
                    ));
                }
            }
        }
        Ok(faults)
    }

    /// The list [`Faults::parse`] reads back.
    pub fn names(&self) -> String {
        let names: Vec<&str> = [
            (self.kill, "kill"),
            (self.partition, "partition"),
            (self.slow, "slow"),
            (self.skew, "skew"),
            (self.disk, "disk"),
            (self.byzantine, "byzantine"),
            (self.hostile, "hostile"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything random follows from it.
    pub seed: u64,
    /// Patients (besides their guardians and proxies).
    pub patients: usize,
    /// Workload steps per fault round (the whole run, unless soaking).
    pub steps: usize,
    /// Faults the plan may inject.
    pub faults: Faults,
    /// A fault to build into the first hospital's node
    /// (`MEDLEDGER_FAULT`, e.g. `skip-grant-check`): the invariants must catch it.
    pub holder_fault: Option<String>,
    /// Keep going, round after round of `steps`, for this long.
    pub soak: Option<Duration>,
    /// Background registrations per second on top of the scripted workload.
    pub load: u32,
    /// The report's interval.
    pub interval: Duration,
    /// The `medledger` binary.
    pub binary: PathBuf,
}

impl SimConfig {
    /// The command line that reruns this configuration.
    pub fn rerun(&self) -> String {
        let mut line = format!(
            "medledger-sim --seed {} --patients {} --steps {} --faults {}",
            self.seed,
            self.patients,
            self.steps,
            self.faults.names()
        );
        if let Some(f) = &self.holder_fault {
            line.push_str(&format!(" --holder-fault {f}"));
        }
        if let Some(soak) = self.soak {
            line.push_str(&format!(" --soak {}", soak.as_secs()));
        }
        if self.load > 0 {
            line.push_str(&format!(" --load {}", self.load));
        }
        line
    }
}

/// A broken promise.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Which invariant.
    pub invariant: &'static str,
    /// What was found.
    pub detail: String,
    /// The configuration, to rerun.
    pub config: Box<SimConfig>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        writeln!(f, "==== medledger simulation FAILED ====")?;
        writeln!(f, "seed:         {}", c.seed)?;
        writeln!(f, "patients:     {}", c.patients)?;
        writeln!(f, "steps:        {}", c.steps)?;
        writeln!(f, "faults:       {}", c.faults.names())?;
        writeln!(
            f,
            "holder fault: {}",
            c.holder_fault.as_deref().unwrap_or("none")
        )?;
        writeln!(
            f,
            "soak:         {}",
            c.soak.map_or("no".into(), |s| format!("{} s", s.as_secs()))
        )?;
        writeln!(f, "load:         {} tx/s", c.load)?;
        writeln!(f, "invariant:    {}", self.invariant)?;
        writeln!(f, "detail:       {}", self.detail)?;
        write!(f, "rerun:        {}", c.rerun())
    }
}

/// One committed transaction as the simulator saw it.
#[derive(Clone, Copy, Debug)]
pub struct Commit {
    /// When it was acknowledged, ms since the run began.
    pub at_ms: u64,
    /// Submit-to-commit latency, ms.
    pub latency_ms: u64,
    /// Whether the background load sent it (else the scripted workload).
    pub background: bool,
}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every acknowledged commit, in order.
    pub commits: Vec<Commit>,
    /// Records fetched through the gateway.
    pub fetches: usize,
    /// Fetches refused as they should be.
    pub refusals: usize,
    /// Counts of what the region did (grants, revocations, emergencies…).
    pub actions: BTreeMap<&'static str, usize>,
    /// Faults injected, with when (ms since the run began).
    pub faults: Vec<(u64, String)>,
    /// Invariants checked.
    pub invariants: BTreeSet<&'static str>,
    /// The hostile member's attempts: step, attack, outcome.
    pub hostile: Vec<(usize, &'static str, String)>,
    /// Bytes carried between nodes, by kind of traffic.
    pub bytes: BTreeMap<&'static str, u64>,
    /// The last height.
    pub height: u64,
    /// Wall time.
    pub seconds: f64,
    /// The report's interval.
    pub interval: Duration,
}

impl Report {
    /// Acknowledged commits.
    pub fn committed(&self) -> usize {
        self.commits.len()
    }

    /// Latencies (ms), sorted.
    pub fn latencies(&self) -> Vec<u64> {
        let mut l: Vec<u64> = self.commits.iter().map(|c| c.latency_ms).collect();
        l.sort_unstable();
        l
    }
}

/// The `p`th percentile of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: usize) -> u64 {
    sorted
        .get(sorted.len().saturating_sub(1) * p / 100)
        .copied()
        .unwrap_or(0)
}

/// SplitMix64: a small, well-known seeded generator (no dependency).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A fault that takes one node out (or makes it misbehave) for a window of
/// steps; at most one is active at a time, so the consortium keeps a quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// SIGKILL, restarted at the end.
    Kill(usize),
    /// Cut off from the others, healed at the end.
    Cut(usize),
    /// Its disk filled; freed and the node restarted at the end.
    FullDisk(usize),
    /// Restarted as a holder that alters the records it sends; restarted honest at the end.
    Tamper(usize),
}

/// A window of steps.
#[derive(Clone, Copy, Debug)]
pub struct Window<T> {
    /// First step.
    pub start: usize,
    /// The step at which it ends.
    pub end: usize,
    /// What.
    pub what: T,
}

/// One round's faults.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Outages, not overlapping.
    pub outages: Vec<Window<Outage>>,
    /// Slow links: (node, delay in ms).
    pub slow: Vec<Window<(usize, u64)>>,
}

/// The nodes faults may strike, by role.
pub struct Targets {
    /// Validators that are not hospitals (kill, cut, disk).
    pub others: Vec<usize>,
    /// The node with the small disk.
    pub disk: Option<usize>,
    /// The hospital that may turn tamperer.
    pub tamper: Option<usize>,
    /// Every node.
    pub all: usize,
}

/// Plans a round of `steps`: each enabled outage in its own slice of the
/// round, slow links anywhere.
pub fn plan(rng: &mut Rng, steps: usize, faults: &Faults, targets: &Targets) -> Plan {
    let mut outages: Vec<Outage> = Vec::new();
    let pick = |rng: &mut Rng, from: &[usize]| from[rng.below(from.len())];
    if faults.kill && !targets.others.is_empty() {
        outages.push(Outage::Kill(pick(rng, &targets.others)));
    }
    if faults.partition && !targets.others.is_empty() {
        outages.push(Outage::Cut(pick(rng, &targets.others)));
    }
    if let (true, Some(node)) = (faults.disk, targets.disk) {
        outages.push(Outage::FullDisk(node));
    }
    if let (true, Some(node)) = (faults.byzantine, targets.tamper) {
        outages.push(Outage::Tamper(node));
    }
    // Shuffle, then give each a slice of the round.
    for i in (1..outages.len()).rev() {
        outages.swap(i, rng.below(i + 1));
    }
    let mut plan = Plan::default();
    let slice = steps / outages.len().max(1);
    for (k, outage) in outages.into_iter().enumerate() {
        if slice < 3 {
            break;
        }
        let length = 2 + rng.below((slice - 2).min(4));
        let start = k * slice + rng.below(slice - length);
        plan.outages.push(Window {
            start,
            end: start + length,
            what: outage,
        });
    }
    if faults.slow && steps > 4 {
        let length = 3 + rng.below(6.min(steps - 3));
        let start = rng.below(steps - length.min(steps - 1));
        plan.slow.push(Window {
            start,
            end: start + length,
            what: (rng.below(targets.all), 50 + rng.below(250) as u64),
        });
    }
    plan
}

/// Commits acknowledged to anyone (the scripted workload and the background load).
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<Acked>>);

/// What [`Ledger`] holds.
#[derive(Default)]
pub struct Acked {
    /// Every acknowledged transaction and its height.
    pub transactions: Vec<(TxHash, u64)>,
    /// How each was seen.
    pub commits: Vec<Commit>,
}

impl Ledger {
    /// Records an acknowledged commit.
    pub fn record(&self, receipt: &TxReceipt, started: Instant, sent: Instant, background: bool) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Ok(mut acked) = self.0.lock() {
            acked.transactions.push((receipt.tx, receipt.height));
            acked.commits.push(Commit {
                at_ms: ms(started.elapsed()),
                latency_ms: ms(sent.elapsed()),
                background,
            });
        }
    }

    /// A copy of what was acknowledged.
    pub fn snapshot(&self) -> (Vec<(TxHash, u64)>, Vec<Commit>) {
        self.0
            .lock()
            .map(|a| (a.transactions.clone(), a.commits.clone()))
            .unwrap_or_default()
    }
}

/// Submits and waits, recording the commit.
pub async fn submit_recorded(
    client: &Client,
    tx: &medledger_contracts::transaction::SignedTransaction,
    ledger: &Ledger,
    started: Instant,
    background: bool,
) -> Result<TxReceipt, SdkError> {
    let sent = Instant::now();
    let receipt = client.submit_and_wait(tx, None).await;
    if let Ok(r) = &receipt {
        ledger.record(r, started, sent, background);
    }
    receipt
}

/// Builds a [`Failure`].
pub fn fail(config: &SimConfig, invariant: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        invariant,
        detail: detail.into(),
        config: Box::new(config.clone()),
    }
}

/// A failure to set the run up.
pub fn setup_error(config: &SimConfig, e: impl std::fmt::Display) -> Failure {
    fail(config, "set-up", e.to_string())
}

/// Header checks across nodes, during the run and at its end.
#[derive(Default)]
pub struct ChainCheck {
    /// Heights compared so far on every node that had them.
    pub checked_upto: u64,
    last: Option<(String, u64, u64)>,
    /// Blocks by proposer.
    pub proposers: BTreeMap<String, u64>,
}

impl ChainCheck {
    /// Compares the headers of heights `checked_upto+1 ..= upto` on every
    /// node that has them: one hash per height, each linked to the previous,
    /// times strictly increasing, the audit log never shrinking, and no block
    /// proposed by `liar`.
    pub async fn check(
        &mut self,
        config: &SimConfig,
        cluster: &Cluster,
        upto: u64,
        require_all: bool,
        liar: Option<&str>,
    ) -> Result<(), Failure> {
        let mut heights = Vec::new();
        for i in 0..cluster.nodes.len() {
            heights.push(cluster.height(i).await.unwrap_or(0));
        }
        for h in self.checked_upto + 1..=upto {
            let mut seen: BTreeMap<String, Value> = BTreeMap::new();
            for (i, client) in cluster.clients.iter().enumerate() {
                if heights[i] < h {
                    if require_all {
                        return Err(fail(
                            config,
                            "agreement",
                            format!(
                                "{} has not committed height {h}",
                                cluster.nodes[i].institution
                            ),
                        ));
                    }
                    continue;
                }
                match client.get(&format!("/v1/headers/{h}")).await {
                    Ok(header) => {
                        seen.insert(cluster.nodes[i].institution.clone(), header);
                    }
                    Err(e) if require_all => {
                        return Err(fail(config, "agreement", e.to_string()));
                    }
                    Err(_) => {}
                }
            }
            let Some(header) = seen.values().next().cloned() else {
                // Nobody answered for this height now; come back to it.
                return Ok(());
            };
            let hashes: BTreeSet<&str> = seen
                .values()
                .map(|v| v["hash"].as_str().unwrap_or_default())
                .collect();
            if hashes.len() != 1 {
                let by: BTreeMap<_, _> = seen.iter().map(|(k, v)| (k, &v["hash"])).collect();
                return Err(fail(
                    config,
                    "agreement",
                    format!("nodes differ at height {h}: {by:?}"),
                ));
            }
            let hash = header["hash"].as_str().unwrap_or_default().to_string();
            let time = header["time_ms"].as_u64().unwrap_or(0);
            let audit = header["audit_size"].as_u64().unwrap_or(0);
            let proposer = header["proposer"].as_str().unwrap_or_default().to_string();
            if let Some((previous, previous_time, previous_audit)) = &self.last {
                if header["previous_hash"].as_str() != Some(previous.as_str()) {
                    return Err(fail(
                        config,
                        "agreement",
                        format!("height {h} does not link to the block before it"),
                    ));
                }
                if time <= *previous_time {
                    return Err(fail(
                        config,
                        "block times increase",
                        format!("height {h} has time {time} ≤ {previous_time}"),
                    ));
                }
                if audit < *previous_audit {
                    return Err(fail(
                        config,
                        "the audit log only grows",
                        format!("audit size {previous_audit} → {audit} at height {h}"),
                    ));
                }
            }
            if liar == Some(proposer.as_str()) {
                return Err(fail(
                    config,
                    "no invalid block is committed",
                    format!("height {h} was proposed by {proposer}, which lies about state roots"),
                ));
            }
            *self.proposers.entry(proposer).or_insert(0) += 1;
            self.last = Some((hash, time, audit));
            self.checked_upto = h;
        }
        Ok(())
    }
}

/// Runs one simulation; a broken invariant is the error.
pub async fn simulate(config: &SimConfig) -> Result<Report, Failure> {
    crate::world::World::run(config).await
}

/// Where a run's auditor writes, and what it read.
pub fn read_json(config: &SimConfig, path: &Path) -> Result<Value, Failure> {
    serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| setup_error(config, e))?)
        .map_err(|e| setup_error(config, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_read_back() {
        for text in ["all", "none", "kill,slow", "skew,disk,byzantine", "hostile"] {
            let faults = Faults::parse(text).unwrap();
            let names = faults.names();
            let expected = match text {
                "all" => "kill,partition,slow,skew,disk,byzantine,hostile",
                other => other,
            };
            assert_eq!(names, expected);
            assert_eq!(Faults::parse(&names).unwrap(), faults);
        }
        assert!(Faults::parse("meteor").is_err());
    }

    #[test]
    fn outages_never_overlap_and_stay_inside_the_round() {
        let targets = Targets {
            others: vec![2, 3],
            disk: Some(3),
            tamper: Some(1),
            all: 4,
        };
        for seed in 0..500 {
            let mut rng = Rng(seed);
            let steps = 12 + rng.below(60);
            let plan = plan(&mut rng, steps, &Faults::ALL, &targets);
            assert_eq!(plan.outages.len(), 4, "seed {seed}: {plan:?}");
            let mut windows: Vec<_> = plan.outages.iter().map(|w| (w.start, w.end)).collect();
            windows.sort_unstable();
            for pair in windows.windows(2) {
                assert!(pair[0].1 <= pair[1].0, "seed {seed}: {windows:?}");
            }
            assert!(
                windows.iter().all(|(s, e)| s < e && *e < steps),
                "seed {seed}: {windows:?}"
            );
            assert!(plan.slow.iter().all(|w| w.start < w.end && w.start < steps));
        }
    }
}
