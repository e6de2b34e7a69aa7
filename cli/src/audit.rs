//! `medledger export` and `medledger audit replay`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use medledger_contracts::Hash32;
use medledger_contracts::types::PatientId;
use medledger_genesis::{Genesis, GenesisFile};

use medledger_audit::archive::{ArchiveSource, ArchivedBlock, StoreSource, write_archive};
use medledger_audit::replay::{Progress, Replay};
use medledger_audit::report::Reports;

fn genesis(path: &Path) -> anyhow::Result<Genesis> {
    GenesisFile::read(path)?
        .validate()
        .with_context(|| format!("{} is not a valid genesis", path.display()))
}

/// `medledger export`: a stopped node's blocks, certificates and audit
/// entries into one compressed archive.
pub fn export(data: &Path, genesis_path: &Path, to: &Path) -> anyhow::Result<()> {
    let genesis = genesis(genesis_path)?;
    let source = StoreSource::open(data)?;
    let header = source.header(genesis.chain_id.as_str())?;
    if header.genesis_hash != genesis.hash() {
        bail!(
            "the store belongs to genesis {}, not {}",
            header.genesis_hash,
            genesis.hash()
        );
    }
    let count = write_archive(to, &header, source)?;
    let size = std::fs::metadata(to)?.len();
    println!(
        "wrote {count} blocks (to height {}) to {} ({size} bytes)",
        header.height,
        to.display()
    );
    Ok(())
}

/// How often a replay with `--checkpoint` writes it.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Where a replay reads blocks from.
pub enum ReplaySource {
    /// A stopped node's data directory.
    Data(PathBuf),
    /// An archive file.
    Archive(PathBuf),
    /// A running node's API, read as an institution.
    Node {
        /// The node's base URL.
        url: String,
        /// The institution's admin key file.
        key: PathBuf,
        /// The institution.
        institution: String,
    },
}

/// `medledger audit replay`: exits non-zero at the first failed check.
pub fn replay(
    genesis_path: &Path,
    source: ReplaySource,
    report: Option<&Path>,
    patients: &[String],
    checkpoint: Option<&Path>,
    state_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let genesis = genesis(genesis_path)?;
    let patients: Vec<PatientId> = patients
        .iter()
        .map(|p| {
            Hash32::from_hex(p)
                .map(PatientId)
                .map_err(|_| anyhow::anyhow!("--patient must be 64 hex characters"))
        })
        .collect::<Result<_, _>>()?;
    let (blocks, total): (
        Box<dyn Iterator<Item = anyhow::Result<ArchivedBlock>> + Send>,
        Option<u64>,
    ) = match source {
        ReplaySource::Data(dir) => {
            let source = StoreSource::open(&dir)?;
            let header = source.header(genesis.chain_id.as_str())?;
            if header.genesis_hash != genesis.hash() {
                bail!(
                    "the store belongs to genesis {}, not this genesis ({})",
                    header.genesis_hash,
                    genesis.hash()
                );
            }
            (Box::new(source), Some(header.height))
        }
        ReplaySource::Node {
            url,
            key,
            institution,
        } => {
            let institution = medledger_contracts::types::InstitutionId::new(&institution)?;
            let key = medledger_client_sdk::KeyFile::load(&key)?;
            let who = medledger_client_sdk::Identity::institution(institution, &key);
            let source = medledger_audit::archive::HttpSource::open(&url, genesis.chain(), who)?;
            let total = source.height;
            (Box::new(source), Some(total))
        }
        ReplaySource::Archive(path) => {
            let source = ArchiveSource::open(&path)?;
            if source.header.genesis_hash != genesis.hash() {
                bail!(
                    "the archive starts from genesis {}, not this genesis ({})",
                    source.header.genesis_hash,
                    genesis.hash()
                );
            }
            let total = source.header.height;
            (Box::new(source), Some(total))
        }
    };
    let mut replay = match (state_dir, checkpoint) {
        (Some(dir), _) => {
            let replay = Replay::on_disk(&genesis, dir, medledger_store::Compression::default())?;
            if replay.resumed_at() > 0 {
                eprintln!(
                    "resuming the replay kept in {} at height {}; blocks before it are only linked and their audit entries folded",
                    dir.display(),
                    replay.resumed_at()
                );
            }
            replay
        }
        (None, Some(file)) if file.exists() => {
            let replay = Replay::resume(&genesis, file)?;
            eprintln!(
                "resuming from the checkpoint in {} at height {} ({} transactions already replayed); blocks before it are only linked and their audit entries folded",
                file.display(),
                replay.resumed_at(),
                replay.transactions
            );
            replay
        }
        (None, _) => Replay::new(&genesis)?,
    };
    if let Some(file) = checkpoint {
        replay.checkpoint_to(file.to_path_buf(), CHECKPOINT_EVERY);
    }
    let mut reports = Reports::for_patients(&patients);
    let mut progress = Progress::new(total);
    eprintln!(
        "replaying {} from genesis {}",
        genesis.chain_id.as_str(),
        genesis.hash()
    );
    replay.run(blocks, |state, header, entries, transactions| {
        if report.is_some() {
            reports.observe(state, header, entries);
        }
        progress.tick(header.height, transactions);
    })?;
    let height = replay.state().height();
    if let Some(total) = total
        && height != total
    {
        bail!("the source claims height {total} but holds blocks only to {height}");
    }
    let seconds = progress.seconds();
    println!(
        "replay passed: {height} blocks, {} transactions from genesis, every certificate, signature, root and audit entry checked ({:.1} s, {:.0} tx/s)",
        replay.transactions,
        seconds,
        replay.transactions as f64 / seconds.max(1e-9)
    );
    if let Some(dir) = report {
        reports.write(replay.state(), dir, &patients)?;
        println!("reports written to {}", dir.display());
    }
    Ok(())
}
