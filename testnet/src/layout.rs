//! The layout of a local testnet: genesis, keys and one home directory per
//! node under one directory, described by `testnet.json`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use medledger_client_sdk::KeyFile;
use medledger_contracts::types::Timestamp;
use serde::{Deserialize, Serialize};

use medledger_client_sdk::keys::example_consortium_on;
use medledger_contracts::crypto::CryptoSuite;
use medledger_genesis::InstitutionEntry;
use medledger_node::config::{self, NodeConfig};

/// One node of a local testnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetNode {
    /// The institution it belongs to.
    pub institution: String,
    /// Its home directory.
    pub home: PathBuf,
    /// Its HTTP API.
    pub http: String,
    /// Its libp2p address, with peer id.
    pub p2p: String,
    /// Its records gateway's address, with peer id.
    #[serde(default)]
    pub gateway: String,
    /// Whether it votes (at genesis).
    pub validator: bool,
    /// Whether its institution is in genesis; a spare is not a member until
    /// admitted by governance.
    #[serde(default = "yes")]
    pub member: bool,
}

fn yes() -> bool {
    true
}

/// `testnet.json`: what `medledger testnet` made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestnetLayout {
    /// Chain id.
    pub chain_id: String,
    /// The nodes.
    pub nodes: Vec<TestnetNode>,
}

/// The chain (id and crypto suite) of the testnet laid out in `dir`, from
/// its `genesis.json`.
pub fn chain_of(dir: &Path) -> anyhow::Result<medledger_contracts::types::Chain> {
    let path = dir.join("genesis.json");
    Ok(medledger_genesis::GenesisFile::read(&path)
        .and_then(|file| file.validate())
        .with_context(|| format!("reading {}", path.display()))?
        .chain())
}

fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    // Hold every listener until all ports are chosen so none repeats.
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("choosing free ports on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Nodes a local testnet may run (validators and observers; each takes
/// three ports and a few tens of MiB).
pub const NODES_MAX: usize = 64;

/// The id of the `k`-th generated institution (1-based), added when a
/// testnet asks for more nodes than the example consortium has members.
pub fn district_hospital_id(k: usize) -> String {
    format!("district-hospital-{k:02}")
}

/// A local testnet's transaction validity window (genesis
/// `tx_validity_window_ms`, R1): a minute, where a real consortium's is hours,
/// so that committed ids leaving the state can be watched; the SDK's default
/// lifetime (half a minute) fits it.
pub const TX_VALIDITY_WINDOW_MS: u64 = 60_000;

/// Creates genesis, keys and one home directory per node under `dir`: the
/// example consortium with fresh keys, plus generated district hospitals
/// when `validators + observers` exceeds its seven members.
pub fn init(
    dir: &Path,
    validators: usize,
    observers: usize,
    spares: usize,
    chain_id: &str,
) -> anyhow::Result<TestnetLayout> {
    init_with_window(
        dir,
        validators,
        observers,
        spares,
        chain_id,
        TX_VALIDITY_WINDOW_MS,
    )
}

/// [`init`] with another transaction validity window (a bench that signs
/// its transactions a minute before it sends them needs a longer one, a
/// test that watches ids leave the state a shorter one).
pub fn init_with_window(
    dir: &Path,
    validators: usize,
    observers: usize,
    spares: usize,
    chain_id: &str,
    tx_validity_window_ms: u64,
) -> anyhow::Result<TestnetLayout> {
    init_on(
        CryptoSuite::Ed25519Sha256,
        dir,
        validators,
        observers,
        spares,
        chain_id,
        tx_validity_window_ms,
    )
}

/// [`init_with_window`] on `suite`, every key of that suite's scheme (and
/// on `sm2-sm3` an Ed25519 transport key per node, its network identity).
pub fn init_on(
    suite: CryptoSuite,
    dir: &Path,
    validators: usize,
    observers: usize,
    spares: usize,
    chain_id: &str,
    tx_validity_window_ms: u64,
) -> anyhow::Result<TestnetLayout> {
    if dir.join("testnet.json").exists() {
        bail!("{} already holds a testnet", dir.display());
    }
    if validators == 0 {
        bail!("--validators must be at least 1");
    }
    if validators + observers > NODES_MAX {
        bail!("--validators plus --observers must be at most {NODES_MAX}");
    }
    let (mut file, mut keys) = example_consortium_on(suite, chain_id, false)?;
    // Beyond the example's seven members, district hospitals with fresh
    // keys, so that larger consortiums (a province runs 20 to 30
    // validators) can be rehearsed and measured.
    for k in 1..=(validators + observers).saturating_sub(file.institutions.len()) {
        let id = district_hospital_id(k);
        let admin = KeyFile::generate_for(suite)?;
        let node = KeyFile::generate_for(suite)?;
        let transport = suite
            .has_transport_keys()
            .then(|| KeyFile::generate_for(CryptoSuite::Ed25519Sha256))
            .transpose()?;
        file.institutions.push(InstitutionEntry {
            id: id.clone(),
            name: format!("区医院 District Hospital {k}"),
            kind: "hospital".into(),
            parent: None,
            // Fictional, shaped like the example's: 18 characters whose
            // third to eighth are the region.
            legal_code: format!("123301084700{k:05}H"),
            region_code: "330108".into(),
            licence_ref: format!("PDY-330108-{k:04}"),
            admin_key: admin.public_key().to_text(),
            node_key: node.public_key().to_text(),
            voting_power: 0,
            transport_key: transport.as_ref().map(|k| k.public_key().to_text()),
        });
        keys.insert(format!("admin:{id}"), admin);
        keys.insert(format!("node:{id}"), node);
        if let Some(transport) = transport {
            keys.insert(format!("transport:{id}"), transport);
        }
    }
    // Validators first (the example's own validators before the rest), then observers.
    file.institutions
        .sort_by_key(|i| (i.voting_power == 0, i.id != "city-first-hospital"));
    for (index, institution) in file.institutions.iter_mut().enumerate() {
        institution.voting_power = u64::from(index < validators);
    }
    // Every node is on this machine: a proposal arrives in milliseconds, so
    // the propose timeout only has to cover building and checking a block.
    // Blocks of at most 4,000 transactions are built and checked in well
    // under a second here. Measured with `medledger bench`: 2,000 left the
    // cores busy with per-block work (about 4,500 tx/s), 4,000 committed
    // about 5,000, and 8,000 made full blocks miss the timeout and retry.
    // Beyond four validators the nodes share this machine's cores, and a
    // block takes each of them longer to check in wall-clock time: the
    // timeouts grow with every four validators (measured with `medledger
    // bench --validators 25`: with the four-validator timeouts most heights
    // needed three or more rounds, the proposal arriving after they ran out).
    let share = u64::try_from(validators.div_ceil(4)).unwrap_or(u64::MAX);
    file.consensus.propose_timeout_ms = 1_000u64.saturating_mul(share);
    file.consensus.prevote_timeout_ms = 300u64.saturating_mul(share);
    file.consensus.precommit_timeout_ms = 300u64.saturating_mul(share);
    file.consensus.block_transactions_max = 4_000;
    // A local testnet rehearses the control-change delay (R4.2, R4.3; 72 h in
    // the example genesis) in seconds, so a recovery can be tried end to end.
    file.parameters.control_change_delay_ms = 5_000;
    file.parameters.tx_validity_window_ms = tx_validity_window_ms;
    file.genesis_time_ms = Timestamp::from_system_time(SystemTime::now()).0;
    anyhow::ensure!(
        file.genesis_time_ms > 0,
        "the system clock reads before 1970"
    );
    // The example's licences run five years from its genesis; a testnet's
    // from its own.
    for licence in &mut file.licences {
        licence.valid_from_ms = file.genesis_time_ms;
        licence.valid_until_ms = file
            .genesis_time_ms
            .saturating_add(medledger_genesis::example::EXAMPLE_LICENCE_VALIDITY_MS);
    }
    file.validate()
        .context("the testnet genesis does not validate")?;

    // Spares: institutions outside genesis, with keys, a home and an address,
    // to rehearse admission by governance.
    let spare_ids: Vec<String> = (1..=spares).map(|k| format!("new-hospital-{k}")).collect();
    for id in &spare_ids {
        keys.insert(format!("admin:{id}"), KeyFile::generate_for(suite)?);
        keys.insert(format!("node:{id}"), KeyFile::generate_for(suite)?);
        if suite.has_transport_keys() {
            keys.insert(
                format!("transport:{id}"),
                KeyFile::generate_for(CryptoSuite::Ed25519Sha256)?,
            );
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_dir = dir.join("keys");
    std::fs::create_dir_all(&key_dir)?;
    std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o700))?;
    for (label, key) in &keys {
        key.save(&key_path(dir, label))?;
    }
    let genesis_json = file.to_json();
    std::fs::write(dir.join("genesis.json"), &genesis_json)?;

    let running: Vec<(String, bool, bool)> = file
        .institutions
        .iter()
        .take(validators + observers)
        .map(|i| (i.id.clone(), i.voting_power > 0, true))
        .chain(spare_ids.iter().map(|id| (id.clone(), false, false)))
        .collect();
    let ports = free_ports(running.len() * 3)?;
    let mut nodes = Vec::new();
    for (index, (id, validator, member)) in running.iter().enumerate() {
        let transport_label = if suite.has_transport_keys() {
            format!("transport:{id}")
        } else {
            format!("node:{id}")
        };
        let transport = keys
            .get(&transport_label)
            .context("a transport identity for every institution")?;
        let peer_id =
            medledger_consensus::peer_id_of(transport.secret()).map_err(|e| anyhow::anyhow!(e))?;
        let (http, p2p, gateway) = (ports[3 * index], ports[3 * index + 1], ports[3 * index + 2]);
        nodes.push(TestnetNode {
            institution: id.clone(),
            home: dir.join(id),
            http: format!("http://127.0.0.1:{http}"),
            p2p: format!("/ip4/127.0.0.1/tcp/{p2p}/p2p/{peer_id}"),
            gateway: format!("/ip4/127.0.0.1/tcp/{gateway}/p2p/{peer_id}"),
            validator: *validator,
            member: *member,
        });
    }
    for node in &nodes {
        std::fs::create_dir_all(&node.home)?;
        std::fs::set_permissions(&node.home, std::fs::Permissions::from_mode(0o700))?;
        std::fs::write(node.home.join("genesis.json"), &genesis_json)?;
        let key = keys
            .get(&format!("node:{}", node.institution))
            .context("node key")?;
        KeyFile::from_secret(key.secret().clone()).save(&node.home.join("node-key.json"))?;
        if suite.has_transport_keys() {
            let transport = keys
                .get(&format!("transport:{}", node.institution))
                .context("transport key")?;
            KeyFile::from_secret(transport.secret().clone())
                .save(&node.home.join("transport-key.json"))?;
        }
        let others: Vec<&TestnetNode> = nodes
            .iter()
            .filter(|n| n.institution != node.institution)
            .collect();
        let config = NodeConfig {
            institution: node.institution.clone(),
            p2p: config::P2p {
                listen: node
                    .p2p
                    .split("/p2p/")
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                peers: others.iter().map(|n| n.p2p.clone()).collect(),
            },
            http: config::Http {
                listen: node.http.trim_start_matches("http://").to_string(),
                ..config::Http::default()
            },
            mempool: config::Mempool {
                gossip_to: others.iter().map(|n| n.http.clone()).collect(),
                ..config::Mempool::default()
            },
            gateway: config::Gateway {
                listen: node
                    .gateway
                    .split("/p2p/")
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                records_dir: "records".into(),
                peers: others
                    .iter()
                    .map(|n| (n.institution.clone(), n.gateway.clone()))
                    .collect(),
                ..config::Gateway::default()
            },
            ..NodeConfig::default()
        };
        std::fs::write(node.home.join("config.toml"), config.to_commented_toml())?;
    }
    let layout = TestnetLayout {
        chain_id: chain_id.to_string(),
        nodes,
    };
    std::fs::write(
        dir.join("testnet.json"),
        serde_json::to_string_pretty(&layout)?,
    )?;
    Ok(layout)
}

/// Where [`init`] saved the key labelled `label` (`practitioner:dr-first-1`,
/// `admin:health-commission`, `node:city-first-hospital`…).
pub fn key_path(dir: &Path, label: &str) -> PathBuf {
    dir.join("keys")
        .join(format!("{}.json", label.replacen(':', ".", 1)))
}

/// Loads the key labelled `label` of the testnet in `dir`.
pub fn load_key(dir: &Path, label: &str) -> anyhow::Result<KeyFile> {
    Ok(KeyFile::load(&key_path(dir, label))?)
}

impl TestnetLayout {
    /// The index of an institution's node.
    pub fn index(&self, institution: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.institution == institution)
    }
}

/// Reads a testnet made by [`init`].
pub fn load(dir: &Path) -> anyhow::Result<TestnetLayout> {
    let path = dir.join("testnet.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a testnet layout", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_consortiums_get_district_hospitals_that_validate() {
        let dir = tempfile::tempdir().unwrap();
        let layout = init(dir.path(), 10, 2, 1, "medledger-test-ten").unwrap();
        // Ten validators and two observers run; the spare waits outside genesis.
        assert_eq!(layout.nodes.len(), 13);
        assert_eq!(layout.nodes.iter().filter(|n| n.validator).count(), 10);
        assert_eq!(layout.nodes[0].institution, "city-first-hospital");
        let file = medledger_genesis::GenesisFile::read(&dir.path().join("genesis.json")).unwrap();
        // Ten validators share the cores of one machine: three times the
        // four-validator timeouts.
        assert_eq!(file.consensus.propose_timeout_ms, 3_000);
        assert_eq!(file.consensus.prevote_timeout_ms, 900);
        let genesis = file.validate().unwrap();
        assert_eq!(genesis.validators().count(), 10);
        assert_eq!(genesis.fault_tolerance(), 3);
        // 7 example members + 5 generated = 12 running members.
        for k in 1..=5 {
            let id = district_hospital_id(k);
            assert!(layout.index(&id).is_some(), "{id}");
            assert!(load_key(dir.path(), &format!("node:{id}")).is_ok());
        }
        assert!(layout.index(&district_hospital_id(6)).is_none());
        let mut addresses: Vec<&str> = layout
            .nodes
            .iter()
            .flat_map(|n| [n.http.as_str(), n.p2p.as_str(), n.gateway.as_str()])
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        assert_eq!(addresses.len(), 3 * 13, "every node has its own ports");
    }

    #[test]
    fn more_nodes_than_the_bound_are_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let error = init(dir.path(), NODES_MAX, 1, 0, "medledger-test").unwrap_err();
        assert!(error.to_string().contains("at most"), "{error}");
        assert!(!dir.path().join("testnet.json").exists());
    }
}
