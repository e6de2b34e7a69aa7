//! `medledger bench-replay`: replayed transactions per second from an
//! archive. The archive is made here, not by a running consortium (a million
//! transactions would take the consortium minutes to commit): the testnet
//! genesis's validators sign real commit certificates over blocks executed by
//! `contracts`, so the archive is one a consortium could have produced and
//! the replay checks everything it checks on a real one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use medledger_client_sdk::KeyFile;
use medledger_contracts::block::Block;
use medledger_contracts::certificate::{
    CommitCertificate, CommitSignature, ConsensusAddress, VoteBody, VoteKind, vote_message,
};
use medledger_contracts::crypto::{CryptoSuite, SecretKey};
use medledger_contracts::encoding::{BoundedVec, to_bytes};
use medledger_contracts::transaction::{Payload, SignedTransaction, Signer};
use medledger_contracts::types::*;
use serde_json::json;

use super::bench::{peak_rss_mib, sign, synthetic_key_of};
use medledger_audit::archive::{ArchiveSource, ArchivedBlock, write_archive};
use medledger_audit::replay::{Progress, Replay};

/// Settings from the command line.
pub struct ReplayBenchOptions {
    /// Where to put the genesis and archive (default: a temporary directory, removed after).
    pub dir: Option<PathBuf>,
    /// Transactions in the archive.
    pub transactions: usize,
    /// Transactions per block.
    pub block_size: usize,
    /// Patients.
    pub patients: usize,
    /// Keep the replayed state in a RocksDB store (in the bench directory) instead of memory.
    pub on_disk: bool,
    /// How that store compresses its files.
    pub compression: medledger_store::Compression,
    /// The genesis transaction validity window (R1).
    pub tx_validity_window_ms: u64,
    /// The genesis `practitioner_licences` (R4.14): `attested` or `declared`.
    pub practitioner_licences: String,
    /// The chain's crypto suite.
    pub crypto_suite: CryptoSuite,
}

/// Runs the bench.
pub fn run(options: ReplayBenchOptions) -> anyhow::Result<()> {
    let dir = options.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("medledger-bench-replay-{}", std::process::id()))
    });
    let result = bench(&dir, &options);
    if options.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn bench(dir: &std::path::Path, options: &ReplayBenchOptions) -> anyhow::Result<()> {
    medledger_testnet::init_on(
        options.crypto_suite,
        dir,
        4,
        0,
        0,
        "medledger-bench",
        options.tx_validity_window_ms,
    )?;
    let mut file = medledger_genesis::GenesisFile::read(&dir.join("genesis.json"))?;
    file.parameters.practitioner_licences = options.practitioner_licences.clone();
    std::fs::write(dir.join("genesis.json"), file.to_json())?;
    let genesis = file.validate()?;
    let chain = genesis.chain();
    let validators: Vec<SecretKey> = genesis
        .validators()
        .map(|v| {
            KeyFile::load(
                &dir.join("keys")
                    .join(format!("node.{}.json", v.id.as_str())),
            )
            .map(|k| k.secret().clone())
        })
        .collect::<Result<_, _>>()?;
    let proposer = genesis
        .validators()
        .next()
        .context("a validator")?
        .id
        .clone();
    let doctor = KeyFile::load(&dir.join("keys").join("practitioner.dr-second-1.json"))?;
    let doctor_id = doctor.practitioner_id();
    let first = InstitutionId::new("city-first-hospital")?;
    let second = InstitutionId::new("city-second-hospital")?;
    let patients: Vec<SecretKey> = (0..options.patients as u64)
        .map(|n| synthetic_key_of(options.crypto_suite, "patient", n))
        .collect();
    let start = genesis.genesis_time;

    // The workload: registrations, then grants, then access requests.
    let mut grant_ids: Vec<TxHash> = Vec::new();
    let mut made = 0usize;
    let mut nonce = 0u64;
    let mut next_tx = |n: usize,
                       valid_until: Timestamp,
                       grant_ids: &mut Vec<TxHash>|
     -> anyhow::Result<SignedTransaction> {
        nonce += 1;
        let p = n % patients.len();
        let patient_key = &patients[p];
        let patient = PatientId::from_key(chain.hash(), &patient_key.public_key());
        Ok(if n < patients.len() {
            sign(
                &chain,
                patient_key,
                Signer::Patient(patient),
                0,
                valid_until,
                Payload::RegisterPatient,
            )
        } else if n < 2 * patients.len() {
            let terms = GrantTerms {
                patient,
                grantee: Grantee::Institution(second.clone()),
                categories: BoundedVec::new(vec![Category::LabReports])
                    .map_err(|_| anyhow::anyhow!("categories"))?,
                holders: Holders::Listed(
                    BoundedVec::new(vec![first.clone()]).map_err(|_| anyhow::anyhow!("holders"))?,
                ),
                purpose: Purpose::Treatment,
                not_before: start,
                expires_at: start.plus_days(365),
                records_from: None,
                records_until: None,
                sensitive_included: BoundedVec::default(),
                notice_hash: chain.hash().tagged_hash(b"notice", &[]),
            };
            let tx = sign(
                &chain,
                patient_key,
                Signer::Patient(patient),
                1,
                valid_until,
                Payload::Grant(terms),
            );
            grant_ids.push(tx.id(&chain));
            tx
        } else {
            sign(
                &chain,
                doctor.secret(),
                Signer::Practitioner(doctor_id),
                nonce,
                valid_until,
                Payload::AccessRequest {
                    grant: grant_ids[p],
                    holder: first.clone(),
                    categories: BoundedVec::new(vec![Category::LabReports]).unwrap_or_default(),
                    purpose: Purpose::Treatment,
                },
            )
        })
    };

    eprintln!(
        "building an archive of {} transactions in blocks of {}",
        options.transactions, options.block_size
    );
    let building = Instant::now();
    let mut ledger = genesis.memory_ledger()?;
    // The builder needs only the newest state, like the replay.
    ledger.keep_latest_only();
    let mut blocks = Vec::new();
    while made < options.transactions {
        let count = options.block_size.min(options.transactions - made);
        // Registrations and grants must commit before what depends on them.
        let boundary = if made < options.patients {
            options.patients
        } else if made < 2 * options.patients {
            2 * options.patients
        } else {
            usize::MAX
        };
        let count = count.min(boundary - made);
        let height = ledger.height() + 1;
        let time = Timestamp(start.0 + height * 1000);
        // Half the validity window: with a block a second, each block's ids
        // leave the state half a window's blocks later (R1).
        let valid_until = Timestamp(time.0 + options.tx_validity_window_ms / 2);
        let mut txs = Vec::with_capacity(count);
        for n in made..made + count {
            txs.push(next_tx(n, valid_until, &mut grant_ids)?);
        }
        made += count;
        let (header, execution) = ledger.execute(time, &proposer, txs.clone())?;
        let block = Block {
            header: header.clone(),
            transactions: BoundedVec::new(txs).map_err(|_| anyhow::anyhow!("block too large"))?,
        };
        let mut signatures = Vec::new();
        for key in &validators {
            let validator = ConsensusAddress::of_key(chain.hash(), &key.public_key());
            let body = VoteBody {
                kind: VoteKind::Precommit,
                height,
                round: 0,
                block: Some(header.hash(chain.hash())),
                validator,
            };
            signatures.push(CommitSignature {
                validator,
                signature: key.sign(&vote_message(&chain, &body)),
            });
        }
        let certificate = CommitCertificate {
            height,
            round: 0,
            block: header.hash(chain.hash()),
            signatures: BoundedVec::new(signatures).map_err(|_| anyhow::anyhow!("signatures"))?,
        };
        blocks.push(ArchivedBlock {
            height,
            block: block.to_bytes(),
            certificate: to_bytes(&certificate),
            audit_entries: execution.audit_entries,
        });
    }
    let header = medledger_audit::archive::ArchiveHeader {
        chain_id: chain.id.as_str().to_string(),
        genesis_hash: genesis.hash(),
        height: ledger.height(),
    };
    drop(ledger);
    let archive = dir.join("bench.archive");
    write_archive(&archive, &header, blocks.into_iter().map(Ok))?;
    let build_seconds = building.elapsed().as_secs_f64();
    let archive_bytes = std::fs::metadata(&archive)?.len();

    eprintln!("replaying it");
    let source = ArchiveSource::open(&archive)?;
    let total = source.header.height;
    // The builder's peak is not the replay's: start the peak afresh
    // (Linux: writing 5 to clear_refs resets VmHWM).
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let state_dir = dir.join("replay-state");
    let mut replay = if options.on_disk {
        let _ = std::fs::remove_dir_all(&state_dir);
        Replay::on_disk(&genesis, &state_dir, options.compression)?
    } else {
        Replay::new(&genesis)?
    };
    let mut progress = Progress::new(Some(total));
    replay.run(source, |_, header, _, transactions| {
        progress.tick(header.height, transactions);
    })?;
    let seconds = progress.seconds();
    let rate = replay.transactions as f64 / seconds;
    println!("auditor's replay from an archive (one run, this machine)");
    println!("  {:<44} {:>14}", "figure", "value");
    println!("  {:<44} {:>14}", "transactions", replay.transactions);
    println!("  {:<44} {:>14}", "blocks", total);
    println!(
        "  {:<44} {:>14.0}",
        "replayed transactions per second", rate
    );
    println!("  {:<44} {:>14.1}", "replay seconds", seconds);
    println!(
        "  {:<44} {:>14.1}",
        "archive MB (gzip)",
        archive_bytes as f64 / 1e6
    );
    println!(
        "  {:<44} {:>14.1}",
        "building the archive, seconds", build_seconds
    );
    println!(
        "  {:<44} {:>14}",
        "replayed state kept",
        if options.on_disk {
            "RocksDB"
        } else {
            "in memory"
        }
    );
    if let medledger_audit::state::ReplayState::Disk(disk) = replay.state() {
        println!(
            "  {:<44} {:>14}",
            "store compression",
            options.compression.name()
        );
        println!(
            "  {:<44} {:>14.1}",
            "replayed state on disk (MB)",
            super::bench::dir_bytes(&state_dir) as f64 / 1e6
        );
        // Settled: memtables flushed, every family compacted to its last
        // level (what the disk holds once RocksDB has caught up).
        let compacting = std::time::Instant::now();
        disk.store().compact()?;
        println!(
            "  {:<44} {:>14.1}",
            "on disk after full compaction (MB)",
            super::bench::dir_bytes(&state_dir) as f64 / 1e6
        );
        println!(
            "  {:<44} {:>14.1}",
            "full compaction, seconds",
            compacting.elapsed().as_secs_f64()
        );
    }
    // Keys in the newest state: what stays live (R1 deletes ids older than
    // their window; records stay).
    let state_keys = match replay.state() {
        medledger_audit::state::ReplayState::Memory(ledger) => {
            Some(ledger.store().latest_values()?.len())
        }
        medledger_audit::state::ReplayState::Disk(_) => None,
    };
    println!(
        "  {:<44} {:>14}",
        "tx validity window (ms)", options.tx_validity_window_ms
    );
    println!(
        "  {:<44} {:>14}",
        "practitioner licences", options.practitioner_licences
    );
    println!(
        "  {:<44} {:>14}",
        "crypto suite",
        options.crypto_suite.name()
    );
    if let Some(keys) = state_keys {
        println!("  {:<44} {:>14}", "keys in the replayed state", keys);
    }
    println!(
        "  {:<44} {:>14.0}",
        if peak_reset {
            "peak RSS during the replay (MiB)"
        } else {
            "peak RSS of this process (MiB)"
        },
        peak_rss_mib(std::process::id()).unwrap_or(f64::NAN)
    );
    println!(
        "{}",
        json!({
            "bench": "replay",
            "transactions": replay.transactions,
            "blocks": total,
            "tx_per_second": rate,
            "seconds": seconds,
            "archive_bytes": archive_bytes,
            "tx_validity_window_ms": options.tx_validity_window_ms,
            "practitioner_licences": options.practitioner_licences,
            "crypto_suite": options.crypto_suite.name(),
            "state_keys": state_keys,
        })
    );
    Ok(())
}
