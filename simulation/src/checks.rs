//! Invariants checked while the run goes on: every acknowledged commit stays
//! committed, and every node's chain agrees block by block.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use medledger_client_sdk::{Client, SdkError, TxReceipt};
use medledger_contracts::types::TxHash;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::config::SimConfig;
use crate::report::{Commit, Failure, fail};

/// Commits acknowledged to anyone (the scripted workload and the background load).
#[derive(Clone, Default)]
pub struct Ledger(Arc<Mutex<Acked>>);

/// What [`Ledger`] holds.
#[derive(Default)]
pub struct Acked {
    /// Every acknowledged transaction and its height.
    pub transactions: Vec<(TxHash, u64)>,
    /// How each was seen.
    pub commits: Vec<Commit>,
}

impl Ledger {
    /// Records an acknowledged commit.
    pub fn record(&self, receipt: &TxReceipt, started: Instant, sent: Instant, background: bool) {
        let ms = medledger_contracts::types::millis;
        if let Ok(mut acked) = self.0.lock() {
            acked.transactions.push((receipt.tx, receipt.height));
            acked.commits.push(Commit {
                at_ms: ms(started.elapsed()),
                latency_ms: ms(sent.elapsed()),
                background,
            });
        }
    }

    /// A copy of what was acknowledged.
    pub fn snapshot(&self) -> (Vec<(TxHash, u64)>, Vec<Commit>) {
        self.0
            .lock()
            .map(|a| (a.transactions.clone(), a.commits.clone()))
            .unwrap_or_default()
    }
}

/// Submits and waits, recording the commit.
pub async fn submit_recorded(
    client: &Client,
    tx: &medledger_contracts::transaction::SignedTransaction,
    ledger: &Ledger,
    started: Instant,
    background: bool,
) -> Result<TxReceipt, SdkError> {
    let sent = Instant::now();
    let receipt = client.submit_and_wait(tx, None).await;
    if let Ok(r) = &receipt {
        ledger.record(r, started, sent, background);
    }
    receipt
}

/// Header checks across nodes, during the run and at its end.
#[derive(Default)]
pub struct ChainCheck {
    /// Heights compared so far on every node that had them.
    pub checked_upto: u64,
    last: Option<(String, u64, u64)>,
    /// Blocks by proposer.
    pub proposers: BTreeMap<String, u64>,
}

impl ChainCheck {
    /// Compares the headers of heights `checked_upto+1 ..= upto` on every
    /// node that has them: one hash per height, each linked to the previous,
    /// times strictly increasing, the audit log never shrinking, and no block
    /// proposed by one of `liars`.
    pub async fn check(
        &mut self,
        config: &SimConfig,
        cluster: &Cluster,
        upto: u64,
        require_all: bool,
        liars: &[String],
    ) -> Result<(), Failure> {
        let mut heights = Vec::new();
        for i in 0..cluster.nodes().len() {
            heights.push(cluster.height(i).await.unwrap_or(0));
        }
        for h in self.checked_upto + 1..=upto {
            let mut seen: BTreeMap<String, Value> = BTreeMap::new();
            for (i, client) in cluster.clients.iter().enumerate() {
                if heights[i] < h {
                    if require_all {
                        return Err(fail(
                            config,
                            "agreement",
                            format!(
                                "{} has not committed height {h}",
                                cluster.nodes()[i].institution
                            ),
                        ));
                    }
                    continue;
                }
                match client.get(&format!("/v1/headers/{h}")).await {
                    Ok(header) => {
                        seen.insert(cluster.nodes()[i].institution.clone(), header);
                    }
                    Err(e) if require_all => {
                        return Err(fail(config, "agreement", e.to_string()));
                    }
                    Err(_) => {}
                }
            }
            let Some(header) = seen.values().next().cloned() else {
                // Nobody answered for this height now; come back to it.
                return Ok(());
            };
            let hashes: BTreeSet<&str> = seen
                .values()
                .map(|v| v["hash"].as_str().unwrap_or_default())
                .collect();
            if hashes.len() != 1 {
                let by: BTreeMap<_, _> = seen.iter().map(|(k, v)| (k, &v["hash"])).collect();
                return Err(fail(
                    config,
                    "agreement",
                    format!("nodes differ at height {h}: {by:?}"),
                ));
            }
            let hash = header["hash"].as_str().unwrap_or_default().to_string();
            let time = header["time_ms"].as_u64().unwrap_or(0);
            let audit = header["audit_size"].as_u64().unwrap_or(0);
            let proposer = header["proposer"].as_str().unwrap_or_default().to_string();
            if let Some((previous, previous_time, previous_audit)) = &self.last {
                if header["previous_hash"].as_str() != Some(previous.as_str()) {
                    return Err(fail(
                        config,
                        "agreement",
                        format!("height {h} does not link to the block before it"),
                    ));
                }
                if time <= *previous_time {
                    return Err(fail(
                        config,
                        "block times increase",
                        format!("height {h} has time {time} ≤ {previous_time}"),
                    ));
                }
                if audit < *previous_audit {
                    return Err(fail(
                        config,
                        "the audit log only grows",
                        format!("audit size {previous_audit} → {audit} at height {h}"),
                    ));
                }
            }
            if liars.contains(&proposer) {
                return Err(fail(
                    config,
                    "no invalid block is committed",
                    format!("height {h} was proposed by {proposer}, which lies about state roots"),
                ));
            }
            *self.proposers.entry(proposer).or_insert(0) += 1;
            self.last = Some((hash, time, audit));
            self.checked_upto = h;
        }
        Ok(())
    }
}
