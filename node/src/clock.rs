//! This node's clock: milliseconds since the Unix epoch, shifted by the
//! test-only `MEDLEDGER_CLOCK_OFFSET_MS`.

use std::time::{SystemTime, UNIX_EPOCH};

use medledger_contracts::types::Timestamp;

/// Milliseconds since the Unix epoch, now, as this node's clock reads it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ms = i128::try_from(ms).unwrap_or(i128::MAX) + i128::from(clock_offset_ms());
    Timestamp(u64::try_from(ms.max(0)).unwrap_or(u64::MAX))
}

/// Test hook: `MEDLEDGER_CLOCK_OFFSET_MS` (signed) shifts this node's clock,
/// so the simulator can run a consortium whose clocks disagree within the
/// genesis tolerance. Read once; zero when unset. The node warns at start
/// when it is set (see [`clock_offset_warning`]).
pub fn clock_offset_ms() -> i64 {
    static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var("MEDLEDGER_CLOCK_OFFSET_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// A warning line when the clock is shifted, for the node's start.
pub fn clock_offset_warning() -> Option<String> {
    let offset = clock_offset_ms();
    (offset != 0).then(|| {
        format!("MEDLEDGER_CLOCK_OFFSET_MS={offset}: this node's clock is shifted (tests only)")
    })
}
