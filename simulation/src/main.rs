//! `medledger-sim`: seeded runs of the consortium simulation, or a soak, each
//! ending with a report; a failure prints one block with the seed and every
//! parameter, and exits 1.

use std::path::PathBuf;
use std::time::Duration;

use medledger_simulation::summary::render;
use medledger_simulation::{Faults, SimConfig, simulate};

fn usage() -> ! {
    eprintln!(
        "usage: medledger-sim [--seed N] [--seeds COUNT] [--patients N] [--steps N]
                     [--faults all|none|kill,partition,slow,skew,disk,byzantine,hostile]
                     [--holder-fault FAULT] [--soak SECONDS] [--load TX_PER_S]
                     [--interval SECONDS] [--report FILE.md] [--medledger PATH]
                     [--validators N] [--crypto-suite ed25519-sha256|sm2-sm3]

  --soak keeps running rounds of --steps (each with its own faults) for that
  long, with background load (default 20 tx/s when soaking), and prints
  throughput and latency per --interval. --validators (4 to 64, default 4)
  sizes the consortium; up to f = (N - 1) / 3 of them lie or are down."
    );
    std::process::exit(2)
}

fn main() -> std::process::ExitCode {
    let mut config = SimConfig {
        seed: 1,
        patients: 8,
        steps: 40,
        faults: Faults::ALL,
        holder_fault: None,
        soak: None,
        load: 0,
        interval: Duration::from_secs(10),
        validators: 4,
        suite: medledger_contracts::crypto::CryptoSuite::Ed25519Sha256,
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
    let mut load = None;
    let mut report_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let number = |text: String| text.parse::<u64>().unwrap_or_else(|_| usage());
        let count = |text: String| text.parse::<usize>().unwrap_or_else(|_| usage());
        match arg.as_str() {
            "--seed" => config.seed = number(value()),
            "--seeds" => seeds = number(value()),
            "--patients" => config.patients = count(value()),
            "--steps" => config.steps = count(value()),
            "--faults" => {
                config.faults = Faults::parse(&value()).unwrap_or_else(|e| {
                    eprintln!("{e}");
                    usage()
                })
            }
            "--holder-fault" => config.holder_fault = Some(value()),
            "--soak" => config.soak = Some(Duration::from_secs(number(value()))),
            "--load" => load = Some(u32::try_from(number(value())).unwrap_or_else(|_| usage())),
            "--interval" => config.interval = Duration::from_secs(number(value()).max(1)),
            "--report" => report_file = Some(PathBuf::from(value())),
            "--medledger" => config.binary = PathBuf::from(value()),
            "--validators" => config.validators = count(value()),
            "--crypto-suite" => {
                config.suite = medledger_contracts::crypto::CryptoSuite::from_name(&value())
                    .unwrap_or_else(|e| {
                        eprintln!("{e}");
                        usage()
                    })
            }
            _ => usage(),
        }
    }
    if config.patients == 0
        || config.steps == 0
        || !(4..=medledger_testnet::layout::NODES_MAX).contains(&config.validators)
    {
        usage();
    }
    config.load = load.unwrap_or(if config.soak.is_some() { 20 } else { 0 });
    let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        eprintln!("no async runtime");
        return std::process::ExitCode::FAILURE;
    };
    let first = config.seed;
    let mut reports = String::new();
    for seed in first..first + seeds {
        let run = SimConfig {
            seed,
            ..config.clone()
        };
        match runtime.block_on(simulate(&run)) {
            Ok(report) => {
                let text = render(&run, &report);
                println!("{text}");
                reports.push_str(&text);
                reports.push('\n');
            }
            Err(failure) => {
                eprintln!("{failure}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    if let Some(file) = report_file
        && let Err(e) = std::fs::write(&file, reports)
    {
        eprintln!("writing {}: {e}", file.display());
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
