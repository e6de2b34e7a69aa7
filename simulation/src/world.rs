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
use medledger_contracts::encoding::{BoundedVec, tagged_hash};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer};
use medledger_contracts::types::{
    Category, DelegateRole, EmergencyReason, Grantee, InstitutionId, LegalBasis, PatientId,
    Purpose, TxHash,
};

mod hostile;

use crate::cluster::Cluster;
use crate::run::{
    ChainCheck, Failure, HEAL_BOUND_SECS, Ledger, Outage, Plan, Report, Rng, SimConfig, Targets,
    fail, plan, read_json, setup_error, submit_recorded,
};

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
    /// Doctors of institutions without a node of their own here (the
    /// internet hospital, the community health centre): they ask patients
    /// for consent through the ledger.
    clinics: Vec<(Identity, InstitutionId)>,
    patients: Vec<Patient>,
    emergencies: usize,
    public_health: usize,
    /// The hospital node now sending altered records, if any.
    tampering: Option<usize>,
    /// The validator that lies in its proposals.
    liar: Option<String>,
    /// The hostile member's next attack (they are tried in turn).
    hostile_next: usize,
    out: PathBuf,
    step_no: usize,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'a> World<'a> {
    /// Sets up the consortium and region, runs the workload and its faults,
    /// and checks every invariant.
    pub async fn run(config: &'a SimConfig) -> Result<Report, Failure> {
        let started = Instant::now();
        let mut rng = Rng(config.seed);
        let keep = std::env::var_os("MEDLEDGER_SIM_KEEP").is_some();
        let mut cluster = Cluster::create(&config.binary, "medledger-sim", keep)
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
        // Whole-run faults: a lying proposer, a skewed clock, a broken holder.
        let others = not_hospitals(&cluster);
        let mut liar = None;
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
            let node = pool[rng.below(pool.len())];
            cluster.nodes[node]
                .env
                .push(("MEDLEDGER_FAULT".into(), "bad-state-root".into()));
            liar = Some(cluster.nodes[node].institution.clone());
        }
        let mut report = Report {
            interval: config.interval,
            ..Report::default()
        };
        if config.faults.skew {
            let node = rng.below(cluster.nodes.len());
            let magnitude = 1_000 + rng.below(1_500) as i64;
            let offset = if rng.chance(50) {
                magnitude
            } else {
                -magnitude
            };
            cluster.nodes[node]
                .env
                .push(("MEDLEDGER_CLOCK_OFFSET_MS".into(), offset.to_string()));
            report.faults.push((
                0,
                format!(
                    "clock of {} shifted {offset:+} ms for the whole run",
                    cluster.nodes[node].institution
                ),
            ));
        }
        if let Some(node) = &liar {
            report.faults.push((
                0,
                format!("{node} proposes blocks with a wrong state root for the whole run"),
            ));
        }
        if let Some(fault) = &config.holder_fault {
            cluster.nodes[hospitals[0]]
                .env
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
            liar,
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
        for i in 0..self.cluster.nodes.len() {
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
                let seed = tagged_hash(
                    b"medledger/sim-patient",
                    &[&run_seed.to_be_bytes(), &(p as u64).to_be_bytes(), &[role]],
                );
                KeyFile::from_secret(SecretKey::from_seed(seed.0))
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
            self.hold_records(usual, &record_number, &id)
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

    /// Lab reports and a prescription at the hospital, linked to the patient.
    fn hold_records(
        &self,
        hospital: usize,
        record_number: &str,
        patient: &PatientId,
    ) -> std::io::Result<()> {
        let records = self.cluster.nodes[self.hospitals[hospital]]
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
        link(&records, record_number, &patient.0.to_hex())
    }

    /// Rounds of steps (one, or as many as the soak's time allows), each
    /// with its own fault plan; the chain is compared across nodes every few steps.
    async fn workload(&mut self) -> Result<(), Failure> {
        let targets = Targets {
            others: not_hospitals(&self.cluster),
            disk: self.cluster.disk.as_ref().map(|d| d.node),
            // The second hospital; the first may carry the holder fault.
            tamper: Some(self.hospitals[1]),
            all: self.cluster.nodes.len(),
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
                    self.begin(w.what).await?;
                }
                if w.end == step {
                    self.end(w.what).await?;
                }
            }
            for w in &plan.slow {
                let (node, delay) = w.what;
                if w.start == step {
                    self.cluster.slow(node, Duration::from_millis(delay));
                    let name = self.cluster.nodes[node].institution.clone();
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
                let liar = self.liar.clone();
                self.chain_check
                    .check(self.config, &self.cluster, upto, false, liar.as_deref())
                    .await?;
            }
        }
        Ok(())
    }

    async fn begin(&mut self, outage: Outage) -> Result<(), Failure> {
        match outage {
            Outage::Kill(node) => {
                self.cluster.kill(node);
                let name = self.cluster.nodes[node].institution.clone();
                self.note_fault(format!("SIGKILL {name}"));
            }
            Outage::Cut(node) => {
                let rest: Vec<usize> = (0..self.cluster.nodes.len())
                    .filter(|n| *n != node)
                    .collect();
                self.cluster.partition(&[&[node], &rest]);
                let name = self.cluster.nodes[node].institution.clone();
                self.note_fault(format!("{name} cut off"));
            }
            Outage::FullDisk(node) => self.fill_disk(node).await?,
            Outage::Tamper(node) => {
                self.restart_with(node, Some("tamper-chunk")).await?;
                self.tampering = Some(node);
                let name = self.cluster.nodes[node].institution.clone();
                self.note_fault(format!("{name} restarted as a holder that alters records"));
            }
        }
        Ok(())
    }

    async fn end(&mut self, outage: Outage) -> Result<(), Failure> {
        let name = match outage {
            Outage::Kill(n) | Outage::Cut(n) | Outage::FullDisk(n) | Outage::Tamper(n) => {
                self.cluster.nodes[n].institution.clone()
            }
        };
        match outage {
            Outage::Kill(node) => {
                self.cluster.start(node).map_err(|e| self.setup_error(e))?;
                self.note_fault(format!("{name} restarted"));
            }
            Outage::Cut(_) => {
                self.cluster.partition(&[]);
                self.note_fault(format!("{name} reconnected"));
            }
            Outage::FullDisk(node) => {
                if let Some(disk) = &self.cluster.disk {
                    disk.free().map_err(|e| setup_error(self.config, e))?;
                }
                self.cluster.start(node).map_err(|e| self.setup_error(e))?;
                self.note_fault(format!("{name}'s disk freed, node restarted"));
            }
            Outage::Tamper(node) => {
                self.restart_with(node, None).await?;
                self.tampering = None;
                self.note_fault(format!("{name} restarted honest"));
            }
        }
        Ok(())
    }

    /// Fills the node's disk; it must stop by itself (exit 75), without
    /// harming anyone else.
    async fn fill_disk(&mut self, node: usize) -> Result<(), Failure> {
        let name = self.cluster.nodes[node].institution.clone();
        let Some(disk) = &self.cluster.disk else {
            return Ok(());
        };
        let filled = disk.fill().map_err(|e| setup_error(self.config, e))?;
        let at = Instant::now();
        self.note_fault(format!("{name}'s disk filled ({} MiB)", filled >> 20));
        loop {
            if let Some(code) = self.cluster.exited(node) {
                if code != Some(75) {
                    return Err(self.fail(
                        "a node that cannot write stops cleanly",
                        format!("{name} exited with {code:?} on a full disk, not 75"),
                    ));
                }
                self.note_fault(format!(
                    "{name} stopped itself {:.1} s later (exit 75)",
                    at.elapsed().as_secs_f64()
                ));
                self.report.invariants.insert(
                    "a node whose disk fills stops itself; freed and restarted, it catches up",
                );
                return Ok(());
            }
            if at.elapsed() > Duration::from_secs(DISK_STOP_SECS) {
                return Err(self.fail(
                    "a node that cannot write stops cleanly",
                    format!("{name} kept running {DISK_STOP_SECS} s with a full disk"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Restarts a node with (or without) a `MEDLEDGER_FAULT`, and waits until it has caught up.
    async fn restart_with(&mut self, node: usize, fault: Option<&str>) -> Result<(), Failure> {
        self.cluster.kill(node);
        let env = &mut self.cluster.nodes[node].env;
        env.retain(|(k, _)| k != "MEDLEDGER_FAULT");
        if let Some(fault) = fault {
            env.push(("MEDLEDGER_FAULT".into(), fault.into()));
        }
        self.cluster.start(node).map_err(|e| self.setup_error(e))?;
        let other = if node == self.hospitals[0] {
            self.hospitals[1]
        } else {
            self.hospitals[0]
        };
        let target = self.cluster.height(other).await.unwrap_or(0);
        if !self
            .cluster
            .reach(node, target, Duration::from_secs(60))
            .await
        {
            return Err(self.fail(
                "progress after healing",
                format!(
                    "{} did not catch up to {target} within 60 s of restarting: {}",
                    self.cluster.nodes[node].institution,
                    self.cluster.describe().await
                ),
            ));
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

    async fn revoke_or_regrant(&mut self, p: usize) -> Result<(), Failure> {
        let (acting, usual, id) = {
            let patient = &self.patients[p];
            (patient.acting.clone(), patient.usual, patient.id)
        };
        let via = self.hospitals[usual];
        if self.patients[p].revoked {
            let grant = self.grant(&acting, id, usual, via).await?;
            self.patients[p].grant = grant;
            self.patients[p].revoked = false;
            return Ok(());
        }
        let revoke = self.builder(&acting).revoke(self.patients[p].grant);
        if let Ok(r) = self.submit(&revoke, via).await
            && r.outcome == TxOutcome::Applied
        {
            self.patients[p].revoked = true;
            self.count("revocations");
        }
        Ok(())
    }

    /// A doctor of the other hospital asks under the referral grant and fetches.
    async fn referral(&mut self, p: usize) -> Result<(), Failure> {
        let (usual, grant, revoked) = {
            let patient = &self.patients[p];
            (patient.usual, patient.grant, patient.revoked)
        };
        let (requester, tx) = self.referral_request(p)?;
        let Ok(r) = self.submit(&tx, self.hospitals[requester]).await else {
            return Ok(());
        };
        self.count("access requests");
        match (&r.outcome, revoked) {
            (TxOutcome::Authorized, true) => Err(self.fail(
                "revocation stops access",
                format!("a request under revoked grant {grant} was authorised"),
            )),
            (TxOutcome::Authorized, false) => {
                // Sometimes the patient revokes between request and fetch.
                if self.rng.chance(25) {
                    let acting = self.patients[p].acting.clone();
                    let revoke = self.builder(&acting).revoke(grant);
                    if let Ok(rv) = self.submit(&revoke, self.hospitals[usual]).await {
                        self.patients[p].revoked = true;
                        self.count("revocations");
                        self.cluster
                            .reach(self.hospitals[usual], rv.height, Duration::from_secs(30))
                            .await;
                    }
                }
                let expect = self.referral_expectation(p);
                let served = self.fetch(requester, r.tx, usual, expect).await?;
                if served && self.config.faults.byzantine && self.rng.chance(40) {
                    self.replay_fetch(requester, r.tx, usual).await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The requester hospital's doctor fetches, through that hospital's node.
    async fn fetch_into(
        &self,
        requester: usize,
        request: TxHash,
        holder: usize,
        out: &Path,
    ) -> Result<FetchedRecords, SdkError> {
        fetch_records(
            &self.client(self.hospitals[requester]),
            &self.doctors[requester],
            request,
            self.hospital_ids[holder].clone(),
            out,
        )
        .await
    }

    /// What a fetch under the patient's referral grant should come to now.
    fn referral_expectation(&self, p: usize) -> Expect {
        if self.patients[p].revoked {
            Expect::Revoked
        } else {
            Expect::Deliver(1)
        }
    }

    /// The other hospital's doctor asks for the patient's lab reports under
    /// the referral grant; the requesting hospital's index and the signed request.
    fn referral_request(&self, p: usize) -> Result<(usize, SignedTransaction), Failure> {
        let (usual, grant) = (self.patients[p].usual, self.patients[p].grant);
        let requester = 1 - usual;
        let tx = self
            .builder(&self.doctors[requester])
            .access_request(
                grant,
                self.hospital_ids[usual].clone(),
                vec![Category::LabReports],
                Purpose::Referral,
            )
            .map_err(|e| self.setup_error(e))?;
        Ok((requester, tx))
    }

    /// Fetches through the requester's node and checks the outcome; true
    /// when records were delivered.
    async fn fetch(
        &mut self,
        requester: usize,
        request: TxHash,
        holder: usize,
        expect: Expect,
    ) -> Result<bool, Failure> {
        let out = self.out.join(format!("step-{}-{}", self.step_no, request));
        let tampering = self.tampering == Some(self.hospitals[holder]);
        let result = self.fetch_into(requester, request, holder, &out).await;
        let step = self.step_no;
        match (expect, result) {
            (Expect::Deliver(_), Err(e)) if tampering => {
                if !e.to_string().contains("tampered") {
                    return Err(self.fail(
                        "an altered transfer is detected",
                        format!("step {step}: the altered transfer failed otherwise: {e}"),
                    ));
                }
                if files_under(&out) > 0 {
                    return Err(self.fail(
                        "an altered transfer is detected",
                        format!(
                            "step {step}: records of an altered transfer were kept in {}",
                            out.display()
                        ),
                    ));
                }
                self.count("altered transfers detected");
                self.report.invariants.insert(
                    "a transfer altered by the holder is detected and nothing of it is kept",
                );
                Ok(false)
            }
            (Expect::Deliver(_), Ok(_)) if tampering => Err(self.fail(
                "an altered transfer is detected",
                format!("step {step}: records sent by a tampering holder were accepted"),
            )),
            (Expect::Deliver(n), Ok(fetched)) if fetched.items.len() == n => {
                self.report.fetches += 1;
                self.report
                    .invariants
                    .insert("every fetch under an active grant delivered its manifest");
                Ok(true)
            }
            (Expect::Deliver(n), Ok(fetched)) => Err(self.fail(
                "granted records arrive",
                format!(
                    "step {step}: {} resources instead of {n}",
                    fetched.items.len()
                ),
            )),
            (Expect::Deliver(_), Err(e)) => {
                Err(self.fail("granted records arrive", format!("step {step}: {e}")))
            }
            (Expect::Revoked, Ok(_)) => Err(self.fail(
                "a revocation stops every later release",
                format!("step {step}: request {request} was served after its grant was revoked"),
            )),
            (Expect::Revoked, Err(SdkError::Api { code, .. })) if code == "grant_not_active" => {
                self.report.refusals += 1;
                self.report
                    .invariants
                    .insert("every fetch after a revocation was refused");
                Ok(false)
            }
            (Expect::Revoked, Err(e)) => Err(self.fail(
                "a revocation stops every later release",
                format!("step {step}: refused for another reason: {e}"),
            )),
        }
    }

    /// A requester replays a request it was already served.
    async fn replay_fetch(
        &mut self,
        requester: usize,
        request: TxHash,
        holder: usize,
    ) -> Result<(), Failure> {
        let out = self.out.join(format!("replay-{request}"));
        match self.fetch_into(requester, request, holder, &out).await {
            Err(SdkError::Api { code, .. }) if code == "already_served" => {
                self.count("replayed fetches refused");
                self.report
                    .invariants
                    .insert("a replayed request is refused (already_served)");
                Ok(())
            }
            other => Err(self.fail(
                "a replayed request is refused",
                format!("request {request} fetched a second time: {other:?}"),
            )),
        }
    }

    /// A hospital doctor asks the patient for prescriptions; the patient
    /// (or their guardian or proxy) answers.
    async fn consent_request(&mut self, p: usize) -> Result<(), Failure> {
        let (usual, id, acting) = {
            let patient = &self.patients[p];
            (patient.usual, patient.id, patient.acting.clone())
        };
        let requester = 1 - usual;
        // Mostly the other hospital; sometimes the internet hospital or the
        // community health centre (follow-up care after a referral).
        let (asker, institution) = match self.rng.below(5) {
            k @ (0 | 1) if !self.clinics.is_empty() => self.clinics[k % self.clinics.len()].clone(),
            _ => (
                self.doctors[requester].clone(),
                self.hospital_ids[requester].clone(),
            ),
        };
        let terms = TermsBuilder::new(id, Grantee::Institution(institution))
            .category(Category::Prescriptions)
            .holders([self.hospital_ids[usual].clone()])
            .purpose(Purpose::Treatment)
            .days(30)
            .build()
            .map_err(|e| self.setup_error(e))?;
        let ask = self.builder(&asker).request_consent(terms);
        let Ok(asked) = self.submit(&ask, self.hospitals[requester]).await else {
            return Ok(());
        };
        if asked.outcome != TxOutcome::Applied {
            return Err(self.fail("consent requests reach the patient", format!("{asked:?}")));
        }
        let approve = self.rng.chance(70);
        let answer = self.builder(&acting).answer_consent(asked.tx, approve);
        if let Ok(answered) = self.submit(&answer, self.hospitals[usual]).await {
            if answered.outcome != TxOutcome::Applied {
                return Err(self.fail(
                    "consent requests reach the patient",
                    format!("the answer was not applied: {answered:?}"),
                ));
            }
            self.count(if approve {
                "consent requests approved"
            } else {
                "consent requests refused"
            });
        }
        Ok(())
    }

    /// A doctor of the other hospital breaks the glass, and fetches.
    async fn emergency(&mut self, p: usize) -> Result<(), Failure> {
        let (usual, id) = (self.patients[p].usual, self.patients[p].id);
        let requester = 1 - usual;
        let tx = self.builder(&self.doctors[requester]).emergency_access(
            id,
            self.hospital_ids[usual].clone(),
            BoundedVec::new(vec![Category::LabReports, Category::Prescriptions])
                .unwrap_or_default(),
            EmergencyReason::PatientUnconscious,
        );
        if let Ok(r) = self.submit(&tx, self.hospitals[requester]).await
            && r.outcome == TxOutcome::Authorized
        {
            self.emergencies += 1;
            self.count("emergency accesses");
            self.fetch(requester, r.tx, usual, Expect::Deliver(2))
                .await?;
        }
        Ok(())
    }

    /// The CDC reports a case (recorded on the ledger; the CDC runs no node
    /// in this consortium, so nothing is fetched).
    async fn public_health_report(&mut self, p: usize) -> Result<(), Failure> {
        let (usual, id) = (self.patients[p].usual, self.patients[p].id);
        let case = tagged_hash(
            b"medledger/sim-case",
            &[
                &self.config.seed.to_be_bytes(),
                &(self.step_no as u64).to_be_bytes(),
            ],
        );
        let tx = self.builder(&self.cdc).sign(Payload::PublicHealthAccess {
            patient: id,
            holder: self.hospital_ids[usual].clone(),
            categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
            legal_basis: LegalBasis::InfectiousDiseaseReporting,
            case_hash: case,
        });
        let via = self.hospitals[self.rng.below(2)];
        match self.submit(&tx, via).await {
            Ok(r) if r.outcome == TxOutcome::Authorized => {
                self.public_health += 1;
                self.count("public-health accesses");
                Ok(())
            }
            Ok(r) => Err(self.fail(
                "lawful public-health access is authorised",
                format!("{r:?}"),
            )),
            Err(_) => Ok(()),
        }
    }

    /// The patient revokes at one node while the doctor asks at another:
    /// whichever the ledger ordered first wins, the same on every node, and
    /// the fetch after both is refused.
    async fn race(&mut self, p: usize) -> Result<(), Failure> {
        if self.patients[p].revoked {
            return self.revoke_or_regrant(p).await;
        }
        let (usual, grant, acting) = {
            let patient = &self.patients[p];
            (patient.usual, patient.grant, patient.acting.clone())
        };
        let revoke = self.builder(&acting).revoke(grant);
        let (requester, ask) = self.referral_request(p)?;
        let (patient_node, doctor_node) = (
            self.client(self.hospitals[usual]),
            self.client(self.hospitals[requester]),
        );
        let (revoked, asked) = tokio::join!(
            submit_recorded(&patient_node, &revoke, &self.ledger, self.started, false),
            submit_recorded(&doctor_node, &ask, &self.ledger, self.started, false),
        );
        let (Ok(revoked), Ok(asked)) = (revoked, asked) else {
            return Ok(());
        };
        self.patients[p].revoked = true;
        self.count("revocations racing a request");
        let node = self.hospitals[usual];
        let request_first =
            self.ledger_order(node, &asked).await < self.ledger_order(node, &revoked).await;
        match (&asked.outcome, request_first) {
            (TxOutcome::Authorized, false) => {
                return Err(self.fail(
                    "revocation stops access",
                    format!(
                        "request {} ordered after revocation {} was authorised",
                        asked.tx, revoked.tx
                    ),
                ));
            }
            (TxOutcome::Denied(_), true) => {
                return Err(self.fail(
                    "conflicting transactions resolve in ledger order",
                    format!(
                        "request {} ordered before revocation {} was denied",
                        asked.tx, revoked.tx
                    ),
                ));
            }
            _ => {}
        }
        self.report
            .invariants
            .insert("a revocation racing a request at another node resolves in ledger order");
        if asked.outcome == TxOutcome::Authorized {
            self.cluster
                .reach(
                    self.hospitals[usual],
                    revoked.height,
                    Duration::from_secs(30),
                )
                .await;
            self.fetch(requester, asked.tx, usual, Expect::Revoked)
                .await?;
        }
        Ok(())
    }

    /// Where a committed transaction sits: (height, position in its block).
    async fn ledger_order(&self, node: usize, receipt: &TxReceipt) -> (u64, usize) {
        self.cluster
            .reach(node, receipt.height, Duration::from_secs(30))
            .await;
        let position = self
            .block_ids(node, receipt.height)
            .await
            .iter()
            .position(|id| *id == receipt.tx.0.to_hex());
        (receipt.height, position.unwrap_or(usize::MAX))
    }

    /// The ids of a block's transactions, as node `node` has them.
    async fn block_ids(&self, node: usize, height: u64) -> Vec<String> {
        self.cluster.clients[node]
            .get(&format!("/v1/blocks/{height}/transactions"))
            .await
            .ok()
            .and_then(|v| {
                v["transactions"].as_array().map(|list| {
                    list.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// One signed request sent to both hospitals' nodes at once: committed once.
    async fn twice(&mut self, p: usize) -> Result<(), Failure> {
        let usual = self.patients[p].usual;
        let (requester, ask) = self.referral_request(p)?;
        let (a, b) = (
            self.client(self.hospitals[0]),
            self.client(self.hospitals[1]),
        );
        let (first, second) = tokio::join!(
            submit_recorded(&a, &ask, &self.ledger, self.started, false),
            a_second_copy(&b, &ask),
        );
        let id = ask.transaction.id(&self.cluster.chain);
        let receipt = match (first, second) {
            (Ok(r), _) | (_, Ok(Some(r))) => r,
            _ => return Ok(()),
        };
        // Exactly once: in one block, once (asked of a node that has that block).
        let node = self.hospitals[requester];
        self.cluster
            .reach(node, receipt.height, Duration::from_secs(30))
            .await;
        let hex = id.0.to_hex();
        let times = self
            .block_ids(node, receipt.height)
            .await
            .iter()
            .filter(|t| **t == hex)
            .count();
        if times != 1 {
            return Err(self.fail(
                "a transaction sent twice is committed once",
                format!("{id} appears {times} times in block {}", receipt.height),
            ));
        }
        self.count("transactions sent to two nodes");
        self.report
            .invariants
            .insert("a transaction sent to two nodes at once is committed once");
        if receipt.outcome == TxOutcome::Authorized {
            let expect = self.referral_expectation(p);
            self.fetch(requester, receipt.tx, usual, expect).await?;
        }
        Ok(())
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

    /// After the workload: the two-two split, catching up, agreement,
    /// durability, the auditor's replay, and the report.
    async fn finish(mut self) -> Result<Report, Failure> {
        self.cluster.partition(&[]);
        for i in 0..self.cluster.nodes.len() {
            if !self.cluster.running(i) {
                if let Some(disk) = &self.cluster.disk
                    && disk.node == i
                {
                    let _ = disk.free();
                }
                self.cluster.start(i).map_err(|e| self.setup_error(e))?;
            }
        }
        if self.config.faults.partition {
            self.split_and_heal().await?;
        }
        let (acknowledged, commits) = self.ledger.snapshot();
        let last = acknowledged.iter().map(|(_, h)| *h).max().unwrap_or(0);
        for i in 0..self.cluster.nodes.len() {
            if !self.cluster.reach(i, last, Duration::from_secs(60)).await {
                return Err(self.fail(
                    "progress after healing",
                    format!(
                        "{} did not reach height {last} within 60 s: {}",
                        self.cluster.nodes[i].institution,
                        self.cluster.describe().await
                    ),
                ));
            }
        }
        // Every height again, now on every node (some lagged during the run).
        let liar = self.liar.clone();
        let mut whole = ChainCheck::default();
        whole
            .check(self.config, &self.cluster, last, true, liar.as_deref())
            .await?;
        self.report.invariants.extend([
            "all nodes agree on every committed header, during the run and at the end",
            "block times strictly increase and the audit log never shrinks",
        ]);
        if let Some(liar) = &self.liar {
            let proposed = whole.proposers.get(liar).copied().unwrap_or(0);
            if proposed > 0 {
                return Err(self.fail(
                    "no invalid block is committed",
                    format!("{liar} proposed {proposed} committed blocks"),
                ));
            }
            self.report
                .invariants
                .insert("no block from the validator that lies about state roots was committed");
        }
        for (tx, height) in &acknowledged {
            for (i, c) in self.cluster.clients.iter().enumerate() {
                let receipt = c
                    .receipt(tx)
                    .await
                    .map_err(|e| fail(self.config, "durability", e.to_string()))?;
                if receipt.as_ref().map(|r| r.height) != Some(*height) {
                    return Err(self.fail(
                        "durability",
                        format!(
                            "{} lacks acknowledged transaction {tx} of height {height}",
                            self.cluster.nodes[i].institution
                        ),
                    ));
                }
            }
        }
        self.report
            .invariants
            .insert("nothing acknowledged as committed was lost");
        self.audit().await?;
        self.report.commits = commits;
        self.report.height = self.cluster.height(self.hospitals[1]).await.unwrap_or(0);
        for (traffic, bytes) in self.cluster.bytes() {
            self.report.bytes.insert(traffic.name(), bytes);
        }
        self.report.seconds = self.started.elapsed().as_secs_f64();
        Ok(self.report)
    }

    /// A two-two split leaves no quorum; once healed, blocks must come again.
    async fn split_and_heal(&mut self) -> Result<(), Failure> {
        let all: Vec<usize> = (0..self.cluster.nodes.len()).collect();
        let (left, right) = all.split_at(all.len() / 2);
        self.cluster.partition(&[left, right]);
        self.note_fault("split two-two".into());
        let watch = self.hospitals[1];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let split_at = self.cluster.height(watch).await.unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let during = self.cluster.height(watch).await.unwrap_or(0);
        if during > split_at + 1 {
            return Err(self.fail(
                "no commit without a quorum",
                format!("heights {split_at} → {during} during a two-two split"),
            ));
        }
        self.cluster.partition(&[]);
        self.note_fault("healed".into());
        let healed = Instant::now();
        if !self
            .cluster
            .reach(watch, during + 2, Duration::from_secs(HEAL_BOUND_SECS))
            .await
        {
            return Err(self.fail(
                "progress after healing",
                format!(
                    "no new block within {HEAL_BOUND_SECS} s of healing a two-two split: {}",
                    self.cluster.describe().await
                ),
            ));
        }
        self.note_fault(format!(
            "blocks again {:.1} s after healing",
            healed.elapsed().as_secs_f64()
        ));
        self.report.invariants.insert(
            "no block commits during a two-two split; after healing, blocks come again within the bound",
        );
        Ok(())
    }

    /// The health commission's replay from genesis, and what it must (not) find.
    async fn audit(&mut self) -> Result<(), Failure> {
        let reports = self.cluster.dir().join("audit");
        let output = Command::new(&self.config.binary)
            .args(["audit", "replay", "--genesis"])
            .arg(self.cluster.dir().join("genesis.json"))
            .args(["--from", &self.cluster.nodes[0].http, "--key"])
            .arg(
                self.cluster
                    .dir()
                    .join("keys")
                    .join("admin.health-commission.json"),
            )
            .args(["--as-institution", "health-commission", "--report"])
            .arg(&reports)
            .output()
            .map_err(|e| self.setup_error(e))?;
        if !output.status.success() {
            return Err(self.fail(
                "audit replay",
                String::from_utf8_lossy(&output.stderr).to_string(),
            ));
        }
        let anomalies = read_json(self.config, &reports.join("anomalies.json"))?;
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
                return Err(self.fail(
                    invariant,
                    format!("the audit found {key}: {}", anomalies[key]),
                ));
            }
        }
        let summary = read_json(self.config, &reports.join("summary.json"))?;
        let counted = |name: &str| summary["counts"][name].as_u64().unwrap_or(0);
        for (name, made, invariant) in [
            (
                "emergency accesses",
                self.emergencies,
                "every emergency access is flagged",
            ),
            (
                "public-health accesses",
                self.public_health,
                "every public-health access is recorded",
            ),
        ] {
            if usize::try_from(counted(name)).unwrap_or(0) != made {
                return Err(self.fail(
                    invariant,
                    format!("made {made}, the audit counts {}", counted(name)),
                ));
            }
            self.report.invariants.insert(invariant);
        }
        self.report.invariants.extend([
            "the auditor's replay from genesis passes",
            "every release rests on an authorised request",
            "a revocation stops every later release",
        ]);
        Ok(())
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
    (0..cluster.nodes.len())
        .filter(|i| !HOSPITALS.contains(&cluster.nodes[*i].institution.as_str()))
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

/// Links a hospital record number to a patient in the gateway's links file.
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
                let key = KeyFile::from_secret(SecretKey::from_seed(
                    tagged_hash(
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
