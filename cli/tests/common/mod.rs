//! The test harness shared by the multi-node tests. A real consortium: `medledger node` processes on 127.0.0.1 ports chosen
//! free, driven over HTTP. Each test makes its own testnet in a temporary
//! directory, bounds every wait, and kills its nodes when done. The tests
//! take turns (a lock) so that at most four nodes share the machine's cores.

// Each test binary uses part of the harness.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use medledger_client_sdk::KeyFile;
use medledger_contracts::crypto::CryptoSuite;
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer, Transaction};
use medledger_contracts::types::{Chain, ChainId};
use medledger_testnet::{Consortium, NODE_LOG_FILTER, TestnetNode};
use serde_json::{Value, json};

pub static ONE_TESTNET_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const BIN: &str = env!("CARGO_BIN_EXE_medledger");
pub const CHAIN: &str = "medledger-test";

pub struct Testnet {
    // Declared before `dir`: the processes are killed before their
    // directory is removed.
    processes: Consortium,
    pub dir: tempfile::TempDir,
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
        Self::with_window(
            validators,
            observers,
            spares,
            medledger_testnet::TX_VALIDITY_WINDOW_MS,
        )
    }

    /// A testnet whose genesis has another transaction validity window (R1).
    pub fn with_window(
        validators: usize,
        observers: usize,
        spares: usize,
        tx_validity_window_ms: u64,
    ) -> Self {
        Self::laid_out(
            CryptoSuite::Ed25519Sha256,
            validators,
            observers,
            spares,
            tx_validity_window_ms,
        )
    }

    /// A testnet of `validators` on `suite`.
    pub fn on(suite: CryptoSuite, validators: usize) -> Self {
        Self::laid_out(
            suite,
            validators,
            0,
            0,
            medledger_testnet::TX_VALIDITY_WINDOW_MS,
        )
    }

    fn laid_out(
        suite: CryptoSuite,
        validators: usize,
        observers: usize,
        spares: usize,
        tx_validity_window_ms: u64,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = medledger_testnet::init_on(
            suite,
            dir.path(),
            validators,
            observers,
            spares,
            CHAIN,
            tx_validity_window_ms,
        )
        .unwrap();
        Self {
            processes: Consortium::new(BIN, layout).log_filter(NODE_LOG_FILTER),
            dir,
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

    /// The nodes, in `testnet.json` order (the harness's layout: one copy).
    pub fn nodes(&self) -> &[TestnetNode] {
        self.processes.nodes()
    }

    pub fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// Starts node `i` with extra environment (faults, clock offsets).
    pub fn start_with(&mut self, i: usize, env: &[(&str, &str)]) {
        *self.processes.env_mut(i) = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.processes.start(i).unwrap();
    }

    /// Sets a key of a node's config.toml (`section.key`).
    pub fn configure(&self, i: usize, section: &str, key: &str, value: &str) {
        let path = self.nodes()[i].home.join("config.toml");
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
        for i in 0..self.nodes().len() {
            self.start(i);
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        self.processes.kill(i);
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        format!("{}{}", self.nodes()[i].http, path)
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
        for node in self.nodes() {
            let (name, home) = (&node.institution, &node.home);
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

/// The testnet's chain (`medledger testnet` lays out an `ed25519-sha256` one).
pub fn chain() -> Chain {
    Chain::new(ChainId::new(CHAIN).unwrap(), CryptoSuite::Ed25519Sha256)
}

/// A `valid_until` for a transaction signed now: half the testnet's
/// validity window ahead (R1), as the SDK gives.
pub fn valid_until() -> medledger_contracts::types::Timestamp {
    medledger_contracts::types::Timestamp(
        medledger_node::clock::now().0 + medledger_testnet::TX_VALIDITY_WINDOW_MS / 2,
    )
}

/// Runs `medledger <command…> --node <node i's API> --genesis … --key <key>
/// --json <args…>`: a person's command against a live node.
pub fn run_cli(
    net: &Testnet,
    i: usize,
    command: &[&str],
    key: &Path,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(command)
        .args(["--node", &net.nodes()[i].http, "--genesis"])
        .arg(net.dir().join("genesis.json"))
        .arg("--key")
        .arg(key)
        .arg("--json")
        .args(args)
        .output()
        .unwrap()
}

/// `medledger <args> --json` against node 0 with `key` (the connection
/// flags go after the first word, the command's group).
pub fn cli(net: &Testnet, key: &Path, args: &[&str]) -> std::process::Output {
    run_cli(net, 0, &args[..1], key, &args[1..])
}

/// [`cli`], which must succeed: the JSON document it printed.
pub fn cli_json(net: &Testnet, key: &Path, args: &[&str]) -> Value {
    let output = cli(net, key, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A new patient's registration, signed by a fresh key.
pub fn register_patient(nonce: u64) -> SignedTransaction {
    let key = KeyFile::generate().unwrap();
    Transaction {
        signer: Signer::Patient(key.patient_id()),
        nonce,
        valid_until: valid_until(),
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
    let client = medledger_client_sdk::Client::new(&net.nodes()[i].http, genesis.chain()).unwrap();
    medledger_client_sdk::LightClient::new(client, &genesis, max_age).unwrap()
}

/// A key of the testnet's keys directory, by label (`practitioner:dr-first-1`, `admin:health-commission`…).
pub fn testnet_key(net: &Testnet, label: &str) -> KeyFile {
    medledger_testnet::load_key(net.dir(), label).unwrap()
}

/// The health commission's auditor replays node `i` over its API
/// (`medledger audit replay --from`), and the replay passes.
pub fn assert_replay_over_api_passes(net: &Testnet, i: usize) {
    let output = std::process::Command::new(BIN)
        .args(["audit", "replay", "--genesis"])
        .arg(net.dir().join("genesis.json"))
        .args(["--from", &net.nodes()[i].http, "--key"])
        .arg(net.dir().join("keys").join("admin.health-commission.json"))
        .args(["--as-institution", "health-commission"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("replay passed"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
