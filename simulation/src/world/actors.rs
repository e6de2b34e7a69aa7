//! What the region's people do each step: revoke and grant again, referrals
//! with fetches through the gateway, consent requests, emergencies, the
//! CDC's reports, and under the Byzantine profile replays, races and a
//! transaction sent twice.

use super::*;

impl World<'_> {
    pub(super) async fn revoke_or_regrant(&mut self, p: usize) -> Result<(), Failure> {
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
    pub(super) async fn referral(&mut self, p: usize) -> Result<(), Failure> {
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
    pub(super) async fn fetch_into(
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
    pub(super) fn referral_expectation(&self, p: usize) -> Expect {
        if self.patients[p].revoked {
            Expect::Revoked
        } else {
            Expect::Deliver(1)
        }
    }

    /// The other hospital's doctor asks for the patient's lab reports under
    /// the referral grant; the requesting hospital's index and the signed request.
    pub(super) fn referral_request(&self, p: usize) -> Result<(usize, SignedTransaction), Failure> {
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
    pub(super) async fn fetch(
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
    pub(super) async fn replay_fetch(
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
    pub(super) async fn consent_request(&mut self, p: usize) -> Result<(), Failure> {
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
    pub(super) async fn emergency(&mut self, p: usize) -> Result<(), Failure> {
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

    /// The CDC reports a case (recorded on the ledger; nothing is fetched:
    /// the CDC's node, when a run of seven or more validators has one,
    /// holds no records).
    pub(super) async fn public_health_report(&mut self, p: usize) -> Result<(), Failure> {
        let (usual, id) = (self.patients[p].usual, self.patients[p].id);
        let case = self.cluster.chain.hash().tagged_hash(
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
    pub(super) async fn race(&mut self, p: usize) -> Result<(), Failure> {
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
            (TxOutcome::Denied { .. }, true) => {
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
    pub(super) async fn ledger_order(&self, node: usize, receipt: &TxReceipt) -> (u64, usize) {
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
    pub(super) async fn block_ids(&self, node: usize, height: u64) -> Vec<String> {
        self.cluster.clients[node]
            .get_as::<medledger_client_sdk::api::BlockTransactions>(&format!(
                "/v1/blocks/{height}/transactions"
            ))
            .await
            .map(|b| b.transactions.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    /// One signed request sent to both hospitals' nodes at once: committed once.
    pub(super) async fn twice(&mut self, p: usize) -> Result<(), Failure> {
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
        let id = ask.id(&self.cluster.chain);
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
}
