//! One simulated run: a four-validator consortium of `medledger node`
//! processes on 127.0.0.1, a seeded workload through the SDK, seeded faults,
//! then the invariants (see the crate docs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medledger_client_sdk::records::fetch_records;
use medledger_client_sdk::{
    Client, Identity, KeyFile, SdkError, TermsBuilder, TxBuilder, TxOutcome,
};
use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{BoundedVec, tagged_hash};
use medledger_contracts::types::{
    Category, ChainId, EmergencyReason, Grantee, InstitutionId, Purpose, TxHash,
};
use serde_json::Value;

/// How long a healed consortium may take to commit again.
const HEAL_BOUND_SECS: u64 = 120;

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything random follows from it.
    pub seed: u64,
    /// Patients.
    pub patients: usize,
    /// Workload steps after set-up.
    pub steps: usize,
    /// Whether to SIGKILL and restart a validator during the run.
    pub kill_faults: bool,
    /// Whether to cut a validator off, and split the consortium two-two, then heal.
    pub partitions: bool,
    /// A fault to build into the holder hospital's node
    /// (`MEDLEDGER_FAULT`, e.g. `skip-grant-check`): the invariants must catch it.
    pub holder_fault: Option<String>,
    /// The `medledger` binary.
    pub binary: PathBuf,
}

impl SimConfig {
    /// The command line that reruns this configuration.
    pub fn rerun(&self) -> String {
        let mut line = format!(
            "medledger-sim --seed {} --patients {} --steps {}",
            self.seed, self.patients, self.steps
        );
        if !self.kill_faults {
            line.push_str(" --no-kill");
        }
        if !self.partitions {
            line.push_str(" --no-partition");
        }
        if let Some(f) = &self.holder_fault {
            line.push_str(&format!(" --holder-fault {f}"));
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
    pub config: SimConfig,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "==== medledger simulation FAILED ====")?;
        writeln!(f, "seed:       {}", self.config.seed)?;
        writeln!(f, "patients:   {}", self.config.patients)?;
        writeln!(f, "steps:      {}", self.config.steps)?;
        writeln!(f, "kill faults:{}", self.config.kill_faults)?;
        writeln!(f, "partitions: {}", self.config.partitions)?;
        writeln!(
            f,
            "holder fault: {}",
            self.config.holder_fault.as_deref().unwrap_or("none")
        )?;
        writeln!(f, "invariant:  {}", self.invariant)?;
        writeln!(f, "detail:     {}", self.detail)?;
        write!(f, "rerun:      {}", self.config.rerun())
    }
}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Transactions acknowledged as committed.
    pub committed: usize,
    /// Records fetched through the gateway.
    pub fetches: usize,
    /// Fetches refused as they should be.
    pub refusals: usize,
    /// Faults injected, in order.
    pub faults: Vec<String>,
    /// Invariants checked.
    pub invariants: Vec<&'static str>,
    /// Submit-to-commit latencies, ms, sorted.
    pub latencies_ms: Vec<u64>,
    /// Wall time.
    pub seconds: f64,
}

/// SplitMix64: a small, well-known seeded generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

struct Nodes {
    homes: Vec<(String, PathBuf, String)>,
    children: Vec<Option<Child>>,
    binary: PathBuf,
    holder_fault: Option<String>,
}

impl Nodes {
    fn start(&mut self, i: usize) -> std::io::Result<()> {
        let (institution, home, _) = &self.homes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))?;
        let mut command = Command::new(&self.binary);
        command
            .args(["node", "run", "--home"])
            .arg(home)
            .env("RUST_LOG", "warn,medledger=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if institution == "city-first-hospital"
            && let Some(fault) = &self.holder_fault
        {
            command.env("MEDLEDGER_FAULT", fault);
        }
        self.children[i] = Some(command.spawn()?);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn fail(config: &SimConfig, invariant: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        invariant,
        detail: detail.into(),
        config: config.clone(),
    }
}

fn setup_error(config: &SimConfig, e: impl std::fmt::Display) -> Failure {
    fail(config, "set-up", e.to_string())
}

async fn status_height(client: &Client) -> Option<u64> {
    client.status().await.ok().map(|s| s.height)
}

/// Runs one simulation; a broken invariant is the error.
pub async fn simulate(config: &SimConfig) -> Result<Report, Failure> {
    let started = Instant::now();
    // MEDLEDGER_SIM_KEEP=1 keeps the run's files (node logs) for a post-mortem.
    let keep = std::env::var_os("MEDLEDGER_SIM_KEEP").is_some();
    let dir = tempfile::Builder::new()
        .prefix("medledger-sim-")
        .disable_cleanup(keep)
        .tempdir()
        .map_err(|e| setup_error(config, e))?;
    if keep {
        eprintln!("keeping the run's files in {}", dir.path().display());
    }
    let status = Command::new(&config.binary)
        .args([
            "testnet",
            "--init-only",
            "--chain-id",
            "medledger-sim",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| setup_error(config, format!("running {}: {e}", config.binary.display())))?;
    if !status.success() {
        return Err(setup_error(config, "medledger testnet --init-only failed"));
    }
    let layout: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("testnet.json"))
            .map_err(|e| setup_error(config, e))?,
    )
    .map_err(|e| setup_error(config, e))?;
    let homes: Vec<(String, PathBuf, String)> = layout["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    (
                        n["institution"].as_str().unwrap_or_default().to_string(),
                        PathBuf::from(n["home"].as_str().unwrap_or_default()),
                        n["http"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // Every p2p dial goes through a proxy the simulator can cut.
    let p2p_ports: Vec<u16> = layout["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    n["p2p"]
                        .as_str()
                        .and_then(|a| a.split("/tcp/").nth(1))
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|port| port.parse().ok())
                        .unwrap_or(0)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut links: BTreeMap<(usize, usize), crate::net::Link> = BTreeMap::new();
    for (i, (_, home, _)) in homes.iter().enumerate() {
        let path = home.join("config.toml");
        let mut text = std::fs::read_to_string(&path).map_err(|e| setup_error(config, e))?;
        for (j, port) in p2p_ports.iter().enumerate() {
            if i == j {
                continue;
            }
            let link = crate::net::Link::start(*port)
                .await
                .map_err(|e| setup_error(config, e))?;
            text = text.replace(
                &format!("/tcp/{port}/p2p/"),
                &format!("/tcp/{}/p2p/", link.port),
            );
            links.insert((i, j), link);
        }
        std::fs::write(&path, text).map_err(|e| setup_error(config, e))?;
    }
    // Cuts every link between different groups; an empty list heals all.
    let partition = |groups: &[&[usize]]| {
        for ((i, j), link) in &links {
            let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
            link.set_cut(!groups.is_empty() && group_of(*i) != group_of(*j));
        }
    };
    let mut nodes = Nodes {
        children: homes.iter().map(|_| None).collect(),
        homes,
        binary: config.binary.clone(),
        holder_fault: config.holder_fault.clone(),
    };
    for i in 0..nodes.homes.len() {
        nodes.start(i).map_err(|e| setup_error(config, e))?;
    }
    let index = |id: &str| nodes.homes.iter().position(|h| h.0 == id);
    let (Some(first), Some(second)) = (index("city-first-hospital"), index("city-second-hospital"))
    else {
        return Err(setup_error(config, "the testnet lacks the two hospitals"));
    };
    let chain = ChainId::new("medledger-sim").map_err(|e| setup_error(config, e))?;
    let clients: Vec<Client> = nodes
        .homes
        .iter()
        .map(|h| Client::new(&h.2, chain.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| setup_error(config, e))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_height(&clients[0]).await.unwrap_or(0) < 1 {
        if Instant::now() > deadline {
            return Err(setup_error(config, "no block within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut rng = Rng(config.seed);
    let mut report = Report::default();
    let key = |label: &str| KeyFile::load(&dir.path().join("keys").join(format!("{label}.json")));
    let doctor = Identity::practitioner(
        &key("practitioner.dr-second-1").map_err(|e| setup_error(config, e))?,
    );
    let holder = InstitutionId::new("city-first-hospital").map_err(|e| setup_error(config, e))?;
    let grantee = InstitutionId::new("city-second-hospital").map_err(|e| setup_error(config, e))?;
    let records = nodes.homes[first].1.join("records");
    // Submit-to-commit through the second hospital's node (it survives the faults below).
    let client = clients[second].clone();
    let mut acknowledged: Vec<(TxHash, u64)> = Vec::new();
    let submit = async |tx, report: &mut Report, acknowledged: &mut Vec<(TxHash, u64)>| {
        let t = Instant::now();
        let receipt = client.submit_and_wait(&tx, None).await;
        if let Ok(r) = &receipt {
            report
                .latencies_ms
                .push(u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX));
            acknowledged.push((r.tx, r.height));
        }
        receipt
    };

    // Set-up: patients register, hold records at the first hospital, and
    // grant the second hospital lab reports from it.
    struct Patient {
        key: KeyFile,
        grant: TxHash,
        revoked: bool,
    }
    let mut patients = Vec::new();
    for p in 0..config.patients {
        let seed = tagged_hash(
            b"medledger/sim-patient",
            &[&config.seed.to_be_bytes(), &(p as u64).to_be_bytes()],
        );
        let key = KeyFile::from_secret(SecretKey::from_seed(seed.0));
        let patient = key.patient_id();
        let mrn = format!("SIM-{p}");
        let dir = records.join(&mrn).join("lab-reports");
        std::fs::create_dir_all(&dir).map_err(|e| setup_error(config, e))?;
        std::fs::write(
            dir.join("result.json"),
            format!("{{\"resourceType\":\"Observation\",\"id\":\"{p}\"}}"),
        )
        .map_err(|e| setup_error(config, e))?;
        link(&records, &mrn, &patient.0.to_hex()).map_err(|e| setup_error(config, e))?;
        let as_patient = TxBuilder::new(chain.clone(), Identity::patient(&key));
        submit(
            as_patient.register_patient(),
            &mut report,
            &mut acknowledged,
        )
        .await
        .map_err(|e| setup_error(config, e))?;
        let terms = TermsBuilder::new(patient, Grantee::Institution(grantee.clone()))
            .category(Category::LabReports)
            .holders([holder.clone()])
            .build()
            .map_err(|e| setup_error(config, e))?;
        let grant = submit(as_patient.grant(terms), &mut report, &mut acknowledged)
            .await
            .map_err(|e| setup_error(config, e))?;
        patients.push(Patient {
            key,
            grant: grant.tx,
            revoked: false,
        });
    }

    // The workload, with one validator (not a hospital) killed and restarted.
    let victims: Vec<usize> = (0..nodes.homes.len())
        .filter(|i| *i != first && *i != second)
        .collect();
    let kill_at = config.kill_faults.then(|| rng.below(config.steps.max(1)));
    let mut killed: Option<(usize, usize)> = None;
    let isolate_at = config.partitions.then(|| rng.below(config.steps.max(1)));
    let mut isolated: Option<usize> = None;
    let out = dir.path().join("fetched");
    let as_doctor = TxBuilder::new(chain.clone(), doctor.clone());
    let mut emergencies = 0usize;
    for step in 0..config.steps {
        if Some(step) == kill_at && !victims.is_empty() {
            let victim = victims[rng.below(victims.len())];
            nodes.kill(victim);
            report
                .faults
                .push(format!("step {step}: SIGKILL {}", nodes.homes[victim].0));
            killed = Some((victim, step + 1 + rng.below(4)));
        }
        if Some(step) == isolate_at && !victims.is_empty() {
            let victim = victims[rng.below(victims.len())];
            let rest: Vec<usize> = (0..nodes.homes.len()).filter(|n| *n != victim).collect();
            partition(&[&[victim], &rest]);
            report
                .faults
                .push(format!("step {step}: cut {} off", nodes.homes[victim].0));
            isolated = Some(step + 2 + rng.below(4));
        }
        if let Some(at) = isolated
            && step >= at
        {
            partition(&[]);
            report.faults.push(format!("step {step}: healed"));
            isolated = None;
        }
        if let Some((victim, at)) = killed
            && step >= at
        {
            nodes.start(victim).map_err(|e| setup_error(config, e))?;
            report
                .faults
                .push(format!("step {step}: restart {}", nodes.homes[victim].0));
            killed = None;
        }
        let p = rng.below(patients.len());
        match rng.below(10) {
            // A patient revokes.
            0 | 1 if !patients[p].revoked => {
                let as_patient = TxBuilder::new(chain.clone(), Identity::patient(&patients[p].key));
                let receipt = submit(
                    as_patient.revoke(patients[p].grant),
                    &mut report,
                    &mut acknowledged,
                )
                .await;
                if matches!(receipt, Ok(ref r) if r.outcome == TxOutcome::Applied) {
                    patients[p].revoked = true;
                }
            }
            // Break the glass.
            2 => {
                let tx = as_doctor.emergency_access(
                    patients[p].key.patient_id(),
                    holder.clone(),
                    BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
                    EmergencyReason::PatientUnconscious,
                );
                if let Ok(r) = submit(tx, &mut report, &mut acknowledged).await
                    && r.outcome == TxOutcome::Authorized
                {
                    emergencies += 1;
                    fetch_expect(
                        config,
                        &client,
                        &doctor,
                        r.tx,
                        &holder,
                        &out,
                        step,
                        true,
                        &mut report,
                    )
                    .await?;
                }
            }
            // The doctor asks under the grant and fetches.
            _ => {
                let tx = as_doctor
                    .access_request(
                        patients[p].grant,
                        holder.clone(),
                        vec![Category::LabReports],
                        Purpose::Treatment,
                    )
                    .map_err(|e| setup_error(config, e))?;
                let Ok(r) = submit(tx, &mut report, &mut acknowledged).await else {
                    continue;
                };
                match (&r.outcome, patients[p].revoked) {
                    (TxOutcome::Authorized, true) => {
                        return Err(fail(
                            config,
                            "revocation stops access",
                            format!(
                                "step {step}: a request under revoked grant {} was authorised",
                                patients[p].grant
                            ),
                        ));
                    }
                    (TxOutcome::Authorized, false) => {
                        // Sometimes the patient revokes between request and fetch.
                        let revoke_first = rng.below(4) == 0;
                        if revoke_first {
                            let as_patient =
                                TxBuilder::new(chain.clone(), Identity::patient(&patients[p].key));
                            let revoked = submit(
                                as_patient.revoke(patients[p].grant),
                                &mut report,
                                &mut acknowledged,
                            )
                            .await;
                            if let Ok(rv) = revoked {
                                patients[p].revoked = true;
                                wait_height(&clients[first], rv.height).await;
                            }
                        }
                        fetch_expect(
                            config,
                            &client,
                            &doctor,
                            r.tx,
                            &holder,
                            &out,
                            step,
                            !patients[p].revoked,
                            &mut report,
                        )
                        .await?;
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some((victim, _)) = killed {
        nodes.start(victim).map_err(|e| setup_error(config, e))?;
        report
            .faults
            .push(format!("end: restart {}", nodes.homes[victim].0));
    }
    if isolated.take().is_some() {
        report.faults.push("end: healed".into());
    }
    partition(&[]);
    if config.partitions {
        // A two-two split leaves no quorum; once healed, blocks must come again.
        let all: Vec<usize> = (0..nodes.homes.len()).collect();
        let (left, right) = all.split_at(all.len() / 2);
        partition(&[left, right]);
        report.faults.push("end: split two-two".into());
        tokio::time::sleep(Duration::from_millis(500)).await;
        let split_at = status_height(&clients[second]).await.unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let during = status_height(&clients[second]).await.unwrap_or(0);
        if during > split_at + 1 {
            // Without a quorum nothing can commit: the cut did not hold.
            return Err(fail(
                config,
                "no commit without a quorum",
                format!("heights {split_at} → {during} during a two-two split"),
            ));
        }
        partition(&[]);
        report.faults.push("end: healed".into());
        let before = status_height(&clients[second]).await.unwrap_or(0);
        let healed = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(HEAL_BOUND_SECS);
        while status_height(&clients[second]).await.unwrap_or(0) <= before + 1 {
            if Instant::now() > deadline {
                eprintln!("nodes now: {}", describe(&clients, &nodes.homes).await);
                return Err(fail(
                    config,
                    "progress after healing",
                    format!("no new block within {HEAL_BOUND_SECS} s of healing a two-two split"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        report.faults.push(format!(
            "end: blocks again {:.1} s after healing",
            healed.elapsed().as_secs_f64()
        ));
        report.invariants.push(
            "no block commits during a two-two split; after healing, blocks come again within the bound",
        );
    }
    report.invariants.push("every fetch after a revocation was refused; every fetch under an active grant delivered its manifest");

    // All nodes reach the last acknowledged height, then agree.
    let last = acknowledged.iter().map(|(_, h)| *h).max().unwrap_or(0);
    for (i, c) in clients.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while status_height(c).await.unwrap_or(0) < last {
            if Instant::now() > deadline {
                eprintln!("nodes now: {}", describe(&clients, &nodes.homes).await);
                return Err(fail(
                    config,
                    "progress after healing",
                    format!(
                        "{} did not reach height {last} within 60 s",
                        nodes.homes[i].0
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for h in 1..=last {
        let mut hashes = BTreeMap::new();
        for (i, c) in clients.iter().enumerate() {
            let header = c
                .get(&format!("/v1/headers/{h}"))
                .await
                .map_err(|e| fail(config, "agreement", e.to_string()))?;
            hashes.insert(
                nodes.homes[i].0.clone(),
                header["hash"].as_str().unwrap_or_default().to_string(),
            );
        }
        let distinct: std::collections::BTreeSet<_> = hashes.values().collect();
        if distinct.len() != 1 {
            return Err(fail(
                config,
                "agreement",
                format!("nodes differ at height {h}: {hashes:?}"),
            ));
        }
    }
    report
        .invariants
        .push("all nodes agree on every committed header");
    for (tx, height) in &acknowledged {
        for (i, c) in clients.iter().enumerate() {
            let receipt = c
                .receipt(tx)
                .await
                .map_err(|e| fail(config, "durability", e.to_string()))?;
            if receipt.as_ref().map(|r| r.height) != Some(*height) {
                return Err(fail(
                    config,
                    "durability",
                    format!(
                        "{} lacks acknowledged transaction {tx} of height {height}",
                        nodes.homes[i].0
                    ),
                ));
            }
        }
    }
    report
        .invariants
        .push("nothing acknowledged as committed was lost");

    // The auditor's replay, and what it must (not) find.
    let reports = dir.path().join("audit");
    let output = Command::new(&config.binary)
        .args(["audit", "replay", "--genesis"])
        .arg(dir.path().join("genesis.json"))
        .args(["--from", &nodes.homes[0].2, "--key"])
        .arg(dir.path().join("keys").join("admin.health-commission.json"))
        .args(["--as-institution", "health-commission", "--report"])
        .arg(&reports)
        .output()
        .map_err(|e| setup_error(config, e))?;
    if !output.status.success() {
        return Err(fail(
            config,
            "audit replay",
            String::from_utf8_lossy(&output.stderr).to_string(),
        ));
    }
    let read = |name: &str| -> Result<Value, Failure> {
        serde_json::from_str(
            &std::fs::read_to_string(reports.join(name)).map_err(|e| setup_error(config, e))?,
        )
        .map_err(|e| setup_error(config, e))
    };
    let anomalies = read("anomalies.json")?;
    for (key, invariant) in [
        (
            "releases_without_an_authorised_request",
            "every release rests on an authorised request",
        ),
        (
            "releases_after_the_grant_ended",
            "a revocation stops every later release",
        ),
    ] {
        if anomalies[key].as_array().is_some_and(|a| !a.is_empty()) {
            return Err(fail(
                config,
                invariant,
                format!("the audit found {key}: {}", anomalies[key]),
            ));
        }
    }
    let summary = read("summary.json")?;
    let flagged = summary["counts"]["emergency accesses"]
        .as_u64()
        .unwrap_or(0);
    if usize::try_from(flagged).unwrap_or(0) != emergencies {
        return Err(fail(
            config,
            "every emergency access is flagged",
            format!("made {emergencies}, the audit flags {flagged}"),
        ));
    }
    report.invariants.extend([
        "the auditor's replay from genesis passes",
        "every release rests on an authorised request",
        "a revocation stops every later release",
        "every emergency access is flagged",
    ]);
    report.committed = acknowledged.len();
    report.latencies_ms.sort_unstable();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn link(records: &Path, record_number: &str, patient_hex: &str) -> std::io::Result<()> {
    let path = records.join("patient-links.json");
    let mut links: BTreeMap<String, String> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    links.insert(record_number.to_string(), patient_hex.to_string());
    let tmp = records.join("patient-links.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string(&links).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}

/// Every node's height, round and peer count, for a failure's post-mortem.
async fn describe(clients: &[Client], homes: &[(String, PathBuf, String)]) -> String {
    let mut seen = Vec::new();
    for (c, home) in clients.iter().zip(homes) {
        let s = c.status().await.map(|s| s.raw).unwrap_or_default();
        seen.push(format!(
            "{} height {} round {} peers {}",
            home.0, s["height"], s["round"], s["peers"]
        ));
    }
    seen.join("; ")
}

async fn wait_height(client: &Client, height: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_height(client).await.unwrap_or(0) < height && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fetches and checks the outcome against what the ledger allows.
#[allow(clippy::too_many_arguments)]
async fn fetch_expect(
    config: &SimConfig,
    client: &Client,
    doctor: &Identity,
    request: TxHash,
    holder: &InstitutionId,
    out: &Path,
    step: usize,
    allowed: bool,
    report: &mut Report,
) -> Result<(), Failure> {
    let result = fetch_records(
        client,
        doctor,
        request,
        holder.clone(),
        &out.join(format!("step-{step}")),
    )
    .await;
    match (allowed, result) {
        (true, Ok(fetched)) if fetched.items.len() == 1 => {
            report.fetches += 1;
            Ok(())
        }
        (true, Ok(fetched)) => Err(fail(
            config,
            "granted records arrive",
            format!(
                "step {step}: {} resources instead of 1",
                fetched.items.len()
            ),
        )),
        (true, Err(e)) => Err(fail(
            config,
            "granted records arrive",
            format!("step {step}: {e}"),
        )),
        (false, Ok(_)) => Err(fail(
            config,
            "a revocation stops every later release",
            format!("step {step}: request {request} was served after its grant was revoked"),
        )),
        (false, Err(SdkError::Api { code, .. })) if code == "grant_not_active" => {
            report.refusals += 1;
            Ok(())
        }
        (false, Err(e)) => Err(fail(
            config,
            "a revocation stops every later release",
            format!("step {step}: refused for another reason: {e}"),
        )),
    }
}
