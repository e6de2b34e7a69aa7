//! The test harness shared by the multi-node tests. A real consortium: `medledger node` processes on 127.0.0.1 ports chosen
//! free, driven over HTTP. Each test makes its own testnet in a temporary
//! directory, bounds every wait, and kills its nodes when done. The tests
//! take turns (a lock) so that at most four nodes share the machine's cores.

// Each test binary uses part of the harness.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medledger_client_sdk::KeyFile;
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::ChainId;
use serde_json::{Value, json};

pub static ONE_TESTNET_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const BIN: &str = env!("CARGO_BIN_EXE_medledger");
pub const CHAIN: &str = "medledger-test";

pub struct Testnet {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<(String, PathBuf, String)>,
    pub children: Vec<Option<Child>>,
    pub http: reqwest::Client,
}

impl Testnet {
    pub fn new(validators: usize) -> Self {
        Self::with_observers(validators, 0)
    }

    pub fn with_observers(validators: usize, observers: usize) -> Self {
        Self::layout(validators, observers, 0)
    }

    pub fn layout(validators: usize, observers: usize, spares: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new(BIN)
            .args([
                "testnet",
                "--init-only",
                "--chain-id",
                CHAIN,
                "--validators",
            ])
            .arg(validators.to_string())
            .arg("--observers")
            .arg(observers.to_string())
            .arg("--spares")
            .arg(spares.to_string())
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "testnet --init-only failed");
        let layout: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("testnet.json")).unwrap(),
        )
        .unwrap();
        let nodes: Vec<(String, PathBuf, String)> = layout["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["institution"].as_str().unwrap().to_string(),
                    PathBuf::from(n["home"].as_str().unwrap()),
                    n["http"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let children = nodes.iter().map(|_| None).collect();
        Self {
            dir,
            nodes,
            children,
            // No idle connections kept: a test that sends an oversized body
            // gets its 413 before the body is read, and the server then drops
            // that connection; a pooled copy reused for the next request
            // failed it now and then with `IncompleteMessage`.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(35))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    pub fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    pub fn start_with(&mut self, i: usize, env: &[(&str, &str)]) {
        let home = &self.nodes[i].1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))
            .unwrap();
        let child = Command::new(BIN)
            .args(["node", "run", "--home"])
            .arg(home)
            .env("RUST_LOG", "warn,medledger=info,medledger_consensus=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// Sets a key of a node's config.toml (`section.key`).
    pub fn configure(&self, i: usize, section: &str, key: &str, value: &str) {
        let path = self.nodes[i].1.join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        let mut current = String::new();
        for line in text.lines() {
            if line.starts_with('[') {
                current = line.trim_matches(|c| c == '[' || c == ']').to_string();
            }
            if current == section && line.starts_with(&format!("{key} =")) {
                out.push_str(&format!("{key} = {value}\n"));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(path, out).unwrap();
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{}", self.nodes[i].2, path)
    }

    pub async fn get(&self, i: usize, path: &str) -> Option<(u16, Value)> {
        let response = self.http.get(self.url(i, path)).send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// Node `i`'s Prometheus text.
    pub async fn metrics(&self, i: usize) -> String {
        self.http
            .get(self.url(i, "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn height(&self, i: usize) -> Option<u64> {
        self.get(i, "/v1/status").await?.1["height"].as_u64()
    }

    /// Waits until node `i` has committed `height`; fails the test with the
    /// node's height and every node's log tail if it does not within `secs`.
    pub async fn reach(&self, i: usize, height: u64, secs: u64, what: &str) {
        if !self
            .wait_for_height(i, height, Duration::from_secs(secs))
            .await
        {
            panic!(
                "{what}: node {i} did not reach height {height} within {secs} s (at {:?})\n{}",
                self.height(i).await,
                self.logs()
            );
        }
    }

    pub async fn wait_for_height(&self, i: usize, height: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.height(i).await.is_some_and(|h| h >= height) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn header_hash(&self, i: usize, height: u64) -> Option<String> {
        let (status, body) = self.get(i, &format!("/v1/headers/{height}")).await?;
        (status == 200).then(|| body["hash"].as_str().unwrap().to_string())
    }

    pub async fn header(&self, i: usize, height: u64) -> Value {
        self.get(i, &format!("/v1/headers/{height}"))
            .await
            .unwrap()
            .1
    }

    pub async fn submit_raw(&self, i: usize, body: String) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(i, "/v1/tx"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn submit(&self, i: usize, tx: &SignedTransaction, wait: bool) -> (u16, Value) {
        let body = json!({"transaction": hex::encode(tx.to_bytes()), "wait": wait});
        self.submit_raw(i, body.to_string()).await
    }

    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (name, home, _) in &self.nodes {
            let log = std::fs::read_to_string(home.join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- {name}\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

pub fn chain() -> ChainId {
    ChainId::new(CHAIN).unwrap()
}

/// A new patient's registration, signed by a fresh key.
pub fn register_patient(nonce: u64) -> SignedTransaction {
    let key = KeyFile::generate().unwrap();
    Transaction {
        signer: Signer::Patient(key.patient_id()),
        nonce,
        payload: Payload::RegisterPatient,
    }
    .sign(&chain(), key.secret())
}

/// Every node that is up has the same header at every height up to `height`.
pub async fn assert_agree(net: &Testnet, nodes: &[usize], height: u64) {
    for h in 1..=height {
        let first = net.header_hash(nodes[0], h).await;
        assert!(
            first.is_some(),
            "node {} lacks height {h}\n{}",
            nodes[0],
            net.logs()
        );
        for &i in &nodes[1..] {
            assert_eq!(
                net.header_hash(i, h).await,
                first,
                "node {i} differs at height {h}\n{}",
                net.logs()
            );
        }
    }
}

pub async fn min_height(net: &Testnet, nodes: &[usize]) -> u64 {
    let mut min = u64::MAX;
    for &i in nodes {
        min = min.min(net.height(i).await.unwrap_or(0));
    }
    min
}

/// The testnet's genesis, validated.
pub fn genesis(net: &Testnet) -> medledger_genesis::Genesis {
    medledger_genesis::GenesisFile::read(&net.dir().join("genesis.json"))
        .unwrap()
        .validate()
        .unwrap()
}

/// A light client of node `i`, trusting only the genesis file.
pub fn light_client(
    net: &Testnet,
    i: usize,
    max_age: Duration,
) -> medledger_client_sdk::LightClient {
    let genesis = genesis(net);
    let client =
        medledger_client_sdk::Client::new(&net.nodes[i].2, genesis.chain_id.clone()).unwrap();
    medledger_client_sdk::LightClient::new(client, &genesis, max_age).unwrap()
}

/// A key of the testnet's keys directory, by label (`practitioner:dr-first-1`, `admin:health-commission`…).
pub fn testnet_key(net: &Testnet, label: &str) -> KeyFile {
    KeyFile::load(
        &net.dir()
            .join("keys")
            .join(format!("{}.json", label.replacen(':', ".", 1))),
    )
    .unwrap()
}
