//! What a run is asked to do: its seed, size, faults and where its
//! binary and output are.

use std::path::PathBuf;
use std::time::Duration;

/// How long a healed consortium of four validators may take to commit
/// again ([`SimConfig::heal_bound`] scales it).
pub const HEAL_BOUND_SECS: u64 = 120;

/// Which faults a run may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// SIGKILL up to f validators and restart them.
    pub kill: bool,
    /// Cut up to f validators off and heal; at the end, split off a minority
    /// of f (the rest must go on), then split into halves without a quorum,
    /// and heal.
    pub partition: bool,
    /// Slow every link of one node for a while.
    pub slow: bool,
    /// Run one node with its clock shifted within the genesis tolerance.
    pub skew: bool,
    /// Fill one node's disk, then free it and restart the node.
    pub disk: bool,
    /// f validators that propose blocks with a wrong state root; a holder
    /// that alters the records it sends; replayed fetches; one transaction
    /// sent to two nodes at once; a revocation racing a request.
    pub byzantine: bool,
    /// One member (the second hospital) attacks the others with its own
    /// keys: a forged guardianship, reviewing its own emergency access, a
    /// replayed read, downloading whole blocks, hiding a release, a flood.
    pub hostile: bool,
}

impl Faults {
    /// Every fault.
    pub const ALL: Faults = Faults {
        kill: true,
        partition: true,
        slow: true,
        skew: true,
        disk: true,
        byzantine: true,
        hostile: true,
    };
    /// No fault.
    pub const NONE: Faults = Faults {
        kill: false,
        partition: false,
        slow: false,
        skew: false,
        disk: false,
        byzantine: false,
        hostile: false,
    };

    /// Parses `all`, `none`, or a comma-separated list of names.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "all" => return Ok(Self::ALL),
            "none" => return Ok(Self::NONE),
            _ => {}
        }
        let mut faults = Self::NONE;
        for name in text.split(',').map(str::trim) {
            match name {
                "kill" => faults.kill = true,
                "partition" => faults.partition = true,
                "slow" => faults.slow = true,
                "skew" => faults.skew = true,
                "disk" => faults.disk = true,
                "byzantine" => faults.byzantine = true,
                "hostile" => faults.hostile = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: kill, partition, slow, skew, disk, byzantine, hostile, all or none"
                    ));
                }
            }
        }
        Ok(faults)
    }

    /// The list [`Faults::parse`] reads back.
    pub fn names(&self) -> String {
        let names: Vec<&str> = [
            (self.kill, "kill"),
            (self.partition, "partition"),
            (self.slow, "slow"),
            (self.skew, "skew"),
            (self.disk, "disk"),
            (self.byzantine, "byzantine"),
            (self.hostile, "hostile"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(",")
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything random follows from it.
    pub seed: u64,
    /// Patients (besides their guardians and proxies).
    pub patients: usize,
    /// Workload steps per fault round (the whole run, unless soaking).
    pub steps: usize,
    /// Faults the plan may inject.
    pub faults: Faults,
    /// A fault to build into the first hospital's node
    /// (`MEDLEDGER_FAULT`, e.g. `skip-grant-check`): the invariants must catch it.
    pub holder_fault: Option<String>,
    /// Keep going, round after round of `steps`, for this long.
    pub soak: Option<Duration>,
    /// Background registrations per second on top of the scripted workload.
    pub load: u32,
    /// The report's interval.
    pub interval: Duration,
    /// The `medledger` binary.
    pub binary: PathBuf,
    /// Validators (4 to 64): the example consortium's members first, then
    /// generated district hospitals.
    pub validators: usize,
    /// The consortium's crypto suite.
    pub suite: medledger_contracts::crypto::CryptoSuite,
}

impl SimConfig {
    /// How long a healed consortium may take to commit again: the local
    /// testnet's timeouts grow with every four validators, and so does this.
    pub fn heal_bound(&self) -> std::time::Duration {
        let share = u64::try_from(self.validators.div_ceil(4).max(1)).unwrap_or(u64::MAX);
        std::time::Duration::from_secs(HEAL_BOUND_SECS.saturating_mul(share))
    }

    /// How many validators may be faulty at once: f = ⌊(n − 1) / 3⌋.
    pub fn fault_budget(&self) -> usize {
        self.validators.saturating_sub(1) / 3
    }

    /// The command line that reruns this configuration.
    pub fn rerun(&self) -> String {
        let mut line = format!(
            "medledger-sim --seed {} --patients {} --steps {} --faults {}",
            self.seed,
            self.patients,
            self.steps,
            self.faults.names()
        );
        if let Some(f) = &self.holder_fault {
            line.push_str(&format!(" --holder-fault {f}"));
        }
        if let Some(soak) = self.soak {
            line.push_str(&format!(" --soak {}", soak.as_secs()));
        }
        if self.load > 0 {
            line.push_str(&format!(" --load {}", self.load));
        }
        if self.validators != 4 {
            line.push_str(&format!(" --validators {}", self.validators));
        }
        if self.suite != medledger_contracts::crypto::CryptoSuite::Ed25519Sha256 {
            line.push_str(&format!(" --crypto-suite {}", self.suite.name()));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_read_back() {
        for text in ["all", "none", "kill,slow", "skew,disk,byzantine", "hostile"] {
            let faults = Faults::parse(text).unwrap();
            let names = faults.names();
            let expected = match text {
                "all" => "kill,partition,slow,skew,disk,byzantine,hostile",
                other => other,
            };
            assert_eq!(names, expected);
            assert_eq!(Faults::parse(&names).unwrap(), faults);
        }
        assert!(Faults::parse("meteor").is_err());
    }
}
