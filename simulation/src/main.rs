//! `medledger-sim`: one seeded run of the consortium simulation, or a soak
//! of many seeds, with a report; a failure prints one block with the seed
//! and every parameter, and exits 1.

use std::path::PathBuf;

use medledger_simulation::{SimConfig, simulate};

fn usage() -> ! {
    eprintln!(
        "usage: medledger-sim [--seed N] [--seeds COUNT] [--patients N] [--steps N] [--no-kill] [--no-partition] [--holder-fault FAULT] [--medledger PATH]"
    );
    std::process::exit(2)
}

fn main() -> std::process::ExitCode {
    let mut config = SimConfig {
        seed: 1,
        patients: 8,
        steps: 40,
        kill_faults: true,
        partitions: true,
        holder_fault: None,
        binary: std::env::var_os("MEDLEDGER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                // Next to this binary (the same cargo target directory).
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("medledger")))
                    .unwrap_or_else(|| PathBuf::from("medledger"))
            }),
    };
    let mut seeds = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--seed" => config.seed = value().parse().unwrap_or_else(|_| usage()),
            "--seeds" => seeds = value().parse().unwrap_or_else(|_| usage()),
            "--patients" => config.patients = value().parse().unwrap_or_else(|_| usage()),
            "--steps" => config.steps = value().parse().unwrap_or_else(|_| usage()),
            "--no-kill" => config.kill_faults = false,
            "--no-partition" => config.partitions = false,
            "--holder-fault" => config.holder_fault = Some(value()),
            "--medledger" => config.binary = PathBuf::from(value()),
            _ => usage(),
        }
    }
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("no async runtime");
        return std::process::ExitCode::FAILURE;
    };
    let first = config.seed;
    for seed in first..first + seeds {
        let run = SimConfig {
            seed,
            ..config.clone()
        };
        match runtime.block_on(simulate(&run)) {
            Ok(report) => {
                let pct = |p: usize| {
                    report
                        .latencies_ms
                        .get(report.latencies_ms.len().saturating_sub(1) * p / 100)
                        .copied()
                        .unwrap_or(0)
                };
                println!(
                    "seed {seed}: passed in {:.1} s — {} transactions committed ({:.1}/s), {} fetches, {} refusals as expected; submit→commit p50/p95/p99 {}/{}/{} ms; faults: {}; invariants: {}",
                    report.seconds,
                    report.committed,
                    report.committed as f64 / report.seconds,
                    report.fetches,
                    report.refusals,
                    pct(50),
                    pct(95),
                    pct(99),
                    if report.faults.is_empty() {
                        "none".into()
                    } else {
                        report.faults.join(", ")
                    },
                    report.invariants.join("; ")
                );
            }
            Err(failure) => {
                eprintln!("{failure}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
