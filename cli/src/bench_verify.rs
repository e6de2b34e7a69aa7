//! `medledger bench-verify`: how many grants a hospital's SDK can verify per
//! second, trusting no node (certificate and JMT proof each time, headers
//! remembered per height), against a node of a local four-validator
//! consortium that is committing a steady stream of other transactions.
//! The bench client shares the machine's cores with the four nodes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use medledger_client_sdk::{Client, Identity, KeyFile, LightClient, TermsBuilder, TxBuilder};
use medledger_contracts::records::GrantStatus;
use medledger_contracts::types::{Category, Chain, Grantee, InstitutionId, TxHash};
use serde_json::json;
use tokio::sync::Mutex;

use super::bench::percentile;
use medledger_testnet::{Consortium, TestnetLayout};

/// Settings from the command line.
pub struct VerifyBenchOptions {
    /// Where the consortium goes (default: a temporary directory, removed after).
    pub dir: Option<PathBuf>,
    /// Length of the measured phase.
    pub seconds: u64,
    /// Grants made at set-up and verified at random.
    pub grants: usize,
    /// Verifications in flight at once.
    pub concurrency: usize,
    /// Background load: registrations submitted per second.
    pub load_rate: u64,
    /// The consortium's crypto suite.
    pub suite: medledger_contracts::crypto::CryptoSuite,
}

/// Runs the bench.
pub fn run(options: VerifyBenchOptions) -> anyhow::Result<()> {
    let dir = options.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("medledger-bench-verify-{}", std::process::id()))
    });
    let layout = super::bench::four_validators_on(options.suite, &dir)?;
    let nodes = Consortium::launch(std::env::current_exe()?, layout.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&dir, &layout, &options));
    drop(nodes);
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn bench(
    dir: &std::path::Path,
    layout: &TestnetLayout,
    options: &VerifyBenchOptions,
) -> anyhow::Result<()> {
    let genesis = medledger_genesis::GenesisFile::read(&dir.join("genesis.json"))?.validate()?;
    let chain: Chain = genesis.chain();
    let clients: Vec<Client> = layout
        .nodes
        .iter()
        .map(|n| Client::new(&n.http, chain.clone()))
        .collect::<Result<_, _>>()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while clients[0].status().await.map(|s| s.height).unwrap_or(0) < 1 {
        if Instant::now() > deadline {
            bail!("the consortium did not start committing within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    eprintln!(
        "set-up: {} patients register and grant the second hospital access",
        options.grants
    );
    let second = InstitutionId::new("city-second-hospital")?;
    let first = InstitutionId::new("city-first-hospital")?;
    let grants = Arc::new(Mutex::new(Vec::<TxHash>::new()));
    let mut setup = Vec::new();
    let per_task = options.grants.div_ceil(32);
    for task in 0..32 {
        let client = clients[task % clients.len()].clone();
        let (chain, second, first, grants) =
            (chain.clone(), second.clone(), first.clone(), grants.clone());
        setup.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let key = KeyFile::generate_for(chain.suite)?;
                let tx = TxBuilder::new(chain.clone(), Identity::patient(&key));
                let registered = client.submit_and_wait(&tx.register_patient(), None).await?;
                let terms =
                    TermsBuilder::new(key.patient_id(), Grantee::Institution(second.clone()))
                        .category(Category::LabReports)
                        .holders([first.clone()])
                        .days(30)
                        .build()?;
                let granted = client
                    .submit_and_wait(&tx.grant(terms), Some(registered.height))
                    .await?;
                grants.lock().await.push(granted.tx);
            }
            anyhow::Ok(())
        }));
    }
    for task in setup {
        task.await??;
    }
    let grants: Arc<Vec<TxHash>> = Arc::new(grants.lock().await.clone());

    // Background load on the other nodes: registrations at a steady rate.
    let stop = Arc::new(AtomicBool::new(false));
    let loaded = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, loaded, clients, chain) =
            (stop.clone(), loaded.clone(), clients.clone(), chain.clone());
        let rate = options.load_rate.max(1);
        tokio::spawn(async move {
            let started = Instant::now();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let Ok(key) = KeyFile::generate_for(chain.suite) else {
                    break;
                };
                let tx = TxBuilder::new(chain.clone(), Identity::patient(&key)).register_patient();
                let client = clients[1 + usize::from(u8::try_from(n % 3).unwrap_or(0))].clone();
                let loaded = loaded.clone();
                tokio::spawn(async move {
                    if client.submit(&tx).await.is_ok() {
                        loaded.fetch_add(1, Ordering::Relaxed);
                    }
                });
                n += 1;
            }
        })
    };

    // Verifications against node 0, by the grantee hospital's doctor.
    let doctor = Identity::practitioner(&KeyFile::load(
        &dir.join("keys").join("practitioner.dr-second-1.json"),
    )?);
    let light = Arc::new(LightClient::new(
        clients[0].clone(),
        &genesis,
        Duration::from_secs(30),
    )?);
    // Warm up: follow the validator set to the current height once.
    light
        .verify_grant(&grants[0], &doctor)
        .await
        .context("warm-up verification")?;
    let height_before = clients[0].status().await?.height;
    let until = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..options.concurrency {
        let (light, doctor, grants) = (light.clone(), doctor.clone(), grants.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let mut i = w;
            while Instant::now() < until {
                let grant = grants[i % grants.len()];
                i += 7;
                let t = Instant::now();
                match light.verify_grant(&grant, &doctor).await {
                    Ok(g) if g.status == GrantStatus::Active => latencies.push(t.elapsed()),
                    Ok(_) | Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for worker in workers {
        let (l, f) = worker.await?;
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = load.await;
    let height_after = clients[0].status().await?.height;
    let mut latencies_ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    latencies_ms.sort_by(f64::total_cmp);
    let checks = latencies.len() as f64 / elapsed;
    let (p50, p95, p99) = (
        percentile(&latencies_ms, 50.0),
        percentile(&latencies_ms, 95.0),
        percentile(&latencies_ms, 99.0),
    );
    let load_rate = loaded.load(Ordering::Relaxed) as f64 / elapsed;
    println!(
        "SDK verify_grant against a node of a 4-validator consortium on {} under load (one run)",
        options.suite.name()
    );
    println!("  {:<44} {:>12}", "figure", "value");
    println!("  {:<44} {:>12.0}", "verified checks per second", checks);
    println!("  {:<44} {:>12.2}", "latency p50 (ms)", p50);
    println!("  {:<44} {:>12.2}", "latency p95 (ms)", p95);
    println!("  {:<44} {:>12.2}", "latency p99 (ms)", p99);
    println!("  {:<44} {:>12}", "failed or not active", failures);
    println!(
        "  {:<44} {:>12}",
        "verifications in flight", options.concurrency
    );
    println!(
        "  {:<44} {:>12.0}",
        "background load accepted (tx/s)", load_rate
    );
    println!(
        "  {:<44} {:>12}",
        "heights committed during the run",
        height_after - height_before
    );
    println!("  {:<44} {:>12}", "grants verified at random", grants.len());
    println!(
        "{}",
        json!({
            "bench": "verify_grant",
            "seconds": elapsed,
            "checks_per_second": checks,
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "failures": failures,
            "concurrency": options.concurrency,
            "load_tx_per_second": load_rate,
            "heights": height_after - height_before,
        })
    );
    Ok(())
}
