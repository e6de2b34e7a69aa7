//! Faults applied to the consortium: outages begun and ended (kill,
//! partition, full disk), nodes restarted with a fault switched on, and the
//! final splits (a minority of f, then halves) and heals.

use super::*;

impl World<'_> {
    /// The institutions of some nodes, for the report.
    fn names(&self, nodes: &[usize]) -> String {
        nodes
            .iter()
            .map(|n| self.cluster.nodes()[*n].institution.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) async fn begin(&mut self, outage: Outage) -> Result<(), Failure> {
        match outage {
            Outage::Kill(nodes) => {
                for node in &nodes {
                    self.cluster.kill(*node);
                }
                let names = self.names(&nodes);
                self.note_fault(format!("SIGKILL {names}"));
            }
            Outage::Cut(nodes) => {
                // Each cut node alone: they reach neither the rest nor each other.
                let rest: Vec<usize> = (0..self.cluster.nodes().len())
                    .filter(|n| !nodes.contains(n))
                    .collect();
                let mut groups: Vec<&[usize]> = nodes.iter().map(std::slice::from_ref).collect();
                groups.push(&rest);
                self.cluster.partition(&groups);
                let names = self.names(&nodes);
                self.note_fault(format!("{names} cut off"));
            }
            Outage::FullDisk(node) => self.fill_disk(node).await?,
            Outage::Tamper(node) => {
                self.restart_with(node, Some("tamper-chunk")).await?;
                self.tampering = Some(node);
                let name = self.cluster.nodes()[node].institution.clone();
                self.note_fault(format!("{name} restarted as a holder that alters records"));
            }
        }
        Ok(())
    }

    pub(super) async fn end(&mut self, outage: Outage) -> Result<(), Failure> {
        let name = match &outage {
            Outage::Kill(nodes) | Outage::Cut(nodes) => self.names(nodes),
            Outage::FullDisk(n) | Outage::Tamper(n) => self.cluster.nodes()[*n].institution.clone(),
        };
        match outage {
            Outage::Kill(nodes) => {
                for node in nodes {
                    self.cluster.start(node).map_err(|e| self.setup_error(e))?;
                }
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
    pub(super) async fn fill_disk(&mut self, node: usize) -> Result<(), Failure> {
        let name = self.cluster.nodes()[node].institution.clone();
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
    pub(super) async fn restart_with(
        &mut self,
        node: usize,
        fault: Option<&str>,
    ) -> Result<(), Failure> {
        self.cluster.kill(node);
        let env = self.cluster.env_mut(node);
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
                    self.cluster.nodes()[node].institution,
                    self.cluster.describe().await
                ),
            ));
        }
        Ok(())
    }

    /// The highest height any of `nodes` has committed.
    async fn highest(&self, nodes: &[usize]) -> u64 {
        let mut highest = 0;
        for node in nodes {
            highest = highest.max(self.cluster.height(*node).await.unwrap_or(0));
        }
        highest
    }

    /// f validators split off together: the rest (both hospitals among
    /// them) still hold a quorum and must go on committing, while the
    /// minority must not; then healed.
    pub(super) async fn minority_split_and_heal(&mut self) -> Result<(), Failure> {
        let f = self.config.fault_budget();
        // The last f validators that are not hospitals: no draw from the
        // seed, so the runs before this fault existed keep their sequence.
        let minority: Vec<usize> = not_hospitals(&self.cluster)
            .into_iter()
            .rev()
            .take(f)
            .collect();
        let majority: Vec<usize> = (0..self.cluster.nodes().len())
            .filter(|n| !minority.contains(n))
            .collect();
        self.cluster.partition(&[&minority, &majority]);
        let names = self.names(&minority);
        self.note_fault(format!("split off {names} (a minority of {f})"));
        let watch = self.hospitals[1];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let minority_at = self.highest(&minority).await;
        let majority_at = self.cluster.height(watch).await.unwrap_or(0);
        if !self
            .cluster
            .reach(watch, majority_at + 2, self.config.heal_bound())
            .await
        {
            return Err(self.fail(
                "a quorum goes on without a minority",
                format!(
                    "no two blocks within {} s with {names} split off: {}",
                    self.config.heal_bound().as_secs(),
                    self.cluster.describe().await
                ),
            ));
        }
        let minority_now = self.highest(&minority).await;
        if minority_now > minority_at + 1 {
            return Err(self.fail(
                "no commit without a quorum",
                format!("the minority {names} went from height {minority_at} to {minority_now} on its own"),
            ));
        }
        self.cluster.partition(&[]);
        self.note_fault("healed".into());
        self.report.invariants.insert(
            "with f validators split off, the rest go on committing and the f commit nothing",
        );
        Ok(())
    }

    /// A split into two halves leaves neither a quorum; once healed, blocks
    /// must come again.
    pub(super) async fn split_and_heal(&mut self) -> Result<(), Failure> {
        let all: Vec<usize> = (0..self.cluster.nodes().len()).collect();
        let (left, right) = all.split_at(all.len() / 2);
        self.cluster.partition(&[left, right]);
        self.note_fault(format!(
            "split into halves of {} and {}",
            left.len(),
            right.len()
        ));
        let watch = self.hospitals[1];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let split_at = [self.highest(left).await, self.highest(right).await];
        tokio::time::sleep(Duration::from_secs(3)).await;
        let during = [self.highest(left).await, self.highest(right).await];
        for (at, now) in split_at.iter().zip(&during) {
            if *now > at + 1 {
                return Err(self.fail(
                    "no commit without a quorum",
                    format!("heights {at} → {now} on one side of a split into halves"),
                ));
            }
        }
        self.cluster.partition(&[]);
        self.note_fault("healed".into());
        let healed = Instant::now();
        let target = during[0].max(during[1]) + 2;
        if !self
            .cluster
            .reach(watch, target, self.config.heal_bound())
            .await
        {
            return Err(self.fail(
                "progress after healing",
                format!(
                    "no new block within {} s of healing a split into halves: {}",
                    self.config.heal_bound().as_secs(),
                    self.cluster.describe().await
                ),
            ));
        }
        self.note_fault(format!(
            "blocks again {:.1} s after healing",
            healed.elapsed().as_secs_f64()
        ));
        self.report.invariants.insert(
            "no block commits while split into halves; after healing, blocks come again within the bound",
        );
        Ok(())
    }
}
