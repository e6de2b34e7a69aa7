//! The simulated region acting on the consortium: patients (adults, minors
//! with a guardian, elderly people with a proxy) whose records sit at their
//! usual hospital and who grant the other hospital for referrals; doctors
//! who ask and fetch through the gateway; consent requests answered;
//! emergency visits; the CDC's public-health reporting during an outbreak
//! wave; under the Byzantine profile, replayed fetches, a transaction sent
//! to two nodes at once and a revocation racing a request; and, under the
//! hostile profile, one member's attacks on the others ([`hostile`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use medledger_client_sdk::records::{FetchedRecords, fetch_records};
use medledger_client_sdk::{
    Client, Identity, KeyFile, SdkError, TermsBuilder, TxBuilder, TxOutcome, TxReceipt,
};
use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{BoundedVec, HashFunction};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer};
use medledger_contracts::types::{
    Category, DelegateRole, EmergencyReason, Grantee, InstitutionId, LegalBasis, PatientId,
    Purpose, TxHash,
};

mod actors;
mod checks;
mod faults;
mod hostile;

use crate::checks::{ChainCheck, Ledger, submit_recorded};
use crate::cluster::Cluster;
use crate::config::SimConfig;
use crate::plan::{Outage, Plan, Rng, Targets, plan};
use crate::report::{Failure, Report, fail, read_json, setup_error};

/// The two hospitals: they hold records and their doctors request them.
const HOSPITALS: [&str; 2] = ["city-first-hospital", "city-second-hospital"];
/// Their doctors' key labels.
const DOCTORS: [&str; 2] = ["practitioner.dr-first-1", "practitioner.dr-second-1"];
/// How long a stopped node may take to notice its disk is full.
const DISK_STOP_SECS: u64 = 30;

/// How a patient decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Adult,
    /// Decisions signed by a guardian.
    Minor,
    /// Decisions signed by a proxy.
    Elderly,
}

struct Patient {
    id: PatientId,
    kind: Kind,
    /// Who signs their grants, revocations and answers.
    acting: Identity,
    /// The hospital holding their records (0 or 1).
    usual: usize,
    /// The referral grant to the other hospital, and whether it is revoked.
    grant: TxHash,
    revoked: bool,
}

/// What a fetch should come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// This many resources.
    Deliver(usize),
    /// Refused with `grant_not_active`.
    Revoked,
}

/// The region and the run.
pub struct World<'a> {
    config: &'a SimConfig,
    cluster: Cluster,
    rng: Rng,
    started: Instant,
    ledger: Ledger,
    report: Report,
    chain_check: ChainCheck,
    hospitals: [usize; 2],
    hospital_ids: [InstitutionId; 2],
    doctors: [Identity; 2],
    cdc: Identity,
    /// Doctors of the internet hospital and the community health centre
    /// (institutions with a node only when the run has seven validators or
    /// more): they ask patients for consent through the ledger.
    clinics: Vec<(Identity, InstitutionId)>,
    patients: Vec<Patient>,
    emergencies: usize,
    public_health: usize,
    /// The hospital node now sending altered records, if any.
    tampering: Option<usize>,
    /// The validators that lie in their proposals (f of them).
    liars: Vec<String>,
    /// The hostile member's next attack (they are tried in turn).
    hostile_next: usize,
    out: PathBuf,
    step_no: usize,
}

fn ms(d: Duration) -> u64 {
    medledger_contracts::types::millis(d)
}

impl<'a> World<'a> {
    /// Sets up the consortium and region, runs the workload and its faults,
    /// and checks every invariant.
    pub async fn run(config: &'a SimConfig) -> Result<Report, Failure> {
        let started = Instant::now();
        let mut rng = Rng(config.seed);
        let keep = std::env::var_os("MEDLEDGER_SIM_KEEP").is_some();
        let mut cluster = Cluster::create(
            &config.binary,
            "medledger-sim",
            config.suite,
            config.validators,
            keep,
        )
        .await
        .map_err(|e| setup_error(config, e))?;
        // The small disk goes under a validator that is not a hospital, before it starts.
        let mut disk_refused = None;
        if config.faults.disk {
            let others = not_hospitals(&cluster);
            if !others.is_empty() {
                let node = others[rng.below(others.len())];
                if let Err(why) = cluster.mount_small_disk(node) {
                    disk_refused = Some(why);
                }
            }
        }
        let mut world = World::new(config, cluster, rng, started)?;
        if let Some(why) = disk_refused {
            world.note_fault(format!("full disk NOT injected: {why}"));
        }
        world.start_nodes().await?;
        world.setup().await?;
        let load = world.start_load();
        let mut result = world.workload().await;
        if result.is_ok() && config.faults.hostile {
            result = world.hostile_sweep().await;
        }
        load.stop().await;
        result?;
        world.finish().await
    }

    fn new(
        config: &'a SimConfig,
        mut cluster: Cluster,
        mut rng: Rng,
        started: Instant,
    ) -> Result<Self, Failure> {
        let index = |id: &str| {
            cluster
                .index(id)
                .ok_or_else(|| setup_error(config, format!("the testnet lacks {id}")))
        };
        let hospitals = [index(HOSPITALS[0])?, index(HOSPITALS[1])?];
        let hospital_ids = [
            InstitutionId::new(HOSPITALS[0]).map_err(|e| setup_error(config, e))?,
            InstitutionId::new(HOSPITALS[1]).map_err(|e| setup_error(config, e))?,
        ];
        let doctor = |label: &str| cluster.key(label).map(|k| Identity::practitioner(&k));
        let doctors = [
            doctor(DOCTORS[0]).map_err(|e| setup_error(config, e))?,
            doctor(DOCTORS[1]).map_err(|e| setup_error(config, e))?,
        ];
        let cdc = doctor("practitioner.cdc-officer-1").map_err(|e| setup_error(config, e))?;
        let mut clinics = Vec::new();
        for (label, institution) in [
            ("practitioner.dr-online-1", "first-online"),
            ("practitioner.dr-community-1", "west-community"),
        ] {
            clinics.push((
                doctor(label).map_err(|e| setup_error(config, e))?,
                InstitutionId::new(institution).map_err(|e| setup_error(config, e))?,
            ));
        }
        // Whole-run faults: f lying proposers, a skewed clock, a broken holder.
        let others = not_hospitals(&cluster);
        let mut liars = Vec::new();
        if config.faults.byzantine && !others.is_empty() {
            // Never the node with the small disk: each fault its own node where possible.
            let candidates: Vec<usize> = others
                .iter()
                .copied()
                .filter(|i| cluster.disk.as_ref().is_none_or(|d| d.node != *i))
                .collect();
            let pool = if candidates.is_empty() {
                &others
            } else {
                &candidates
            };
            // f distinct nodes (a partial shuffle; with f = 1 the one draw a
            // single pick made, so four-validator seeds keep their runs).
            let mut pool = pool.clone();
            for k in 0..config.fault_budget().clamp(1, pool.len()) {
                let j = k + rng.below(pool.len() - k);
                pool.swap(k, j);
                let node = pool[k];
                cluster
                    .env_mut(node)
                    .push(("MEDLEDGER_FAULT".into(), "bad-state-root".into()));
                liars.push(cluster.nodes()[node].institution.clone());
            }
        }
        let mut report = Report {
            interval: config.interval,
            ..Report::default()
        };
        if config.faults.skew {
            let node = rng.below(cluster.nodes().len());
            let magnitude = 1_000 + rng.below(1_500) as i64;
            let offset = if rng.chance(50) {
                magnitude
            } else {
                -magnitude
            };
            cluster
                .env_mut(node)
                .push(("MEDLEDGER_CLOCK_OFFSET_MS".into(), offset.to_string()));
            report.faults.push((
                0,
                format!(
                    "clock of {} shifted {offset:+} ms for the whole run",
                    cluster.nodes()[node].institution
                ),
            ));
        }
        for node in &liars {
            report.faults.push((
                0,
                format!("{node} proposes blocks with a wrong state root for the whole run"),
            ));
        }
        if let Some(fault) = &config.holder_fault {
            cluster
                .env_mut(hospitals[0])
                .push(("MEDLEDGER_FAULT".into(), fault.clone()));
            report
                .faults
                .push((0, format!("{} built with {fault}", HOSPITALS[0])));
        }
        let out = cluster.dir().join("fetched");
        Ok(World {
            config,
            cluster,
            rng,
            started,
            ledger: Ledger::default(),
            report,
            chain_check: ChainCheck::default(),
            hospitals,
            hospital_ids,
            doctors,
            cdc,
            clinics,
            patients: Vec::new(),
            emergencies: 0,
            public_health: 0,
            tampering: None,
            liars,
            hostile_next: 0,
            out,
            step_no: 0,
        })
    }

    fn fail(&self, invariant: &'static str, detail: impl Into<String>) -> Failure {
        fail(self.config, invariant, detail)
    }

    fn setup_error(&self, e: impl std::fmt::Display) -> Failure {
        setup_error(self.config, e)
    }

    fn note_fault(&mut self, what: String) {
        let at = ms(self.started.elapsed());
        self.report.faults.push((at, what));
    }

    fn count(&mut self, action: &'static str) {
        *self.report.actions.entry(action).or_insert(0) += 1;
    }

    async fn start_nodes(&mut self) -> Result<(), Failure> {
        for i in 0..self.cluster.nodes().len() {
            self.cluster
                .start(i)
                .map_err(|e| setup_error(self.config, e))?;
        }
        if !self
            .cluster
            .reach(self.hospitals[1], 1, Duration::from_secs(60))
            .await
        {
            return Err(self.setup_error("no block within 60 s"));
        }
        Ok(())
    }

    /// A client for node `via`, or another running hospital's when it is down.
    fn client(&self, via: usize) -> Client {
        let node = if self.cluster.running(via) {
            via
        } else {
            self.hospitals
                .iter()
                .copied()
                .find(|h| self.cluster.running(*h))
                .unwrap_or(via)
        };
        self.cluster.clients[node].clone()
    }

    async fn submit(&mut self, tx: &SignedTransaction, via: usize) -> Result<TxReceipt, SdkError> {
        let client = self.client(via);
        submit_recorded(&client, tx, &self.ledger, self.started, false).await
    }

    fn builder(&self, who: &Identity) -> TxBuilder {
        TxBuilder::new(self.cluster.chain.clone(), who.clone())
    }

    /// Patients register (with a guardian or proxy when they need one),
    /// their records go to their usual hospital, and they grant the other
    /// hospital lab reports from it.
    async fn setup(&mut self) -> Result<(), Failure> {
        let run_seed = self.config.seed;
        for p in 0..self.config.patients {
            let key = |role: u8| {
                // A key seed, not a ledger hash: fixed to SHA-256.
                let seed = HashFunction::Sha256.tagged_hash(
                    b"medledger/sim-patient",
                    &[&run_seed.to_be_bytes(), &(p as u64).to_be_bytes(), &[role]],
                );
                KeyFile::from_secret(seeded(self.config.suite, seed.0))
            };
            let patient_key = key(0);
            let id = patient_key.patient_id();
            let kind = match self.rng.below(10) {
                0 | 1 => Kind::Minor,
                2 | 3 => Kind::Elderly,
                _ => Kind::Adult,
            };
            let usual = self.rng.below(2);
            let via = self.hospitals[usual];
            let as_patient = Identity::patient(&patient_key);
            self.submit(&self.builder(&as_patient).register_patient(), via)
                .await
                .map_err(|e| self.setup_error(e))?;
            let acting = if kind == Kind::Adult {
                as_patient
            } else {
                // A parent (recorded by the hospital) or a grown-up child (appointed
                // by the patient), registered first.
                let delegate_key = key(1);
                let delegate = Identity::patient(&delegate_key);
                self.submit(&self.builder(&delegate).register_patient(), via)
                    .await
                    .map_err(|e| self.setup_error(e))?;
                let until = medledger_client_sdk::client::now().plus_days(365);
                let (tx, action) = if kind == Kind::Minor {
                    // The hospital records the guardianship it has seen the papers for.
                    let admin = self
                        .cluster
                        .key(&format!("admin.{}", HOSPITALS[usual]))
                        .map_err(|e| self.setup_error(e))?;
                    let hospital = Identity::institution(self.hospital_ids[usual].clone(), &admin);
                    // The child's key, which the parent holds, consents (R4.7).
                    let mut salt = [0u8; 16];
                    salt[..8].copy_from_slice(&(p as u64).to_le_bytes());
                    let evidence = medledger_client_sdk::tx::guardianship_evidence_hash(
                        self.cluster.chain.hash(),
                        &salt,
                        &format!("SIM-BIRTH-{p}"),
                    );
                    let tx = self.builder(&hospital).record_guardianship(
                        &patient_key,
                        delegate_key.patient_id(),
                        until,
                        evidence,
                    );
                    (tx, "guardianships recorded for minors")
                } else {
                    let tx = self.builder(&as_patient).delegate(
                        delegate_key.patient_id(),
                        DelegateRole::Proxy,
                        until,
                    );
                    (tx, "proxies appointed by elderly patients")
                };
                let appointed = self
                    .submit(&tx, via)
                    .await
                    .map_err(|e| self.setup_error(e))?;
                if appointed.outcome != TxOutcome::Applied {
                    return Err(self.setup_error(format!("{action}: {appointed:?}")));
                }
                self.count(action);
                Identity::new(
                    Signer::Delegate(appointed.tx),
                    delegate_key.secret().clone(),
                )
            };
            let record_number = format!("SIM-{p}");
            self.hold_records(usual, &record_number, &patient_key)
                .map_err(|e| self.setup_error(e))?;
            let grant = self.grant(&acting, id, usual, via).await?;
            self.patients.push(Patient {
                id,
                kind,
                acting,
                usual,
                grant,
                revoked: false,
            });
        }
        Ok(())
    }

    /// The referral grant: lab reports from the usual hospital, to the other.
    async fn grant(
        &mut self,
        acting: &Identity,
        patient: PatientId,
        usual: usize,
        via: usize,
    ) -> Result<TxHash, Failure> {
        let terms = TermsBuilder::new(
            patient,
            Grantee::Institution(self.hospital_ids[1 - usual].clone()),
        )
        .category(Category::LabReports)
        .holders([self.hospital_ids[usual].clone()])
        .purpose(Purpose::Referral)
        .build()
        .map_err(|e| self.setup_error(e))?;
        let receipt = self
            .submit(&self.builder(acting).grant(terms), via)
            .await
            .map_err(|e| self.setup_error(format!("grant: {e}")))?;
        if receipt.outcome != TxOutcome::Applied {
            return Err(self.setup_error(format!("grant: {receipt:?}")));
        }
        self.count("grants");
        Ok(receipt.tx)
    }

    /// Lab reports and a prescription at the hospital, linked to the patient
    /// with their signature.
    fn hold_records(
        &self,
        hospital: usize,
        record_number: &str,
        patient_key: &KeyFile,
    ) -> std::io::Result<()> {
        let records = self.cluster.nodes()[self.hospitals[hospital]]
            .home
            .join("records");
        for (category, resource) in [
            ("lab-reports", "Observation"),
            ("prescriptions", "MedicationRequest"),
        ] {
            let dir = records.join(record_number).join(category);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(
                dir.join("resource.json"),
                format!("{{\"resourceType\":\"{resource}\",\"id\":\"{record_number}\"}}"),
            )?;
        }
        let signature = medledger_client_sdk::tx::record_link_signature(
            patient_key,
            &self.cluster.chain,
            &self.hospital_ids[hospital],
            record_number,
        );
        link(
            &records,
            record_number,
            &patient_key.patient_id().0.to_hex(),
            &signature.to_hex(),
        )
    }

    /// Rounds of steps (one, or as many as the soak's time allows), each
    /// with its own fault plan; the chain is compared across nodes every few steps.
    async fn workload(&mut self) -> Result<(), Failure> {
        let targets = Targets {
            others: not_hospitals(&self.cluster),
            disk: self.cluster.disk.as_ref().map(|d| d.node),
            // The second hospital; the first may carry the holder fault.
            tamper: Some(self.hospitals[1]),
            all: self.cluster.nodes().len(),
            fault_budget: self.config.fault_budget(),
        };
        let deadline = self.config.soak.map(|s| self.started + s);
        loop {
            let round = plan(
                &mut self.rng,
                self.config.steps,
                &self.config.faults,
                &targets,
            );
            self.round(&round).await?;
            if deadline.is_none_or(|d| Instant::now() >= d) {
                return Ok(());
            }
        }
    }

    async fn round(&mut self, plan: &Plan) -> Result<(), Failure> {
        let steps = self.config.steps;
        // The outbreak wave: the middle third of the round.
        let wave = steps / 3..2 * steps / 3;
        for step in 0..steps {
            for w in &plan.outages {
                if w.start == step {
                    self.begin(w.what.clone()).await?;
                }
                if w.end == step {
                    self.end(w.what.clone()).await?;
                }
            }
            for w in &plan.slow {
                let (node, delay) = w.what;
                if w.start == step {
                    self.cluster.slow(node, Duration::from_millis(delay));
                    let name = self.cluster.nodes()[node].institution.clone();
                    self.note_fault(format!("links of {name} slowed by {delay} ms"));
                }
                if step == w.end.min(steps - 1) {
                    self.cluster.slow(node, Duration::ZERO);
                    self.note_fault("links at full speed again".into());
                }
            }
            self.step(wave.contains(&step)).await?;
            self.step_no += 1;
            if self.step_no % 10 == 0 {
                let upto = self.cluster.height(self.hospitals[1]).await.unwrap_or(0);
                let liars = self.liars.clone();
                self.chain_check
                    .check(self.config, &self.cluster, upto, false, &liars)
                    .await?;
            }
        }
        Ok(())
    }

    /// One step of the region's life.
    async fn step(&mut self, outbreak: bool) -> Result<(), Failure> {
        let p = self.rng.below(self.patients.len());
        let roll = self.rng.below(100);
        let byzantine = self.config.faults.byzantine;
        if (outbreak && roll < 30) || roll < 2 {
            return self.public_health_report(p).await;
        }
        match roll {
            2..=11 => self.revoke_or_regrant(p).await,
            12..=19 => self.consent_request(p).await,
            20..=26 => self.emergency(p).await,
            27..=33 if byzantine => self.race(p).await,
            34..=38 if byzantine => self.twice(p).await,
            39..=42 if self.config.faults.hostile => self.hostile(p).await,
            _ => self.referral(p).await,
        }
    }

    fn start_load(&self) -> Load {
        Load::start(
            self.config,
            self.hospitals
                .iter()
                .map(|h| self.cluster.clients[*h].clone())
                .collect(),
            self.ledger.clone(),
            self.started,
        )
    }
}

/// Sends a copy of a transaction another node already has: it commits once,
/// so this copy is refused as a duplicate or already committed, or waits for the same receipt.
async fn a_second_copy(
    client: &Client,
    tx: &SignedTransaction,
) -> Result<Option<TxReceipt>, SdkError> {
    match client.submit_and_wait(tx, None).await {
        Ok(r) => Ok(Some(r)),
        Err(SdkError::Api { code, .. }) if code == "duplicate" || code == "already_committed" => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The validators that are not hospitals (the targets of outages).
fn not_hospitals(cluster: &Cluster) -> Vec<usize> {
    (0..cluster.nodes().len())
        .filter(|i| !HOSPITALS.contains(&cluster.nodes()[*i].institution.as_str()))
        .collect()
}

/// Files under a directory, recursively (0 when it does not exist).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

/// Links a hospital record number to a patient in the gateway's links file,
/// with the patient's signature (the file's format: `docs/records.md`).
fn link(
    records: &Path,
    record_number: &str,
    patient_hex: &str,
    signature_hex: &str,
) -> std::io::Result<()> {
    let path = records.join("patient-links.json");
    let mut links: BTreeMap<String, serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    links.insert(
        record_number.to_string(),
        serde_json::json!({"patient": patient_hex, "signature": signature_hex}),
    );
    let tmp = records.join("patient-links.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string(&links).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(tmp, path)
}

/// Background registrations at a steady rate, to measure throughput and
/// latency under the faults.
struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(config: &SimConfig, clients: Vec<Client>, ledger: Ledger, started: Instant) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        if config.load == 0 || clients.is_empty() {
            return Load { stop, task: None };
        }
        let chain = clients[0].chain().clone();
        let period = Duration::from_secs_f64(1.0 / f64::from(config.load));
        let seed = config.seed;
        let task = tokio::spawn(async move {
            let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
            let mut tick = tokio::time::interval(period);
            let mut n = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    continue; // saturated: the offered load is shed, not queued
                };
                n += 1;
                let key = KeyFile::from_secret(seeded(
                    chain.suite,
                    HashFunction::Sha256
                        .tagged_hash(
                            b"medledger/sim-load",
                            &[&seed.to_be_bytes(), &n.to_be_bytes()],
                        )
                        .0,
                ));
                let tx = TxBuilder::new(chain.clone(), Identity::patient(&key)).register_patient();
                let client = clients[usize::try_from(n).unwrap_or(0) % clients.len()].clone();
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let _ = submit_recorded(&client, &tx, &ledger, started, true).await;
                    drop(permit);
                });
            }
            // Let what is in flight finish, so it counts (bounded).
            let _ = tokio::time::timeout(Duration::from_secs(30), in_flight.acquire_many(64)).await;
        });
        Load {
            stop,
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A key of `suite`'s scheme from a 32-byte seed (for SM2 the seed is the
/// scalar, hashed again in the 2^-224 case it is not one).
fn seeded(suite: medledger_contracts::crypto::CryptoSuite, seed: [u8; 32]) -> SecretKey {
    let mut seed = seed;
    loop {
        match SecretKey::from_seed_of(suite, seed) {
            Ok(key) => return key,
            Err(_) => seed = HashFunction::Sha256.digest(&seed).0,
        }
    }
}
