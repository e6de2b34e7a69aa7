//! The hostile member (`--faults hostile`): the second hospital uses its
//! own admin, node and practitioner keys to try, during the run, what a
//! review playing one hostile member found it could do (issue 16). Each
//! attempt and its outcome go into the report; an attempt that succeeds
//! fails the run under the invariant it broke.

use std::time::{Duration, Instant};

use medledger_client_sdk::records::open_fetch;
use medledger_client_sdk::{Identity, KeyFile, SdkError, TxOutcome};
use medledger_contracts::encoding::BoundedVec;
use medledger_contracts::transaction::{Payload, guardianship_consent_message};
use medledger_contracts::types::{Category, EmergencyReason, ReviewFinding};

use super::{Kind, World};
use crate::report::Failure;

/// The hostile institution: the second hospital (its index in `hospitals`).
const HOSTILE: usize = 1;

/// How long a patient's revocation may take to commit while the hostile
/// member floods every node with registrations of new keys.
const REVOCATION_UNDER_FLOOD_SECS: u64 = 30;

/// Registrations of fresh keys in one flood.
const FLOOD_KEYS: usize = 300;

/// What the hostile member tries.
#[derive(Clone, Copy, Debug)]
enum Attack {
    /// Records an adult as its minor, with a consent signed by a key of its own.
    Guardianship,
    /// Breaks the glass and reviews its own emergency access as justified.
    SelfReview,
    /// Replays a read a patient signed for its node at the other hospital's.
    ReplayRead,
    /// Downloads whole blocks with its admin key.
    Archive,
    /// Fetches and stops after the manifest, hoping no release is recorded.
    HideRelease,
    /// Floods every node with new keys while a patient revokes.
    Flood,
}

const ATTACKS: [Attack; 6] = [
    Attack::Guardianship,
    Attack::SelfReview,
    Attack::ReplayRead,
    Attack::Archive,
    Attack::HideRelease,
    Attack::Flood,
];

impl Attack {
    fn name(self) -> &'static str {
        match self {
            Attack::Guardianship => "guardianship over an adult, consent forged",
            Attack::SelfReview => "break the glass and review it itself",
            Attack::ReplayRead => "replay a patient's signed read at another node",
            Attack::Archive => "download whole blocks with an admin key",
            Attack::HideRelease => "fetch, stop after the manifest, leave no release",
            Attack::Flood => "flood new keys while a patient revokes",
        }
    }
}

/// Whether a node answered the attempt with a refusal (a 4xx), rather than
/// not answering it at all.
fn refused_by_node(e: &SdkError) -> bool {
    matches!(e, SdkError::Api { status, .. } if (400..500).contains(status))
}

impl World<'_> {
    /// One hostile attempt (the attacks in turn); its outcome is reported.
    pub(super) async fn hostile(&mut self, p: usize) -> Result<(), Failure> {
        let attack = ATTACKS[self.hostile_next % ATTACKS.len()];
        let outcome = match attack {
            Attack::Guardianship => self.forge_guardianship(p).await?,
            Attack::SelfReview => self.self_review(p).await?,
            Attack::ReplayRead => self.replay_read(p).await?,
            Attack::Archive => self.download_archive().await?,
            Attack::HideRelease => self.hide_release(p).await?,
            Attack::Flood => self.flood_during_revocation(p).await?,
        };
        // An attack that could not be tried now is tried again next time.
        let Some(outcome) = outcome else {
            return Ok(());
        };
        self.hostile_next += 1;
        let step = self.step_no;
        self.report.hostile.push((step, attack.name(), outcome));
        self.count("hostile attempts");
        Ok(())
    }

    /// Tries every attack not yet tried this run, so each is tried at
    /// least once (a few times over, if one finds no fitting patient or a
    /// node down); what is still untried is reported as such.
    pub(super) async fn hostile_sweep(&mut self) -> Result<(), Failure> {
        for _ in 0..3 * ATTACKS.len() {
            if self.hostile_next >= ATTACKS.len() {
                return Ok(());
            }
            let p = self.rng.below(self.patients.len());
            self.hostile(p).await?;
        }
        for attack in &ATTACKS[self.hostile_next.min(ATTACKS.len())..] {
            let step = self.step_no;
            self.report.hostile.push((
                step,
                attack.name(),
                "not tried: no fitting patient, or a node it needs was down".into(),
            ));
        }
        Ok(())
    }

    fn hostile_admin(&self) -> Result<Identity, Failure> {
        let id = self.hospital_ids[HOSTILE].clone();
        let key = self
            .cluster
            .key(&format!("admin.{}", id.as_str()))
            .map_err(|e| self.setup_error(e))?;
        Ok(Identity::institution(id, &key))
    }

    /// An adult patient near `p`, if any.
    fn adult_near(&self, p: usize) -> Option<usize> {
        (0..self.patients.len())
            .map(|i| (p + i) % self.patients.len())
            .find(|i| self.patients[*i].kind == Kind::Adult)
    }

    async fn forge_guardianship(&mut self, p: usize) -> Result<Option<String>, Failure> {
        let Some(p) = self.adult_near(p) else {
            return Ok(None);
        };
        let admin = self.hostile_admin()?;
        // A guardian of its own choosing, registered like anyone.
        let guardian =
            KeyFile::generate_for(self.cluster.chain.suite).map_err(|e| self.setup_error(e))?;
        let via = self.hospitals[HOSTILE];
        if self
            .submit(
                &self
                    .builder(&Identity::patient(&guardian))
                    .register_patient(),
                via,
            )
            .await
            .is_err()
        {
            return Ok(None);
        }
        let patient = self.patients[p].id;
        let minor_until = medledger_client_sdk::client::now().plus_days(10 * 365);
        let evidence_hash = self
            .cluster
            .chain
            .hash()
            .tagged_hash(b"sim-forged-evidence", &[&patient.0.0]);
        // The "consent" is signed by a key the hospital holds, not the patient's.
        let forger =
            KeyFile::generate_for(self.cluster.chain.suite).map_err(|e| self.setup_error(e))?;
        let patient_consent = forger.secret().sign(&guardianship_consent_message(
            &self.cluster.chain,
            &admin.signer,
            &patient,
            &guardian.patient_id(),
            minor_until,
            &evidence_hash,
        ));
        let tx = self.builder(&admin).sign(Payload::RecordGuardianship {
            patient,
            guardian: guardian.patient_id(),
            minor_until,
            evidence_hash,
            patient_consent,
        });
        match self.submit(&tx, via).await {
            Ok(r) if r.outcome == TxOutcome::Applied => Err(self.fail(
                "no member takes a patient's consent",
                format!("the hostile hospital made adult patient {patient} its minor: {r:?}"),
            )),
            Ok(r) => {
                self.report
                    .invariants
                    .insert("no member takes a patient's consent (guardianship)");
                Ok(Some(format!("refused on the ledger: {:?}", r.outcome)))
            }
            Err(e) if refused_by_node(&e) => {
                self.report
                    .invariants
                    .insert("no member takes a patient's consent (guardianship)");
                Ok(Some(format!("refused at admission: {e}")))
            }
            // Not an answer about the attempt (a node down, say).
            Err(_) => Ok(None),
        }
    }

    async fn self_review(&mut self, p: usize) -> Result<Option<String>, Failure> {
        // A patient whose records the other hospital holds.
        let Some(p) = (0..self.patients.len())
            .map(|i| (p + i) % self.patients.len())
            .find(|i| self.patients[*i].usual != HOSTILE)
        else {
            return Ok(None);
        };
        let (usual, id) = (self.patients[p].usual, self.patients[p].id);
        let via = self.hospitals[HOSTILE];
        let glass = self.builder(&self.doctors[HOSTILE]).emergency_access(
            id,
            self.hospital_ids[usual].clone(),
            BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
            EmergencyReason::PatientUnconscious,
        );
        let Ok(access) = self.submit(&glass, via).await else {
            return Ok(None);
        };
        if access.outcome != TxOutcome::Authorized {
            return Ok(None);
        }
        self.emergencies += 1;
        self.count("emergency accesses");
        let review = self
            .builder(&self.hostile_admin()?)
            .sign(Payload::EmergencyReview {
                access: access.tx,
                finding: ReviewFinding::Justified,
                record_hash: self
                    .cluster
                    .chain
                    .hash()
                    .tagged_hash(b"sim-self-review", &[&access.tx.0.0]),
            });
        match self.submit(&review, via).await {
            Ok(r) if r.outcome == TxOutcome::Applied => Err(self.fail(
                "an emergency access is reviewed by a regulator, never its requester",
                format!(
                    "the hostile hospital cleared its own emergency access {}",
                    access.tx
                ),
            )),
            Err(e) if !refused_by_node(&e) => Ok(None),
            other => {
                self.report
                    .invariants
                    .insert("an emergency access is reviewed by a regulator, never its requester");
                Ok(Some(match other {
                    Ok(r) => format!("review refused on the ledger: {:?}", r.outcome),
                    Err(e) => format!("review refused at admission: {e}"),
                }))
            }
        }
    }

    async fn replay_read(&mut self, p: usize) -> Result<Option<String>, Failure> {
        let Some(p) = self.adult_near(p) else {
            return Ok(None);
        };
        let reader = self.patients[p].acting.clone();
        let path = format!(
            "/v1/patients/{}/history?limit=1",
            self.patients[p].id.0.to_hex()
        );
        let hostile_node = self.hospitals[HOSTILE];
        let other_node = self.hospitals[1 - HOSTILE];
        if !(self.cluster.running(hostile_node) && self.cluster.running(other_node)) {
            return Ok(None);
        }
        // The patient reads through the hostile hospital's node, which keeps
        // the signed request and replays it at the other hospital's node.
        let Ok(header) = self.cluster.clients[hostile_node]
            .authorization(&reader, "GET", &path, b"")
            .await
        else {
            return Ok(None);
        };
        let http = reqwest::Client::new();
        let send = |node: usize| {
            http.get(format!("{}{path}", self.cluster.nodes()[node].http))
                .header("authorization", header.clone())
                .timeout(Duration::from_secs(10))
                .send()
        };
        let Ok(honest) = send(hostile_node).await else {
            return Ok(None);
        };
        if !honest.status().is_success() {
            return Ok(None);
        }
        let replayed = match send(other_node).await {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        let status = replayed.status().as_u16();
        let code = replayed
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        if status != 401 || code != "wrong_node" {
            return Err(self.fail(
                "a signed read is valid at one node only",
                format!("a read replayed at another node got {status} {code}"),
            ));
        }
        self.report
            .invariants
            .insert("a signed read is valid at one node only");
        Ok(Some(format!("replay refused: {status} {code}")))
    }

    async fn download_archive(&mut self) -> Result<Option<String>, Failure> {
        let admin = self.hostile_admin()?;
        let via = self.hospitals[HOSTILE];
        if !self.cluster.running(via) {
            return Ok(None);
        }
        match self.cluster.clients[via]
            .get_signed("/v1/archive/1", &admin)
            .await
        {
            Ok(_) => Err(self.fail(
                "whole blocks go to member nodes and regulators only",
                "the hostile hospital's admin downloaded block 1",
            )),
            Err(SdkError::Api { status, code, .. }) if status == 403 && code == "forbidden" => {
                self.report
                    .invariants
                    .insert("whole blocks go to member nodes and regulators only");
                Ok(Some(format!("refused: {status} {code}")))
            }
            Err(_) => Ok(None),
        }
    }

    async fn hide_release(&mut self, p: usize) -> Result<Option<String>, Failure> {
        // A patient of the other hospital who granted the hostile one.
        let Some(p) = (0..self.patients.len())
            .map(|i| (p + i) % self.patients.len())
            .find(|i| self.patients[*i].usual != HOSTILE && !self.patients[*i].revoked)
        else {
            return Ok(None);
        };
        let (requester, tx) = self.referral_request(p)?;
        debug_assert_eq!(requester, HOSTILE);
        let Ok(asked) = self.submit(&tx, self.hospitals[HOSTILE]).await else {
            return Ok(None);
        };
        if asked.outcome != TxOutcome::Authorized {
            return Ok(None);
        }
        self.count("access requests");
        let client = self.client(self.hospitals[HOSTILE]);
        let holder = self.hospital_ids[self.patients[p].usual].clone();
        let opened = open_fetch(&client, &self.doctors[HOSTILE], asked.tx, holder).await;
        let Ok((_, manifest, frames)) = opened else {
            return Ok(None);
        };
        // It takes the manifest and walks away.
        drop(frames);
        let deadline = Instant::now() + Duration::from_secs(30);
        let path = format!("/v1/accesses/{}", asked.tx.0.to_hex());
        loop {
            let access = client.get_signed(&path, &self.doctors[HOSTILE]).await;
            if let Ok(access) = access
                && let Some(height) = access["release"]["height"].as_u64()
            {
                self.report
                    .invariants
                    .insert("no release goes unrecorded (recorded before any content)");
                return Ok(Some(format!(
                    "release of {} resources recorded at height {height} before any content",
                    manifest.items.len()
                )));
            }
            if Instant::now() > deadline {
                return Err(self.fail(
                    "no release goes unrecorded",
                    format!(
                        "request {} got its manifest and no release was recorded within 30 s",
                        asked.tx
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn flood_during_revocation(&mut self, p: usize) -> Result<Option<String>, Failure> {
        // A patient with a grant left to revoke.
        let Some(p) = (0..self.patients.len())
            .map(|i| (p + i) % self.patients.len())
            .find(|i| !self.patients[*i].revoked)
        else {
            return Ok(None);
        };
        let keys: Vec<KeyFile> = (0..FLOOD_KEYS)
            .filter_map(|_| KeyFile::generate_for(self.cluster.chain.suite).ok())
            .collect();
        let flood: Vec<_> = keys
            .iter()
            .map(|k| self.builder(&Identity::patient(k)).register_patient())
            .collect();
        let (acting, grant, usual) = {
            let patient = &self.patients[p];
            (patient.acting.clone(), patient.grant, patient.usual)
        };
        let revoke = self.builder(&acting).revoke(grant);
        let patient_node = self.client(self.hospitals[usual]);
        let flood_nodes: Vec<_> = (0..self.cluster.nodes().len())
            .filter(|n| self.cluster.running(*n))
            .map(|n| self.cluster.clients[n].clone())
            .collect();
        let started = Instant::now();
        let flooding = async {
            let mut accepted = 0usize;
            for client in &flood_nodes {
                for batch in flood.chunks(100) {
                    if let Ok(results) = client.submit_many(batch).await {
                        accepted += results.iter().filter(|r| r.is_ok()).count();
                    }
                }
            }
            accepted
        };
        let revoking = tokio::time::timeout(
            Duration::from_secs(REVOCATION_UNDER_FLOOD_SECS),
            patient_node.submit_and_wait(&revoke, None),
        );
        let (accepted, revoked) = tokio::join!(flooding, revoking);
        let took = started.elapsed();
        match revoked {
            Ok(Ok(r)) if r.outcome == TxOutcome::Applied => {
                self.patients[p].revoked = true;
                self.count("revocations");
                self.report
                    .invariants
                    .insert("a revocation commits while a member floods new keys");
                Ok(Some(format!(
                    "revocation committed in {} ms while {accepted} of {} flood transactions were taken",
                    took.as_millis(),
                    flood.len() * flood_nodes.len()
                )))
            }
            Ok(Ok(r)) => Ok(Some(format!("revocation not applied: {:?}", r.outcome))),
            // A node briefly out (another fault) answers no receipt: not the flood's doing.
            Ok(Err(SdkError::Http(_))) => Ok(None),
            Ok(Err(e)) => Err(self.fail(
                "a revocation commits while a member floods new keys",
                format!("the revocation was refused under the flood: {e}"),
            )),
            Err(_) => Err(self.fail(
                "a revocation commits while a member floods new keys",
                format!(
                    "the revocation did not commit within {REVOCATION_UNDER_FLOOD_SECS} s under the flood"
                ),
            )),
        }
    }
}
