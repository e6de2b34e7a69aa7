//! What a run reports: its failure (an invariant broken, with the seed and
//! every parameter to rerun it) or its report's data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::config::SimConfig;

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
        writeln!(f, "validators:   {}", c.validators)?;
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

/// Where a run's auditor writes, and what it read.
pub fn read_json(config: &SimConfig, path: &Path) -> Result<Value, Failure> {
    serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| setup_error(config, e))?)
        .map_err(|e| setup_error(config, e))
}
