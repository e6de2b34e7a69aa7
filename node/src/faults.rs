//! Misbehaviour a test switches on in one node, to show that the others (or
//! the requester, or the auditor) catch it. A plan with a fault in it can
//! only come from [`FaultPlan::from_env`], and that reads the environment
//! only in a debug build with the `fault-injection` feature, which cargo
//! turns on (through the binary's dev-dependency) when it builds tests. A
//! `medledger` built for use (`cargo build -p medledger`, any `--release`
//! build, even one that compiled tests) refuses to start when asked for a
//! fault, so a test cannot pass silently without its fault and a deployed
//! node cannot be talked into one.
//!
//! A node reads its plan once, at start, and hands each part its own:
//! consensus its [`Fault`], the gateway its two switches, the clock its
//! offset.

/// A consensus fault: what this node does wrong when it proposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Proposes blocks whose header claims a wrong state root.
    BadStateRoot,
    /// Proposes blocks whose header claims a wrong transaction root.
    BadTransactionRoot,
    /// Proposes blocks dated as early as the parent allows (1 ms after it).
    BackdatedBlockTime,
    /// Proposes blocks whose first transaction carries a signature that
    /// does not verify, with the header computed from the copy it holds
    /// (whose signature does): the roots match what others compute from
    /// their own copies unless they check the block's own bytes.
    SwapSignature,
}

/// Every fault switched on in this node; the default is none. Its fields
/// are the crate's own: outside it, a plan comes only from
/// [`FaultPlan::from_env`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// `MEDLEDGER_FAULT=bad-state-root | bad-transaction-root | backdated-block-time | swap-signature`.
    pub(crate) consensus: Option<Fault>,
    /// `MEDLEDGER_FAULT=tamper-chunk`: the holder alters every sealed chunk.
    pub(crate) tamper_chunk: bool,
    /// `MEDLEDGER_FAULT=skip-grant-check`: the holder serves without
    /// checking the grant is still active.
    pub(crate) skip_grant_check: bool,
    /// `MEDLEDGER_CLOCK_OFFSET_MS` (signed): this node's clock is shifted.
    pub(crate) clock_offset_ms: i64,
}

/// Why the environment's fault switches are refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// A fault this build does not know.
    #[error(
        "{FAULT_VAR}={0:?}: known faults are bad-state-root, bad-transaction-root, backdated-block-time, swap-signature, tamper-chunk, skip-grant-check"
    )]
    UnknownFault(String),
    /// The clock offset is not a whole number of milliseconds.
    #[error("{CLOCK_OFFSET_VAR}={0:?}: {1}")]
    BadClockOffset(String, std::num::ParseIntError),
    /// A switch set for a build without fault injection.
    #[error(
        "{FAULT_VAR} or {CLOCK_OFFSET_VAR} is set, but this medledger was built without fault injection (tests only: a debug build with the fault-injection feature): unset them"
    )]
    NotInThisBuild,
}

/// The variable naming a fault.
pub const FAULT_VAR: &str = "MEDLEDGER_FAULT";
/// The variable shifting the clock.
pub const CLOCK_OFFSET_VAR: &str = "MEDLEDGER_CLOCK_OFFSET_MS";

impl FaultPlan {
    /// The plan the environment asks for. Outside a debug build with the
    /// `fault-injection` feature, any fault asked for is an error.
    pub fn from_env() -> Result<Self, FaultError> {
        let read = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Self::parse(
            read(FAULT_VAR).as_deref(),
            read(CLOCK_OFFSET_VAR).as_deref(),
        )
    }

    /// The plan for these values of [`FAULT_VAR`] and [`CLOCK_OFFSET_VAR`].
    #[cfg(all(feature = "fault-injection", debug_assertions))]
    fn parse(fault: Option<&str>, clock_offset: Option<&str>) -> Result<Self, FaultError> {
        let mut plan = Self::default();
        match fault {
            None => {}
            Some("bad-state-root") => plan.consensus = Some(Fault::BadStateRoot),
            Some("bad-transaction-root") => plan.consensus = Some(Fault::BadTransactionRoot),
            Some("backdated-block-time") => plan.consensus = Some(Fault::BackdatedBlockTime),
            Some("swap-signature") => plan.consensus = Some(Fault::SwapSignature),
            Some("tamper-chunk") => plan.tamper_chunk = true,
            Some("skip-grant-check") => plan.skip_grant_check = true,
            Some(other) => return Err(FaultError::UnknownFault(other.to_string())),
        }
        if let Some(offset) = clock_offset {
            plan.clock_offset_ms = offset
                .trim()
                .parse()
                .map_err(|e| FaultError::BadClockOffset(offset.to_string(), e))?;
        }
        Ok(plan)
    }

    /// The plan for these values: none, or an error if any is asked for
    /// (this build has no fault injection).
    #[cfg(not(all(feature = "fault-injection", debug_assertions)))]
    fn parse(fault: Option<&str>, clock_offset: Option<&str>) -> Result<Self, FaultError> {
        match (fault, clock_offset) {
            (None, None) => Ok(Self::default()),
            _ => Err(FaultError::NotInThisBuild),
        }
    }

    /// One warning line per fault switched on, for the node's log at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(fault) = self.consensus {
            out.push(format!(
                "{FAULT_VAR}: this node proposes faulty blocks ({fault:?}; tests only)"
            ));
        }
        if self.tamper_chunk {
            out.push(format!(
                "{FAULT_VAR}=tamper-chunk: this node's gateway alters every sealed chunk (tests only)"
            ));
        }
        if self.skip_grant_check {
            out.push(format!(
                "{FAULT_VAR}=skip-grant-check: this node's gateway serves without the grant check (tests only)"
            ));
        }
        if self.clock_offset_ms != 0 {
            out.push(format!(
                "{CLOCK_OFFSET_VAR}={}: this node's clock is shifted (tests only)",
                self.clock_offset_ms
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(feature = "fault-injection", debug_assertions))]
    #[test]
    fn each_fault_reads_back_and_unknown_ones_are_refused() {
        assert_eq!(FaultPlan::parse(None, None), Ok(FaultPlan::default()));
        let plan = FaultPlan::parse(Some("bad-state-root"), Some("-1500")).unwrap();
        assert_eq!(plan.consensus, Some(Fault::BadStateRoot));
        assert_eq!(plan.clock_offset_ms, -1500);
        assert_eq!(plan.warnings().len(), 2);
        assert!(
            FaultPlan::parse(Some("tamper-chunk"), None)
                .unwrap()
                .tamper_chunk
        );
        assert!(FaultPlan::parse(Some("meteor"), None).is_err());
        assert!(FaultPlan::parse(None, Some("soon")).is_err());
    }

    #[cfg(not(all(feature = "fault-injection", debug_assertions)))]
    #[test]
    fn a_build_without_fault_injection_refuses_every_fault() {
        assert_eq!(FaultPlan::parse(None, None), Ok(FaultPlan::default()));
        for (fault, offset) in [(Some("skip-grant-check"), None), (None, Some("1500"))] {
            let error = FaultPlan::parse(fault, offset).unwrap_err();
            assert!(
                error.to_string().contains("built without fault injection"),
                "{error}"
            );
        }
    }
}
