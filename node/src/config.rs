//! A node's configuration file (`config.toml` in its home directory).
//! Every key has a default; unknown keys are refused so a typo is not
//! silently ignored.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// Largest config file read.
const CONFIG_BYTES_MAX: u64 = 256 * 1024;

/// The whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The institution this node belongs to (its id in genesis).
    pub institution: String,
    /// The genesis file, relative to the home directory.
    pub genesis_file: PathBuf,
    /// The node key file (a medledger key file, mode 0600), relative to home.
    pub node_key_file: PathBuf,
    /// The transport key file (Ed25519: the node's libp2p identity),
    /// relative to home; read only on a chain whose nodes have one
    /// (`sm2-sm3`), where the node key (SM2) cannot be that identity.
    pub transport_key_file: PathBuf,
    /// Where RocksDB and the consensus WAL live, relative to home.
    pub data_dir: PathBuf,
    /// How the ledger store compresses its files: `none`, `lz4` or `zstd`
    /// (this node's choice; files of every codec stay readable).
    pub storage_compression: String,
    /// The node refuses to start, and stops, when the data directory's
    /// volume has less than this many MiB free (before the store runs out mid-write).
    pub min_free_disk_mb: u64,
    /// Peer-to-peer settings.
    pub p2p: P2p,
    /// HTTP API settings.
    pub http: Http,
    /// Mempool bounds and gossip.
    pub mempool: Mempool,
    /// This node's own consensus behaviour (timeouts are in genesis).
    pub consensus: Consensus,
    /// The records gateway.
    pub gateway: Gateway,
}

/// The records gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    /// libp2p listen address of the gateway (empty: no gateway).
    pub listen: String,
    /// This institution's records (a `DirectorySource`), relative to home;
    /// with a FHIR server, only its `patient-links.json` is used.
    pub records_dir: PathBuf,
    /// Base URL of the hospital's FHIR R4 server (empty: records come from
    /// `records_dir`).
    pub fhir_base: String,
    /// The identifier system under which that server knows the hospital's
    /// record numbers (`Patient?identifier=<system>|<record number>`).
    pub fhir_identifier_system: String,
    /// Other members' gateways: institution id → `/ip4/HOST/tcp/PORT/p2p/PEER_ID`.
    pub peers: std::collections::BTreeMap<String, String>,
}

/// Node-local consensus behaviour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Consensus {
    /// How long this node, as proposer, waits for transactions before
    /// proposing an empty block, in ms (capped at half the propose timeout).
    pub empty_block_wait_ms: u64,
    /// Least time between this node's commit of a block and its next
    /// proposal while transactions wait, in ms: batches transactions into
    /// fewer, larger blocks (capped at half the propose timeout).
    pub block_interval_ms: u64,
}

impl Default for Consensus {
    fn default() -> Self {
        Self {
            empty_block_wait_ms: 300,
            block_interval_ms: 100,
        }
    }
}

/// Peer-to-peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct P2p {
    /// libp2p listen address.
    pub listen: String,
    /// Other members' nodes: `/ip4/HOST/tcp/PORT/p2p/PEER_ID`.
    pub peers: Vec<String>,
}

/// HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Listen address of the HTTP API.
    pub listen: String,
    /// Requests per second one signing key may make.
    pub requests_per_second_per_key: u32,
    /// Requests per second one address may make without signing.
    pub requests_per_second_per_address: u32,
    /// How far a signed request's time may be from this node's clock (ms).
    pub signature_window_ms: u64,
}

/// Mempool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mempool {
    /// Most transactions waiting.
    pub max_transactions: usize,
    /// Most bytes waiting.
    pub max_bytes: usize,
    /// Most transactions waiting from one party (a key; a member
    /// institution's keys and practitioners together) in one lane.
    pub max_per_signer: usize,
    /// Other nodes' HTTP API base URLs to pass submitted transactions on to.
    pub gossip_to: Vec<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            institution: String::new(),
            genesis_file: "genesis.json".into(),
            node_key_file: "node-key.json".into(),
            transport_key_file: "transport-key.json".into(),
            data_dir: "data".into(),
            storage_compression: medledger_store::Compression::default().name().into(),
            min_free_disk_mb: 64,
            p2p: P2p::default(),
            http: Http::default(),
            mempool: Mempool::default(),
            consensus: Consensus::default(),
            gateway: Gateway {
                records_dir: "records".into(),
                ..Gateway::default()
            },
        }
    }
}

impl Default for P2p {
    fn default() -> Self {
        Self {
            listen: "/ip4/127.0.0.1/tcp/26656".into(),
            peers: Vec::new(),
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8645".into(),
            requests_per_second_per_key: 10_000,
            requests_per_second_per_address: 2_000,
            signature_window_ms: 60_000,
        }
    }
}

impl Default for Mempool {
    fn default() -> Self {
        Self {
            max_transactions: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_per_signer: 10_000,
            gossip_to: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// Reads `config.toml` from a home directory.
    pub fn load(home: &Path) -> anyhow::Result<Self> {
        let path = home.join("config.toml");
        let meta =
            std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        if meta.len() > CONFIG_BYTES_MAX {
            anyhow::bail!(
                "{} is {} bytes; a config file is at most {CONFIG_BYTES_MAX}",
                path.display(),
                meta.len()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let config: NodeConfig = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid config", path.display()))?;
        if config.institution.is_empty() {
            anyhow::bail!(
                "{}: `institution` must name this node's institution",
                path.display()
            );
        }
        config
            .compression()
            .with_context(|| format!("{} is not a valid config", path.display()))?;
        Ok(config)
    }

    /// The store's codec, from `storage_compression`.
    pub fn compression(&self) -> anyhow::Result<medledger_store::Compression> {
        medledger_store::Compression::from_name(&self.storage_compression).ok_or_else(|| {
            anyhow::anyhow!(
                "`storage_compression` is {:?}: expected \"none\", \"lz4\" or \"zstd\"",
                self.storage_compression
            )
        })
    }

    /// The file's text, with a comment above every key.
    pub fn to_commented_toml(&self) -> String {
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|i| format!("  {i:?},")).collect();
            if quoted.is_empty() {
                "[]".to_string()
            } else {
                format!("[\n{}\n]", quoted.join("\n"))
            }
        };
        format!(
            r#"# medledger node configuration. Paths are relative to this file's directory.

# The institution this node belongs to: its id in the genesis file.
institution = {institution:?}
# The consortium's genesis file.
genesis_file = {genesis:?}
# This node's key (signs votes; its public half is the institution's node key in genesis).
node_key_file = {key:?}
# On an sm2-sm3 chain only: this node's network identity (Ed25519; its public
# half is the institution's transport_key in genesis).
transport_key_file = {transport_key:?}
# RocksDB and the consensus write-ahead log. Back this up (see docs/operations.md).
data_dir = {data:?}
# How the ledger store compresses its files: "none", "lz4" or "zstd" (this
# node's own choice; it may change between restarts, docs/scale.md measures each).
storage_compression = {compression:?}
# Below this much free space (MiB) on data_dir's volume the node stops, and
# will not start, so that a filling disk never cuts a block write short.
min_free_disk_mb = {min_free}

[p2p]
# Where this node listens for other members' nodes (libp2p, Noise-encrypted).
listen = {p2p_listen:?}
# The other members' nodes. Only these may connect.
peers = {peers}

[http]
# The HTTP API (docs/api.md). Put TLS in front of it in production.
listen = {http_listen:?}
# Requests per second one signing key may make (a burst of one second's worth is allowed).
requests_per_second_per_key = {per_key}
# Requests per second one address may make without signing.
requests_per_second_per_address = {per_address}
# How far a signed request's time may be from this node's clock, in ms; a
# nonce is remembered for this long, so a captured request cannot be replayed.
signature_window_ms = {window}

[mempool]
# Most transactions waiting for a block.
max_transactions = {max_tx}
# Most bytes waiting for a block.
max_bytes = {max_bytes}
# Most transactions waiting from one key (one institution, for its own keys
# and practitioners) in one lane; a new key's registration waits once only.
max_per_signer = {per_signer}
# Other nodes' HTTP APIs to pass submitted transactions on to, so whichever
# validator proposes next has them.
gossip_to = {gossip}

[consensus]
# When this node proposes and no transaction waits, how long it waits for one
# before proposing an empty block (ms; at most half the propose timeout).
empty_block_wait_ms = {empty_wait}
# Least time from this node's last commit to its next proposal while
# transactions wait (ms): gathers them into fewer, larger blocks.
block_interval_ms = {interval}

[gateway]
# Where this node's records gateway listens for other members' gateways
# (libp2p, Noise-encrypted; empty turns the gateway off).
listen = {gateway_listen:?}
# This institution's records: <records_dir>/<record number>/<category>/<file>,
# linked to patients in <records_dir>/patient-links.json (never on the ledger).
records_dir = {records_dir:?}
# Or the hospital's FHIR R4 server (records read from it, linked the same way):
# its base URL, and the identifier system of the hospital's record numbers.
fhir_base = {fhir_base:?}
fhir_identifier_system = {fhir_system:?}

[gateway.peers]
# Other members' gateways, by institution id.
{gateway_peers}
"#,
            institution = self.institution,
            genesis = self.genesis_file.display().to_string(),
            key = self.node_key_file.display().to_string(),
            transport_key = self.transport_key_file.display().to_string(),
            data = self.data_dir.display().to_string(),
            compression = self.storage_compression,
            min_free = self.min_free_disk_mb,
            p2p_listen = self.p2p.listen,
            peers = list(&self.p2p.peers),
            http_listen = self.http.listen,
            per_key = self.http.requests_per_second_per_key,
            per_address = self.http.requests_per_second_per_address,
            window = self.http.signature_window_ms,
            max_tx = self.mempool.max_transactions,
            max_bytes = self.mempool.max_bytes,
            per_signer = self.mempool.max_per_signer,
            gossip = list(&self.mempool.gossip_to),
            empty_wait = self.consensus.empty_block_wait_ms,
            interval = self.consensus.block_interval_ms,
            gateway_listen = self.gateway.listen,
            records_dir = self.gateway.records_dir.display().to_string(),
            fhir_base = self.gateway.fhir_base,
            fhir_system = self.gateway.fhir_identifier_system,
            gateway_peers = self
                .gateway
                .peers
                .iter()
                .map(|(k, v)| format!("{k:?} = {v:?}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> anyhow::Result<NodeConfig> {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("config.toml"), text).unwrap();
        NodeConfig::load(home.path())
    }

    #[test]
    fn the_commented_file_reads_back_and_a_codec_is_checked() {
        let config = NodeConfig {
            institution: "city-first-hospital".into(),
            storage_compression: "lz4".into(),
            ..NodeConfig::default()
        };
        let read = load_text(&config.to_commented_toml()).unwrap();
        assert_eq!(read, config);
        assert_eq!(
            read.compression().unwrap(),
            medledger_store::Compression::Lz4
        );
        let text = config.to_commented_toml().replace(
            "storage_compression = \"lz4\"",
            "storage_compression = \"snappy\"",
        );
        let error = format!("{:#}", load_text(&text).unwrap_err());
        assert!(
            error.contains("expected \"none\", \"lz4\" or \"zstd\""),
            "{error}"
        );
    }
}
