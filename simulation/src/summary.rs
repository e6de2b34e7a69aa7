//! The run's report as Markdown: throughput and latency per interval with
//! the faults injected in each, totals, bytes between nodes, every fault and
//! every invariant checked.

use std::fmt::Write;

use crate::config::SimConfig;
use crate::report::{Report, percentile};

/// The short name of a fault as the log words it (its end — restart, heal —
/// is not counted separately).
fn fault_kind(text: &str) -> Option<&'static str> {
    [
        ("SIGKILL", "kill"),
        ("cut off", "cut off"),
        ("slowed", "slow links"),
        ("disk filled", "disk full"),
        ("alters records", "tampering holder"),
        ("split into halves", "split without a quorum"),
        ("split off", "minority split off"),
        ("clock of", "skewed clock"),
        ("wrong state root", "lying proposer"),
        ("NOT injected", "fault not injected"),
    ]
    .iter()
    .find(|(needle, _)| text.contains(needle))
    .map(|(_, kind)| *kind)
}

/// Renders a passing run's report.
pub fn render(config: &SimConfig, report: &Report) -> String {
    let mut out = String::new();
    let seconds = report.seconds.max(0.001);
    let _ = writeln!(out, "# medledger-sim: seed {} passed\n", config.seed);
    let _ = writeln!(
        out,
        "{:.1} s, {} validators on {}, {} patients, {} steps per round, faults: {}, background load: {} tx/s, final height {}. Rerun: `{}`\n",
        report.seconds,
        config.validators,
        config.suite.name(),
        config.patients,
        config.steps,
        config.faults.names(),
        config.load,
        report.height,
        config.rerun()
    );
    let _ = writeln!(out, "## Throughput and latency (submit → commit)\n");
    let _ = writeln!(
        out,
        "| from s | to s | committed | tx/s | p50 ms | p95 ms | p99 ms | max ms | faults begun in the interval |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let interval = medledger_contracts::types::millis(report.interval).max(1);
    let end = report
        .commits
        .iter()
        .map(|c| c.at_ms)
        .max()
        .unwrap_or(0)
        .max(report.faults.iter().map(|(at, _)| *at).max().unwrap_or(0))
        + 1;
    let mut from = 0u64;
    while from < end.max(1) {
        let to = (from + interval).min(end.max(1));
        let mut latencies: Vec<u64> = report
            .commits
            .iter()
            .filter(|c| c.at_ms >= from && c.at_ms < to)
            .map(|c| c.latency_ms)
            .collect();
        latencies.sort_unstable();
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for (_, fault) in report
            .faults
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
        {
            if let Some(kind) = fault_kind(fault) {
                match kinds.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => kinds.push((kind, 1)),
                }
            }
        }
        let faults: Vec<String> = kinds
            .iter()
            .map(|(k, n)| {
                if *n == 1 {
                    (*k).to_string()
                } else {
                    format!("{k} ×{n}")
                }
            })
            .collect();
        let span = (to - from) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "| {:.0} | {:.0} | {} | {:.1} | {} | {} | {} | {} | {} |",
            from as f64 / 1000.0,
            to as f64 / 1000.0,
            latencies.len(),
            latencies.len() as f64 / span.max(0.001),
            percentile(&latencies, 50),
            percentile(&latencies, 95),
            percentile(&latencies, 99),
            latencies.last().copied().unwrap_or(0),
            faults.join("; ")
        );
        from = to;
    }
    let all = report.latencies();
    let background = report.commits.iter().filter(|c| c.background).count();
    let _ = writeln!(out, "\n## Totals\n");
    let _ = writeln!(
        out,
        "- committed: {} ({:.1}/s; {} scripted, {} background); p50/p95/p99/max {}/{}/{}/{} ms",
        report.committed(),
        report.committed() as f64 / seconds,
        report.committed() - background,
        background,
        percentile(&all, 50),
        percentile(&all, 95),
        percentile(&all, 99),
        all.last().copied().unwrap_or(0)
    );
    let _ = writeln!(
        out,
        "- records fetched through the gateway: {}; refused as they should be: {}",
        report.fetches, report.refusals
    );
    for (action, n) in &report.actions {
        let _ = writeln!(out, "- {action}: {n}");
    }
    let _ = writeln!(out, "\n## Bytes between nodes (measured at the proxies)\n");
    let _ = writeln!(
        out,
        "| traffic | bytes | per committed tx | per block | per second |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let total: u64 = report.bytes.values().sum();
    for (name, bytes) in report
        .bytes
        .iter()
        .map(|(n, b)| (*n, *b))
        .chain([("all", total)])
    {
        let _ = writeln!(
            out,
            "| {name} | {bytes} | {:.0} | {:.0} | {:.0} |",
            bytes as f64 / report.committed().max(1) as f64,
            bytes as f64 / report.height.max(1) as f64,
            bytes as f64 / seconds
        );
    }
    let _ = writeln!(out, "\n## Faults injected\n");
    if report.faults.is_empty() {
        let _ = writeln!(out, "- none");
    }
    for (at, fault) in &report.faults {
        let _ = writeln!(out, "- {:.1} s: {fault}", *at as f64 / 1000.0);
    }
    if !report.hostile.is_empty() {
        let _ = writeln!(out, "\n## The hostile member's attempts\n");
        let _ = writeln!(out, "| step | attack | outcome |");
        let _ = writeln!(out, "|---:|---|---|");
        for (step, attack, outcome) in &report.hostile {
            let _ = writeln!(out, "| {step} | {attack} | {outcome} |");
        }
    }
    let _ = writeln!(out, "\n## Invariants checked\n");
    for invariant in &report.invariants {
        let _ = writeln!(out, "- {invariant}");
    }
    out
}
