//! The invariants checked at the end of a run: progress after healing,
//! chains that agree with no invalid block, durability of acknowledged
//! commits, and the auditor's replay from genesis with its findings (every
//! release rests on an authorised request, a revocation stops later ones…).

use super::*;

impl World<'_> {
    /// After the workload: the minority split and the split without a
    /// quorum, catching up, agreement,
    /// durability, the auditor's replay, and the report.
    pub(super) async fn finish(mut self) -> Result<Report, Failure> {
        self.cluster.partition(&[]);
        for i in 0..self.cluster.nodes().len() {
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
            self.minority_split_and_heal().await?;
            self.split_and_heal().await?;
        }
        let (acknowledged, commits) = self.ledger.snapshot();
        let last = acknowledged.iter().map(|(_, h)| *h).max().unwrap_or(0);
        for i in 0..self.cluster.nodes().len() {
            if !self.cluster.reach(i, last, Duration::from_secs(60)).await {
                return Err(self.fail(
                    "progress after healing",
                    format!(
                        "{} did not reach height {last} within 60 s: {}",
                        self.cluster.nodes()[i].institution,
                        self.cluster.describe().await
                    ),
                ));
            }
        }
        // Every height again, now on every node (some lagged during the run).
        let liars = self.liars.clone();
        let mut whole = ChainCheck::default();
        whole
            .check(self.config, &self.cluster, last, true, &liars)
            .await?;
        self.report.invariants.extend([
            "all nodes agree on every committed header, during the run and at the end",
            "block times strictly increase and the audit log never shrinks",
        ]);
        if !self.liars.is_empty() {
            for liar in &self.liars {
                let proposed = whole.proposers.get(liar).copied().unwrap_or(0);
                if proposed > 0 {
                    return Err(self.fail(
                        "no invalid block is committed",
                        format!("{liar} proposed {proposed} committed blocks"),
                    ));
                }
            }
            self.report
                .invariants
                .insert("no block from a validator that lies about state roots was committed");
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
                            self.cluster.nodes()[i].institution
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

    /// The health commission's replay from genesis, and what it must (not) find.
    pub(super) async fn audit(&mut self) -> Result<(), Failure> {
        let reports = self.cluster.dir().join("audit");
        let output = Command::new(&self.config.binary)
            .args(["audit", "replay", "--genesis"])
            .arg(self.cluster.dir().join("genesis.json"))
            .args(["--from", &self.cluster.nodes()[0].http, "--key"])
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
