//! This node's clock: milliseconds since the Unix epoch, shifted only when
//! a test's fault plan says so.

use std::time::SystemTime;

use medledger_contracts::types::Timestamp;

/// This node's clock offset, set once at start from its fault plan
/// ([`crate::faults::FaultPlan::clock_offset_ms`]; zero in a build without
/// fault injection).
static OFFSET_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Shifts this node's clock by `ms` for the rest of the process (tests
/// only: the simulator runs a consortium whose clocks disagree within the
/// genesis tolerance). Only the first call counts.
pub(crate) fn set_offset_ms(ms: i64) {
    let _ = OFFSET_MS.set(ms);
}

/// Milliseconds since the Unix epoch, now, as this node's clock reads it.
pub fn now() -> Timestamp {
    let clock = Timestamp::from_system_time(SystemTime::now());
    // Tests shift the clock by a signed offset; never below 0.
    let offset = OFFSET_MS.get().copied().unwrap_or(0);
    Timestamp(clock.0.saturating_add_signed(offset))
}
