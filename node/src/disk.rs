//! Free space on the data volume. A node stops (exit code
//! [`EXIT_STORAGE_FAILED`]) rather than let a filling disk cut a block write
//! short, and will not start on a volume that is already too full: every
//! block it acknowledged is on disk, and once space is freed it restarts and
//! catches up by sync.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The exit code of a node stopped for its storage (disk full or failing).
pub const EXIT_STORAGE_FAILED: i32 = 75;

/// How often the watcher looks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Bytes available to this process on the volume holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(path)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// `Ok` when the volume of `path` has at least `min` bytes free; the error says how much it has.
pub fn enough_free(path: &Path, min: u64) -> Result<(), LowDisk> {
    match free_bytes(path) {
        Ok(free) if free >= min => Ok(()),
        Ok(free) => Err(LowDisk {
            free_mib: free >> 20,
            path: path.to_path_buf(),
            min_mib: min >> 20,
        }),
        // Cannot tell: let the store's own errors speak.
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read free disk space");
            Ok(())
        }
    }
}

/// Too little free space on the node's volume.
#[derive(Debug, thiserror::Error)]
#[error(
    "only {free_mib} MiB free on the volume of {} (min_free_disk_mb is {min_mib}): free space, then start the node again; nothing committed is lost",
    path.display()
)]
pub struct LowDisk {
    /// Free space, MiB.
    pub free_mib: u64,
    /// A path on the volume.
    pub path: PathBuf,
    /// The configured minimum, MiB.
    pub min_mib: u64,
}

/// Watches the volume of `path` from a thread of its own, and stops the
/// process when less than `min` bytes are free.
pub fn watch(path: PathBuf, min: u64) {
    let spawned = std::thread::Builder::new()
        .name("disk-watch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(WATCH_EVERY);
                if let Err(why) = enough_free(&path, min) {
                    tracing::error!("stopping this node: {why}");
                    eprintln!("medledger node: stopped: {why}");
                    std::process::exit(EXIT_STORAGE_FAILED);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no disk watcher: free space is not watched");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_judged() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(enough_free(dir.path(), 0).is_ok());
        let too_much = enough_free(dir.path(), u64::MAX).unwrap_err();
        assert!(
            too_much.to_string().contains("min_free_disk_mb"),
            "{too_much}"
        );
    }
}
