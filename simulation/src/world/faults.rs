//! Faults applied to the consortium: outages begun and ended (kill,
//! partition, full disk), nodes restarted with a fault switched on, and the
//! final split and heal.

use super::*;

impl World<'_> {
    pub(super) async fn begin(&mut self, outage: Outage) -> Result<(), Failure> {
        match outage {
            Outage::Kill(node) => {
                self.cluster.kill(node);
                let name = self.cluster.nodes()[node].institution.clone();
                self.note_fault(format!("SIGKILL {name}"));
            }
            Outage::Cut(node) => {
                let rest: Vec<usize> = (0..self.cluster.nodes().len())
                    .filter(|n| *n != node)
                    .collect();
                self.cluster.partition(&[&[node], &rest]);
                let name = self.cluster.nodes()[node].institution.clone();
                self.note_fault(format!("{name} cut off"));
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
        let name = match outage {
            Outage::Kill(n) | Outage::Cut(n) | Outage::FullDisk(n) | Outage::Tamper(n) => {
                self.cluster.nodes()[n].institution.clone()
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

    /// A two-two split leaves no quorum; once healed, blocks must come again.
    pub(super) async fn split_and_heal(&mut self) -> Result<(), Failure> {
        let all: Vec<usize> = (0..self.cluster.nodes().len()).collect();
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
}
