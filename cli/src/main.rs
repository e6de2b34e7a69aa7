//! `medledger`: the one binary of a medledger node and its tools — the
//! command line only; each command calls into the libraries.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod audit;
mod bench;
mod bench_crypto;
mod bench_records;
mod bench_replay;
mod bench_verify;
mod demo;
mod genesis;
mod gov;
mod keys;
mod licence;
mod people;
mod socket_bytes;
mod testnet;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// medledger: patient consent and access audit on a permissioned ledger.
#[derive(Parser, Debug)]
#[command(name = "medledger", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, check and show genesis files.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// Create and inspect key files.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Start a local consortium of four validator processes and run the
    /// consent story on it (grant, request, release, revocation, refusal, audit).
    Demo {
        /// Where to put the consortium's files (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The crypto suite: `ed25519-sha256`, or `sm2-sm3` (SM2 signatures,
        /// SM3 hashes, records sealed with SM2, HKDF-SM3 and SM4-GCM).
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
    /// Measure a local consortium (four validators unless `--validators`):
    /// committed transactions per second, submit-to-commit latency, disk,
    /// CPU, memory and bytes between nodes. Prints a table and a JSON line.
    Bench {
        /// Where to put the consortium (default: a temporary directory, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Length of the throughput phase, in seconds.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Simulated patients.
        #[arg(long, default_value_t = 2_000)]
        patients: usize,
        /// HTTP requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Transactions per HTTP request in the throughput phases: 1 sends
        /// each with `POST /v1/tx`, more send them with `POST /v1/txs`
        /// (1 to 1,000).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1000))]
        batch: u16,
        /// Validators (4 to 64): the example's seven members, then generated
        /// district hospitals.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(4..=64))]
        validators: u16,
        /// The crypto suite: `ed25519-sha256`, or `sm2-sm3`.
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
        /// Every node's store codec: `none`, `lz4` (a node's default) or
        /// `zstd` (its `storage_compression`).
        #[arg(long, value_parser = parse_compression)]
        compression: Option<medledger_store::Compression>,
    },
    /// Measure the SDK's trustless grant checks (`verify_grant`) per second
    /// and their latency against a node of a local consortium under load.
    BenchVerify {
        /// Where to put the consortium (default: a temporary directory, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Length of the measured phase, in seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Grants made at set-up and verified at random.
        #[arg(long, default_value_t = 256)]
        grants: usize,
        /// Verifications in flight at once (4 to 5 is where this machine
        /// meets both targets, 5,000/s and p99 under 5 ms; more raises the
        /// rate and the tail together).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Background load on the other nodes, in registrations per second.
        #[arg(long, default_value_t = 200)]
        load_rate: u64,
        /// The crypto suite: `ed25519-sha256`, or `sm2-sm3`.
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
    /// Measure the crypto suites' primitives side by side on one core:
    /// Ed25519 and SM2 signing and verifying, SHA-256 and SM3, and sealing
    /// record chunks with HPKE's ChaCha20-Poly1305 and with SM4-GCM.
    BenchCrypto {
        /// Timed rounds per row (the median is printed).
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// MiB hashed or sealed per round.
        #[arg(long, default_value_t = 16)]
        mib: usize,
    },
    /// Measure records through the gateways: small resources per second and
    /// MB/s, a large study's MB/s, and memory growth during it.
    BenchRecords {
        /// Where to put the consortium (default: a temporary directory, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Small resources per fetch (1-255).
        #[arg(long, default_value_t = 200)]
        small: usize,
        /// Size of each small resource, in KiB.
        #[arg(long, default_value_t = 10)]
        small_kib: usize,
        /// Fetches of the small set.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Size of the large study, in MiB.
        #[arg(long, default_value_t = 100)]
        large_mib: usize,
        /// The crypto suite: `ed25519-sha256` (HPKE sealing), or `sm2-sm3`
        /// (SM2 key agreement, HKDF-SM3, SM4-GCM; SM3 content hashes).
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
    /// Write a stopped node's ledger (blocks, certificates, audit entries)
    /// to a compressed, self-contained archive an auditor replays offline.
    Export {
        /// The node's data directory (stop the node first).
        #[arg(long)]
        data: PathBuf,
        /// The consortium's genesis file.
        #[arg(long)]
        genesis: PathBuf,
        /// The archive to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Audit the ledger, trusting only the genesis file.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Measure the auditor's replay: transactions per second from an
    /// archive (built here, with certificates signed by the testnet genesis's
    /// validators).
    BenchReplay {
        /// Where to put the genesis and archive (default: a temporary directory, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Transactions in the archive.
        #[arg(long, default_value_t = 1_000_000)]
        transactions: usize,
        /// Transactions per block.
        #[arg(long, default_value_t = 2_000)]
        block_size: usize,
        /// Patients (each registers and grants; the rest are access requests).
        #[arg(long, default_value_t = 10_000)]
        patients: usize,
        /// Replay into a RocksDB store instead of memory (`audit replay --state-dir`).
        #[arg(long)]
        on_disk: bool,
        /// With --on-disk: how the store compresses its files, `none`,
        /// `lz4` (the default, as a node's) or `zstd` (a node's `storage_compression`).
        #[arg(long, requires = "on_disk", value_parser = parse_compression)]
        compression: Option<medledger_store::Compression>,
        /// The genesis `tx_validity_window_ms` (rule R1); each transaction is
        /// valid for half of it and blocks are a second apart, so a block's
        /// ids leave the state about half a window later. The largest
        /// allowed (604800000, 7 days) keeps every id of a shorter archive.
        #[arg(long, default_value_t = medledger_testnet::TX_VALIDITY_WINDOW_MS)]
        tx_validity_window_ms: u64,
        /// The genesis `practitioner_licences` (rule R4.14): `attested`, as
        /// in the example (each access request also reads the requester's
        /// licence and its attester), or `declared`.
        #[arg(long, default_value = "attested")]
        practitioner_licences: String,
        /// The chain's crypto suite: `ed25519-sha256` or `sm2-sm3` (SM2
        /// signatures, SM3 hashes, records sealed with SM4-GCM; every
        /// institution then also needs an Ed25519 `transport_key`).
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
    /// Run a node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// A hospital's records for the gateway.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// A patient's tasks against a node: register, grant, revoke, answer
    /// requests, appoint a guardian or proxy, read the history.
    Patient {
        /// Node, genesis, key, output.
        #[command(flatten)]
        connection: people::Connection,
        /// The task.
        #[command(subcommand)]
        command: people::PatientCommand,
    },
    /// A hospital's tasks against a node: register practitioners, ask for
    /// consent, check a grant with proofs, request access.
    Hospital {
        /// Node, genesis, key, output.
        #[command(flatten)]
        connection: people::Connection,
        /// Sign with this institution's admin key (the --key file) instead of as a practitioner.
        #[arg(long)]
        as_institution: Option<String>,
        /// The task.
        #[command(subcommand)]
        command: people::HospitalCommand,
    },
    /// A regulator's review of an emergency access (rule R7.4), signed with
    /// its admin key; the review record stays with the regulator, its hash
    /// goes on the ledger.
    Review {
        /// Node, genesis, key (the regulator's admin key), output.
        #[command(flatten)]
        connection: people::Connection,
        /// The regulator institution.
        #[arg(long)]
        as_institution: String,
        /// The emergency access (its request id).
        #[arg(long)]
        access: String,
        /// justified or unjustified.
        #[arg(long)]
        finding: String,
        /// The review record (a file; only its hash goes on the ledger).
        #[arg(long)]
        record: PathBuf,
    },
    /// Governance by the validators' institutions (admin key): propose a
    /// change to the consortium, vote on it, see where it stands.
    Gov {
        /// Node, genesis, key (your institution's admin key), output.
        #[command(flatten)]
        connection: people::Connection,
        /// Your institution (a validator's).
        #[arg(long)]
        as_institution: String,
        /// The task.
        #[command(subcommand)]
        command: gov::GovCommand,
    },
    /// A regulator's practitioner licences (rules R4.12–R4.14): attest,
    /// suspend, reinstate, revoke (signed with its admin key), or look one up.
    Licence {
        /// Node, genesis, key (the regulator's admin key), output.
        #[command(flatten)]
        connection: people::Connection,
        /// The regulator institution (not needed by `show`).
        #[arg(long)]
        as_institution: Option<String>,
        /// The task.
        #[command(subcommand)]
        command: licence::LicenceCommand,
    },
    /// Make and run a local consortium of node processes on 127.0.0.1.
    Testnet {
        /// Directory for genesis, keys and one home per node (reused if it holds a testnet).
        #[arg(long)]
        dir: PathBuf,
        /// Validators: the example consortium's members first (its four
        /// validators, then the others), then generated district hospitals.
        /// Validators and observers together at most 64.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Members that run a node but do not vote.
        #[arg(long, default_value_t = 0)]
        observers: usize,
        /// Institutions outside genesis, with keys, a home and a peer address,
        /// to rehearse admission by governance (their nodes connect once admitted).
        #[arg(long, default_value_t = 0)]
        spares: usize,
        /// Chain id.
        #[arg(long, default_value = "medledger-testnet")]
        chain_id: String,
        /// Only write the files; do not start the nodes.
        #[arg(long)]
        init_only: bool,
        /// The crypto suite: `ed25519-sha256`, or `sm2-sm3` (SM2 keys, SM3
        /// hashes, an Ed25519 transport key per node).
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Replay from genesis: hash chain, certificates against each height's
    /// validator set, every signature, re-execution with every root and
    /// audit entry compared. Exits non-zero at the first failed check.
    Replay {
        /// The genesis file (the only thing trusted).
        #[arg(long)]
        genesis: PathBuf,
        /// A stopped node's data directory.
        #[arg(long, conflicts_with_all = ["archive", "from"], required_unless_present_any = ["archive", "from"])]
        data: Option<PathBuf>,
        /// An archive written by `medledger export`.
        #[arg(long, conflicts_with = "from")]
        archive: Option<PathBuf>,
        /// A running node's API (read with --key and --as-institution).
        #[arg(long, requires_all = ["key", "as_institution"])]
        from: Option<String>,
        /// With --from: the institution's admin key file.
        #[arg(long)]
        key: Option<PathBuf>,
        /// With --from: the institution whose admin key that is.
        #[arg(long)]
        as_institution: Option<String>,
        /// Write reports (JSON, CSV, HTML) into this directory.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also write this patient's report (repeatable).
        #[arg(long = "patient")]
        patients: Vec<String>,
        /// Keep a checkpoint in this file (every minute and at the end) and,
        /// if it already exists, resume from it.
        #[arg(long, conflicts_with = "state_dir")]
        checkpoint: Option<PathBuf>,
        /// Keep the replayed state in a RocksDB store in this directory
        /// instead of memory (bounded memory for any ledger length); if it
        /// already holds part of this replay, resume from there.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum RecordsCommand {
    /// Link a hospital record number to a patient's ledger id, with the
    /// patient's signature accepting it (the app's "link at a hospital"
    /// screen, or `records sign-link`). Kept in the node's records
    /// directory, never on the ledger; the gateway serves records only
    /// under a link the patient's current key signed.
    Link {
        /// The records directory (the node's `[gateway] records_dir`).
        #[arg(long)]
        dir: PathBuf,
        /// The hospital's own record number for the patient.
        #[arg(long)]
        record_number: String,
        /// The patient's id (64 hex).
        #[arg(long)]
        patient: String,
        /// The patient's signature over the link: 128 hex digits in either
        /// case (the app's QR code holds them in uppercase), spaces allowed.
        #[arg(long)]
        signature: String,
    },
    /// As a patient, sign a hospital's record number as yours: prints the
    /// signature the desk gives `records link`.
    SignLink {
        /// Your patient key file.
        #[arg(long)]
        key: PathBuf,
        /// The consortium's genesis file (names the chain).
        #[arg(long)]
        genesis: PathBuf,
        /// The hospital (its institution id).
        #[arg(long)]
        hospital: String,
        /// The record number the hospital showed you.
        #[arg(long)]
        record_number: String,
    },
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Run the node whose home directory holds config.toml.
    Run {
        /// The node's home directory.
        #[arg(long)]
        home: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum GenesisCommand {
    /// Make a new consortium (the example city layout) with fresh keys.
    New {
        /// Directory to write genesis.json and keys/ into (created; must not hold a genesis.json).
        #[arg(long)]
        out: PathBuf,
        /// Chain id.
        #[arg(long, default_value = medledger_genesis::example::EXAMPLE_CHAIN_ID)]
        chain_id: String,
        /// Use the published, deterministic example keys instead of fresh ones
        /// (regenerates genesis/examples/city.json; never for a real chain).
        #[arg(long)]
        published_example_keys: bool,
        /// The crypto suite: `ed25519-sha256`, or `sm2-sm3` (SM2 keys, SM3
        /// hashes, and an Ed25519 transport key per node).
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
    /// Validate a genesis file and print its hash.
    Check {
        /// The genesis file.
        file: PathBuf,
    },
    /// Print a genesis file's consortium as a table.
    Show {
        /// The genesis file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Make a new key file (mode 0600).
    New {
        /// Where to write it (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Whose key: `patient` or `practitioner` (prints that id first).
        #[arg(long, default_value = "patient")]
        role: String,
        /// The chain's crypto suite: an Ed25519 key for `ed25519-sha256`,
        /// an SM2 key for `sm2-sm3`.
        #[arg(long, default_value = "ed25519-sha256")]
        crypto_suite: String,
    },
    /// Show a key file's public key and the ids it would have.
    Show {
        /// The key file.
        file: PathBuf,
    },
    /// Replace a key on the ledger (rule R4.4), signed with the current
    /// one (--key): a patient's or practitioner's own key, an institution's
    /// admin key (--as-institution), or its node key (--as-institution
    /// --node-key, signed with the admin key). The new key signs its consent.
    Rotate {
        /// Node, genesis, the current key, output.
        #[command(flatten)]
        connection: people::Connection,
        /// Sign as this institution's administrators (--key is its admin key).
        #[arg(long, conflicts_with_all = ["as_practitioner", "as_patient"])]
        as_institution: Option<String>,
        /// Rotate the institution's node key instead of its admin key.
        #[arg(long, requires = "as_institution", conflicts_with = "transport_key")]
        node_key: bool,
        /// Rotate the institution's transport key (its node's Ed25519 network
        /// identity on an sm2-sm3 chain) instead of its admin key.
        #[arg(long, requires = "as_institution")]
        transport_key: bool,
        /// Sign as this practitioner (their id stays that of their first key).
        #[arg(long, conflicts_with = "as_patient")]
        as_practitioner: Option<String>,
        /// Sign as this patient (default: the id of --key, a first key).
        #[arg(long)]
        as_patient: Option<String>,
        /// The new key file (`medledger keys new`); keep it, the old one stops working.
        #[arg(long)]
        new_key: PathBuf,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Genesis(GenesisCommand::New {
            out,
            chain_id,
            published_example_keys,
            crypto_suite,
        }) => genesis::new(&out, &chain_id, published_example_keys, &crypto_suite),
        Command::Genesis(GenesisCommand::Check { file }) => genesis::check(&file),
        Command::Genesis(GenesisCommand::Show { file }) => genesis::show(&file),
        Command::Keys(KeysCommand::New {
            out,
            role,
            crypto_suite,
        }) => keys::new(&out, &role, &crypto_suite),
        Command::Keys(KeysCommand::Show { file }) => keys::show(&file),
        Command::Keys(KeysCommand::Rotate {
            connection,
            as_institution,
            node_key,
            transport_key,
            as_practitioner,
            as_patient,
            new_key,
        }) => keys::rotate(
            connection,
            keys::Signing {
                as_institution,
                node_key,
                transport_key,
                as_practitioner,
                as_patient,
            },
            &new_key,
        ),
        Command::Demo { dir, crypto_suite } => demo::run(
            dir,
            medledger_contracts::crypto::CryptoSuite::from_name(&crypto_suite)?,
        ),
        Command::Bench {
            dir,
            seconds,
            patients,
            concurrency,
            batch,
            validators,
            crypto_suite,
            compression,
        } => bench::run(bench::BenchOptions {
            dir,
            seconds,
            patients,
            concurrency,
            batch: usize::from(batch),
            validators: usize::from(validators),
            suite: medledger_contracts::crypto::CryptoSuite::from_name(&crypto_suite)?,
            compression: compression.unwrap_or_default(),
        }),
        Command::BenchVerify {
            dir,
            seconds,
            grants,
            concurrency,
            load_rate,
            crypto_suite,
        } => bench_verify::run(bench_verify::VerifyBenchOptions {
            dir,
            seconds,
            grants,
            concurrency,
            load_rate,
            suite: medledger_contracts::crypto::CryptoSuite::from_name(&crypto_suite)?,
        }),
        Command::BenchCrypto { rounds, mib } => {
            bench_crypto::run(bench_crypto::CryptoBenchOptions { rounds, mib })
        }
        Command::BenchRecords {
            dir,
            small,
            small_kib,
            rounds,
            large_mib,
            crypto_suite,
        } => bench_records::run(bench_records::RecordsBenchOptions {
            dir,
            small,
            small_kib,
            rounds,
            large_mib,
            suite: medledger_contracts::crypto::CryptoSuite::from_name(&crypto_suite)?,
        }),
        Command::Node(NodeCommand::Run { home }) => medledger_node::run(&home),
        Command::Export { data, genesis, to } => audit::export(&data, &genesis, &to),
        Command::BenchReplay {
            dir,
            transactions,
            block_size,
            patients,
            on_disk,
            compression,
            tx_validity_window_ms,
            practitioner_licences,
            crypto_suite,
        } => bench_replay::run(bench_replay::ReplayBenchOptions {
            crypto_suite: medledger_contracts::crypto::CryptoSuite::from_name(&crypto_suite)?,
            dir,
            transactions,
            block_size,
            patients,
            on_disk,
            compression: compression.unwrap_or_default(),
            tx_validity_window_ms,
            practitioner_licences,
        }),
        Command::Audit(AuditCommand::Replay {
            genesis,
            data,
            archive,
            from,
            key,
            as_institution,
            report,
            patients,
            checkpoint,
            state_dir,
        }) => {
            let source = match (data, archive, from, key, as_institution) {
                (Some(d), ..) => audit::ReplaySource::Data(d),
                (None, Some(a), ..) => audit::ReplaySource::Archive(a),
                (None, None, Some(url), Some(key), Some(institution)) => {
                    audit::ReplaySource::Node {
                        url,
                        key,
                        institution,
                    }
                }
                _ => anyhow::bail!(
                    "give --data DIR, --archive FILE, or --from URL --key FILE --as-institution ID"
                ),
            };
            audit::replay(
                &genesis,
                source,
                report.as_deref(),
                &patients,
                checkpoint.as_deref(),
                state_dir.as_deref(),
            )
        }
        Command::Records(RecordsCommand::Link {
            dir,
            record_number,
            patient,
            signature,
        }) => {
            let patient = medledger_contracts::Hash32::from_hex(&patient)
                .map(medledger_contracts::types::PatientId)
                .map_err(|_| anyhow::anyhow!("--patient must be 64 hex characters"))?;
            let signature =
                // As the app shows it: in groups, to type. Read as Ed25519
                // only to carry its 64 bytes: the links file keeps them
                // without a scheme, which the patient's key gives at each fetch.
                medledger_contracts::crypto::Signature::ed25519_from_hex(
                    &signature.split_whitespace().collect::<String>(),
                )
                .map_err(|_| anyhow::anyhow!("--signature must be 128 hex characters"))?;
            medledger_node::gateway::DirectorySource::link(
                &dir,
                &record_number,
                &patient,
                &signature,
            )?;
            println!(
                "linked record number {record_number} to patient {} (the gateway checks the patient's signature against their current key at each fetch)",
                patient.0.to_hex()
            );
            Ok(())
        }
        Command::Records(RecordsCommand::SignLink {
            key,
            genesis,
            hospital,
            record_number,
        }) => {
            let key = medledger_client_sdk::KeyFile::load(&key)?;
            let genesis = medledger_genesis::GenesisFile::read(&genesis)?.validate()?;
            let hospital = medledger_contracts::types::InstitutionId::new(&hospital)?;
            if !medledger_node::gateway::is_record_number(record_number.trim()) {
                anyhow::bail!("a record number is 1 to 64 letters, digits, '-' and '_'");
            }
            let signature = medledger_client_sdk::tx::record_link_signature(
                &key,
                &genesis.chain(),
                &hospital,
                record_number.trim(),
            );
            println!("{}", signature.to_hex());
            Ok(())
        }
        Command::Patient {
            connection,
            command,
        } => people::patient(connection, command),
        Command::Hospital {
            connection,
            as_institution,
            command,
        } => people::hospital(connection, as_institution, command),
        Command::Gov {
            connection,
            as_institution,
            command,
        } => gov::gov(connection, as_institution, command),
        Command::Licence {
            connection,
            as_institution,
            command,
        } => licence::licence(connection, as_institution, command),
        Command::Review {
            connection,
            as_institution,
            access,
            finding,
            record,
        } => people::review(connection, as_institution, access, finding, record),
        Command::Testnet {
            dir,
            validators,
            observers,
            spares,
            chain_id,
            init_only,
            crypto_suite,
        } => testnet::run(
            &dir,
            testnet::Shape {
                validators,
                observers,
                spares,
                suite: medledger_contracts::crypto::CryptoSuite::from_name(&crypto_suite)?,
            },
            &chain_id,
            init_only,
        ),
    }
}

/// mimalloc rather than the system allocator: executing a block builds and
/// drops tens of thousands of small state-tree nodes, and glibc's malloc and
/// free were about a third of a replay's execution time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--compression`: a store codec's name.
fn parse_compression(name: &str) -> Result<medledger_store::Compression, String> {
    medledger_store::Compression::from_name(name)
        .ok_or_else(|| format!("{name}: expected none, lz4 or zstd"))
}
