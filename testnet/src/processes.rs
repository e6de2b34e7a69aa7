//! The node processes of a local testnet: started from the `medledger`
//! binary, each writing to `node.log` in its home, killed (SIGKILL) when
//! asked and whenever their owner ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use crate::layout::{TestnetLayout, TestnetNode};

/// The log filter nodes start with unless told otherwise: the node's own
/// events at `info` (`medledger` prefixes every medledger crate's target),
/// everything else at `warn`.
pub const NODE_LOG_FILTER: &str = "warn,medledger=info";

/// A testnet's node processes, one slot per node of its layout.
pub struct Consortium {
    /// What `testnet.json` says.
    pub layout: TestnetLayout,
    binary: PathBuf,
    /// Extra environment per node, applied at its next start.
    env: Vec<Vec<(String, String)>>,
    log_filter: Option<String>,
    children: Vec<Option<Child>>,
}

impl Consortium {
    /// The testnet `layout`, none of its nodes running yet; nodes are
    /// started from `binary` (the `medledger` executable).
    pub fn new(binary: impl Into<PathBuf>, layout: TestnetLayout) -> Self {
        let count = layout.nodes.len();
        Self {
            layout,
            binary: binary.into(),
            env: vec![Vec::new(); count],
            log_filter: None,
            children: (0..count).map(|_| None).collect(),
        }
    }

    /// The testnet `layout` with every node started from `binary`.
    pub fn launch(binary: impl Into<PathBuf>, layout: TestnetLayout) -> anyhow::Result<Self> {
        let mut consortium = Self::new(binary, layout);
        consortium.start_all()?;
        Ok(consortium)
    }

    /// Sets `RUST_LOG` for every node started from now on (by default the
    /// node's own default, or the caller's `RUST_LOG`).
    pub fn log_filter(mut self, filter: &str) -> Self {
        self.log_filter = Some(filter.to_string());
        self
    }

    /// The nodes, in `testnet.json` order.
    pub fn nodes(&self) -> &[TestnetNode] {
        &self.layout.nodes
    }

    /// The environment node `i` starts with (faults, clock offsets): change
    /// it, then restart the node.
    pub fn env_mut(&mut self, i: usize) -> &mut Vec<(String, String)> {
        &mut self.env[i]
    }

    /// Starts node `i` (after a kill: restarts it).
    pub fn start(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        let home = &self.layout.nodes[i].home;
        self.children[i] = Some(spawn(
            &self.binary,
            home,
            self.log_filter.as_deref(),
            &self.env[i],
        )?);
        Ok(())
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.children.len() {
            self.start(i)?;
        }
        Ok(())
    }

    /// SIGKILLs node `i`: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            // Errors mean it already ended; either way it is reaped below.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `Some(exit code)` once node `i` ended by itself (its slot is then
    /// empty); `None` while it runs or when it was not started.
    pub fn exited(&mut self, i: usize) -> Option<Option<i32>> {
        let child = self.children[i].as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.children[i] = None;
                Some(status.code())
            }
            _ => None,
        }
    }

    /// Node `i`'s process id while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().map(Child::id)
    }

    /// Whether node `i` has a live (or not yet reaped) process.
    pub fn running(&self, i: usize) -> bool {
        self.children[i].is_some()
    }
}

impl Drop for Consortium {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

fn spawn(
    binary: &Path,
    home: &Path,
    log_filter: Option<&str>,
    env: &[(String, String)],
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("node.log"))
        .with_context(|| format!("opening {}", home.join("node.log").display()))?;
    let mut command = Command::new(binary);
    command.args(["node", "run", "--home"]).arg(home);
    if let Some(filter) = log_filter {
        command.env("RUST_LOG", filter);
    }
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} for {}", binary.display(), home.display()))
}
