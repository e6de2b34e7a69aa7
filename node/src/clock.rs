//! This node's clock: milliseconds since the Unix epoch, shifted only when
//! a test's fault plan says so.

use std::time::{SystemTime, UNIX_EPOCH};

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
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let offset = OFFSET_MS.get().copied().unwrap_or(0);
    let ms = i128::try_from(ms).unwrap_or(i128::MAX) + i128::from(offset);
    Timestamp(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}
