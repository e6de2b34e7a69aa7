//! The consortium under test: a `medledger_testnet` layout, one
//! `medledger node` process per validator on 127.0.0.1, every node-to-node
//! connection (consensus p2p, transaction gossip, records gateway) routed
//! through a [`Link`] the simulator can cut, slow and meter, and optionally a
//! small tmpfs under one node's data directory so its disk can be filled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use medledger_client_sdk::{Client, KeyFile};
use medledger_contracts::types::Chain;
use medledger_testnet::{Consortium, NODE_LOG_FILTER, TestnetNode};

use crate::net::Link;

/// What kind of traffic a link carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Traffic {
    /// Consensus messages and block sync (libp2p).
    Consensus,
    /// Transactions gossiped between mempools (HTTP).
    Gossip,
    /// Records moving between gateways (libp2p request-response).
    Records,
}

impl Traffic {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Consensus => "consensus + sync",
            Traffic::Gossip => "transaction gossip",
            Traffic::Records => "records gateway",
        }
    }
}

/// A tmpfs mounted under one node's data directory, which the simulator can fill.
pub struct SmallDisk {
    /// Which node.
    pub node: usize,
    mount: PathBuf,
}

impl SmallDisk {
    fn filler(&self) -> PathBuf {
        self.mount.join("simulator-filler")
    }

    /// Writes a file until the disk refuses more (ENOSPC).
    pub fn fill(&self) -> std::io::Result<u64> {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler())?;
        let chunk = vec![0x5au8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Frees what [`SmallDisk::fill`] took.
    pub fn free(&self) -> std::io::Result<()> {
        std::fs::remove_file(self.filler())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status();
    }
}

/// The running consortium.
pub struct Cluster {
    /// A client per node.
    pub clients: Vec<Client>,
    /// The chain.
    pub chain: Chain,
    /// The small disk, when one could be mounted.
    pub disk: Option<SmallDisk>,
    links: BTreeMap<(usize, usize, Traffic), Link>,
    processes: Consortium,
    // Declared last: dropped after the processes are killed and the tmpfs unmounted.
    dir: tempfile::TempDir,
}

/// The size of the node's disk in the full-disk fault.
const SMALL_DISK: &str = "size=512m";

fn port_of(address: &str) -> Option<u16> {
    if let Some(rest) = address.split("/tcp/").nth(1) {
        return rest.split('/').next()?.parse().ok();
    }
    address
        .rsplit(':')
        .next()?
        .trim_end_matches('/')
        .parse()
        .ok()
}

impl Cluster {
    /// The nodes, in `testnet.json` order (the harness's layout: one copy).
    pub fn nodes(&self) -> &[TestnetNode] {
        self.processes.nodes()
    }

    /// Lays out a testnet of `validators` validators with links between
    /// every pair.
    pub async fn create(
        binary: &Path,
        chain: &str,
        suite: medledger_contracts::crypto::CryptoSuite,
        validators: usize,
        keep: bool,
    ) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("medledger-sim-")
            .disable_cleanup(keep)
            .tempdir()
            .map_err(|e| e.to_string())?;
        if keep {
            eprintln!("keeping the run's files in {}", dir.path().display());
        }
        let layout = medledger_testnet::init_on(
            suite,
            dir.path(),
            validators,
            0,
            0,
            chain,
            medledger_testnet::TX_VALIDITY_WINDOW_MS,
        )
        .map_err(|e| format!("laying out the testnet: {e:#}"))?;
        let nodes = layout.nodes.clone();
        // Every address a node dials another by, rewritten to a proxy per
        // (dialler, dialled, traffic).
        let ports = |address: fn(&TestnetNode) -> &str| -> Vec<u16> {
            nodes
                .iter()
                .map(|n| port_of(address(n)).unwrap_or(0))
                .collect()
        };
        let (p2p, http, gateway) = (ports(|n| &n.p2p), ports(|n| &n.http), ports(|n| &n.gateway));
        let mut links = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            let path = node.home.join("config.toml");
            let mut config = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
            for j in (0..nodes.len()).filter(|j| *j != i) {
                for (traffic, port, before, after) in [
                    (Traffic::Consensus, p2p[j], "/tcp/", "/p2p/"),
                    (Traffic::Gossip, http[j], "http://127.0.0.1:", "\""),
                    (Traffic::Records, gateway[j], "/tcp/", "/p2p/"),
                ] {
                    let link = loop {
                        let link = Link::start(port).await.map_err(|e| e.to_string())?;
                        // A proxy must not take a port a node will listen on.
                        if !p2p.contains(&link.port)
                            && !http.contains(&link.port)
                            && !gateway.contains(&link.port)
                        {
                            break link;
                        }
                    };
                    config = config.replace(
                        &format!("{before}{port}{after}"),
                        &format!("{before}{}{after}", link.port),
                    );
                    links.insert((i, j, traffic), link);
                }
            }
            std::fs::write(&path, config).map_err(|e| e.to_string())?;
        }
        let chain = medledger_genesis::GenesisFile::read(&dir.path().join("genesis.json"))
            .and_then(|file| file.validate())
            .map_err(|e| format!("the testnet's genesis: {e}"))?
            .chain();
        let clients = nodes
            .iter()
            .map(|n| Client::new(&n.http, chain.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Cluster {
            clients,
            chain,
            disk: None,
            links,
            processes: Consortium::new(binary, layout).log_filter(NODE_LOG_FILTER),
            dir,
        })
    }

    /// Mounts a small tmpfs under node `node`'s data directory, before it
    /// first starts; the error says why it could not (e.g. no permission to mount).
    pub fn mount_small_disk(&mut self, node: usize) -> Result<(), String> {
        let mount = self.nodes()[node].home.join("data");
        std::fs::create_dir_all(&mount).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", SMALL_DISK, "medledger-sim"])
            .arg(&mount)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        self.disk = Some(SmallDisk { node, mount });
        Ok(())
    }

    /// The run's directory (genesis, keys, homes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A key the testnet made (`practitioner.dr-first-1`, `admin.health-commission`…).
    pub fn key(&self, label: &str) -> Result<KeyFile, String> {
        medledger_testnet::load_key(self.dir.path(), label)
            .map_err(|e| format!("key {label}: {e:#}"))
    }

    /// The environment node `i` starts with (faults, clock offset); takes
    /// effect at its next start.
    pub fn env_mut(&mut self, i: usize) -> &mut Vec<(String, String)> {
        self.processes.env_mut(i)
    }

    /// The node of an institution.
    pub fn index(&self, institution: &str) -> Option<usize> {
        self.nodes()
            .iter()
            .position(|n| n.institution == institution)
    }

    /// Starts (or restarts) node `i`.
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        self.processes.start(i).map_err(|e| format!("{e:#}"))
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        self.processes.kill(i);
    }

    /// `Some(code)` once node `i` exited by itself; `None` while it runs.
    pub fn exited(&mut self, i: usize) -> Option<Option<i32>> {
        self.processes.exited(i)
    }

    /// Whether node `i` has a live process.
    pub fn running(&self, i: usize) -> bool {
        self.processes.running(i)
    }

    /// Cuts every link between different groups; no groups heals everything.
    pub fn partition(&self, groups: &[&[usize]]) {
        let group_of = |n: usize| groups.iter().position(|g| g.contains(&n));
        for ((i, j, _), link) in &self.links {
            link.set_cut(!groups.is_empty() && group_of(*i) != group_of(*j));
        }
    }

    /// Slows every link into and out of node `i` (zero restores them).
    pub fn slow(&self, i: usize, delay: Duration) {
        for ((a, b, _), link) in &self.links {
            if *a == i || *b == i {
                link.set_delay(delay);
            }
        }
    }

    /// Bytes carried between nodes so far, by kind of traffic.
    pub fn bytes(&self) -> BTreeMap<Traffic, u64> {
        let mut by = BTreeMap::new();
        for ((_, _, traffic), link) in &self.links {
            *by.entry(*traffic).or_insert(0) += link.bytes();
        }
        by
    }

    /// Node `i`'s committed height, if it answers.
    pub async fn height(&self, i: usize) -> Option<u64> {
        self.clients[i].status().await.ok().map(|s| s.height)
    }

    /// Waits until node `i` has committed `height`; false after `within`.
    pub async fn reach(&self, i: usize, height: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.height(i).await.unwrap_or(0) >= height {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every node's height, round and peers, for a failure's post-mortem.
    pub async fn describe(&self) -> String {
        let mut seen = Vec::new();
        for (c, node) in self.clients.iter().zip(self.nodes()) {
            seen.push(match c.status().await {
                Ok(s) => format!(
                    "{} height {} round {} peers {}",
                    node.institution, s.height, s.round, s.peers
                ),
                Err(e) => format!("{} unreachable ({e})", node.institution),
            });
        }
        seen.join("; ")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes().len() {
            self.processes.kill(i);
        }
        // Unmount before the directory is removed.
        self.disk = None;
    }
}

#[cfg(test)]
mod tests {
    use super::port_of;

    #[test]
    fn ports_are_read_from_multiaddrs_and_urls() {
        assert_eq!(port_of("/ip4/127.0.0.1/tcp/4450/p2p/12D3"), Some(4450));
        assert_eq!(port_of("/ip4/127.0.0.1/tcp/4451"), Some(4451));
        assert_eq!(port_of("http://127.0.0.1:35971"), Some(35971));
        assert_eq!(port_of("nothing"), None);
    }
}
