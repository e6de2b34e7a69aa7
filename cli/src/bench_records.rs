//! `medledger bench-records`: records through the gateways on a local
//! four-validator consortium — small resources per second and MB/s, a large
//! study's MB/s, and how much the holder's node, the relaying node and the
//! fetching client grow in memory during the large transfer (it must stay
//! near the chunk size, not the study's size). Each fetch's time includes
//! waiting for the holder's `AccessServed` to commit.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use medledger_client_sdk::records::fetch_records;
use medledger_client_sdk::{Client, Identity, KeyFile, TermsBuilder, TxBuilder, TxOutcome};
use medledger_contracts::types::{Category, Grantee, InstitutionId, Purpose, TxHash};
use serde_json::json;

use super::bench::{peak_rss_mib, rss_mib};
use medledger_testnet::{Consortium, TestnetLayout};

/// Settings from the command line.
pub struct RecordsBenchOptions {
    /// Where the consortium goes (default: a temporary directory, removed after).
    pub dir: Option<PathBuf>,
    /// Small resources per fetch.
    pub small: usize,
    /// Size of each small resource, in KiB.
    pub small_kib: usize,
    /// Fetches of the small set.
    pub rounds: usize,
    /// Size of the large study, in MiB.
    pub large_mib: usize,
    /// The consortium's crypto suite (its sealing and content hashes).
    pub suite: medledger_contracts::crypto::CryptoSuite,
}

/// Runs the bench.
pub fn run(options: RecordsBenchOptions) -> anyhow::Result<()> {
    let dir = options.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("medledger-bench-records-{}", std::process::id()))
    });
    let layout = super::bench::four_validators_on(options.suite, &dir)?;
    let nodes = Consortium::launch(std::env::current_exe()?, layout.clone())?;
    let pids: Vec<(String, u32)> = layout
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Some((n.institution.clone(), nodes.pid(i)?)))
        .collect::<Option<_>>()
        .context("every node was just started")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(bench(&dir, &layout, &pids, &options));
    drop(nodes);
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// A FHIR Observation of `size` bytes (its note padded): a resource the
/// holder can read, with no date or sensitive label, so an ordinary grant
/// reaches it (an unreadable `.json` is left out unless the grant includes
/// every sensitive class, R5.10).
fn write_resource(path: &Path, size: usize, k: usize) -> anyhow::Result<()> {
    let head = format!(
        r#"{{"resourceType":"Observation","id":"bench-{k}","status":"final","note":[{{"text":""#
    );
    let tail = r#""}]}"#;
    let padding = size.saturating_sub(head.len() + tail.len());
    std::fs::write(path, format!("{head}{}{tail}", "x".repeat(padding)))?;
    Ok(())
}

fn write_file(path: &Path, size: usize, seed: u8) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let block: Vec<u8> = (0..=255u8)
        .cycle()
        .take(1024)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n])?;
        left -= n;
    }
    file.flush()?;
    Ok(())
}

async fn bench(
    dir: &Path,
    layout: &TestnetLayout,
    pids: &[(String, u32)],
    options: &RecordsBenchOptions,
) -> anyhow::Result<()> {
    if options.small == 0 || options.small > 255 {
        bail!("--small must be 1 to 255 (one manifest holds at most 256 resources)");
    }
    let genesis = medledger_genesis::GenesisFile::read(&dir.join("genesis.json"))?.validate()?;
    let chain = genesis.chain();
    let index = |id: &str| layout.nodes.iter().position(|n| n.institution == id);
    let (Some(holder_node), Some(requester_node)) =
        (index("city-first-hospital"), index("city-second-hospital"))
    else {
        bail!("the testnet lacks the two hospitals");
    };
    let client = Client::new(&layout.nodes[requester_node].http, chain.clone())?;
    let deadline = Instant::now() + Duration::from_secs(90);
    while client.status().await.map(|s| s.height).unwrap_or(0) < 1 {
        if Instant::now() > deadline {
            bail!("the consortium did not start committing within 90 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The patient's records at the first hospital.
    let patient_key = KeyFile::generate_for(chain.suite)?;
    let patient = patient_key.patient_id();
    let root = layout.nodes[holder_node].home.join("records");
    let signature = medledger_client_sdk::tx::record_link_signature(
        &patient_key,
        &chain,
        &InstitutionId::new(&layout.nodes[holder_node].institution)?,
        "MRN-BENCH",
    );
    medledger_node::gateway::DirectorySource::link(&root, "MRN-BENCH", &patient, &signature)?;
    let labs = root.join("MRN-BENCH").join(Category::LabReports.name());
    let imaging = root.join("MRN-BENCH").join(Category::Imaging.name());
    std::fs::create_dir_all(&labs)?;
    std::fs::create_dir_all(&imaging)?;
    for k in 0..options.small {
        write_resource(
            &labs.join(format!("resource-{k:03}.json")),
            options.small_kib * 1024,
            k,
        )?;
    }
    eprintln!("writing a {} MiB imaging study", options.large_mib);
    write_file(
        &imaging.join("study.dcm"),
        options.large_mib * 1024 * 1024,
        7,
    )?;

    let as_patient = TxBuilder::new(chain.clone(), Identity::patient(&patient_key));
    client
        .submit_and_wait(&as_patient.register_patient(), None)
        .await?;
    let second = InstitutionId::new("city-second-hospital")?;
    let first = InstitutionId::new("city-first-hospital")?;
    let terms = TermsBuilder::new(patient, Grantee::Institution(second))
        .category(Category::LabReports)
        .category(Category::Imaging)
        .holders([first.clone()])
        .purpose(Purpose::Referral)
        .build()?;
    let grant = client
        .submit_and_wait(&as_patient.grant(terms), None)
        .await?
        .tx;
    let doctor = Identity::practitioner(&KeyFile::load(
        &dir.join("keys").join("practitioner.dr-second-1.json"),
    )?);
    let as_doctor = TxBuilder::new(chain.clone(), doctor.clone());
    let request = |categories: Vec<Category>| {
        let tx = as_doctor.access_request(grant, first.clone(), categories, Purpose::Referral);
        let client = client.clone();
        async move {
            let receipt = client.submit_and_wait(&tx?, None).await?;
            if receipt.outcome != TxOutcome::Authorized {
                bail!("request not authorised: {:?}", receipt.outcome);
            }
            anyhow::Ok::<TxHash>(receipt.tx)
        }
    };
    let out = dir.join("fetched");

    // Small resources.
    let mut small_seconds = 0.0;
    for round in 0..options.rounds {
        let id = request(vec![Category::LabReports]).await?;
        let started = Instant::now();
        let fetched = fetch_records(
            &client,
            &doctor,
            id,
            first.clone(),
            &out.join(format!("small-{round}")),
        )
        .await?;
        small_seconds += started.elapsed().as_secs_f64();
        if fetched.items.len() != options.small {
            bail!(
                "expected {} resources, got {}",
                options.small,
                fetched.items.len()
            );
        }
        std::fs::remove_dir_all(out.join(format!("small-{round}")))?;
    }
    let small_records = (options.small * options.rounds) as f64;
    let small_mb = small_records * (options.small_kib * 1024) as f64 / 1e6;

    // The large study: memory before and after, per process.
    let holder_pid = pids[holder_node].1;
    let relay_pid = pids[requester_node].1;
    let own_pid = std::process::id();
    let before: Vec<Option<f64>> = [holder_pid, relay_pid, own_pid]
        .iter()
        .map(|p| rss_mib(*p))
        .collect();
    let peak_before: Vec<Option<f64>> = [holder_pid, relay_pid, own_pid]
        .iter()
        .map(|p| peak_rss_mib(*p))
        .collect();
    let id = request(vec![Category::Imaging]).await?;
    let started = Instant::now();
    let fetched = fetch_records(&client, &doctor, id, first.clone(), &out.join("large")).await?;
    let large_seconds = started.elapsed().as_secs_f64();
    let peak_after: Vec<Option<f64>> = [holder_pid, relay_pid, own_pid]
        .iter()
        .map(|p| peak_rss_mib(*p))
        .collect();
    let large_mb = fetched.items.iter().map(|i| i.size).sum::<u64>() as f64 / 1e6;

    println!(
        "records through the gateways, 4-validator consortium on {} on this machine (one run)",
        options.suite.name()
    );
    println!("  {:<52} {:>12}", "figure", "value");
    println!(
        "  {:<52} {:>12.0}",
        format!("small ({} KiB) resources per second", options.small_kib),
        small_records / small_seconds
    );
    println!("  {:<52} {:>12.1}", "small: MB/s", small_mb / small_seconds);
    println!(
        "  {:<52} {:>12}",
        "small: fetches × resources",
        format!("{} × {}", options.rounds, options.small)
    );
    println!(
        "  {:<52} {:>12.1}",
        format!("large ({} MiB) study: MB/s", options.large_mib),
        large_mb / large_seconds
    );
    println!("  {:<52} {:>12.1}", "large: seconds", large_seconds);
    let names = ["holder node", "relaying node", "fetching client"];
    for (k, name) in names.iter().enumerate() {
        let growth = match (peak_before[k], peak_after[k]) {
            (Some(b), Some(a)) => format!("{:.1}", a - b),
            _ => "n/a".into(),
        };
        println!(
            "  {:<52} {:>12}",
            format!(
                "{name}: peak RSS growth during large (MiB; RSS before {:.0})",
                before[k].unwrap_or(f64::NAN)
            ),
            growth
        );
    }
    println!(
        "  (chunk size: {} KiB; times include the release's commit)",
        medledger_client_sdk::records::CHUNK_BYTES / 1024
    );
    println!(
        "{}",
        json!({
            "bench": "records",
            "small_records_per_second": small_records / small_seconds,
            "small_mb_per_second": small_mb / small_seconds,
            "large_mb_per_second": large_mb / large_seconds,
            "large_seconds": large_seconds,
            "peak_rss_growth_mib": {
                "holder": peak_after[0].zip(peak_before[0]).map(|(a, b)| a - b),
                "relay": peak_after[1].zip(peak_before[1]).map(|(a, b)| a - b),
                "client": peak_after[2].zip(peak_before[2]).map(|(a, b)| a - b),
            },
        })
    );
    Ok(())
}
