//! A running medledger node, as a library: the ledger application that
//! consensus drives, the mempool, the HTTP API and the records gateway, and
//! [`run`], which wires them to a store and to consensus.
//!
//! - [`config`]: `config.toml` of a node's home directory.
//! - [`app`]: the consensus application — proposes, checks and commits blocks.
//! - [`mempool`]: admission of transactions, in lanes, fair per signer.
//! - [`shared`]: what the application, the API and the gateway share.
//! - [`http`]: the HTTP API (`/v1/...`) and the patient app's files.
//! - [`gateway`]: the records gateway between member nodes; it reaches the
//!   ledger through [`gateway::Ledger`] only.
//! - [`metrics`], [`disk`], [`clock`]: `/metrics`, the free-disk-space guard
//!   and this node's clock.
//! - [`faults`]: misbehaviour for tests, only with the `fault-injection` feature.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod clock;
pub mod config;
pub mod disk;
pub mod faults;
pub mod fuzz;
pub mod gateway;
pub mod http;
pub mod mempool;
pub mod metrics;
pub mod shared;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use medledger_client_sdk::KeyFile;
use medledger_consensus::{Settings, Telemetry, Timeouts};
use medledger_contracts::crypto::CryptoSuite;
use medledger_contracts::types::InstitutionId;
use medledger_genesis::GenesisFile;
use medledger_store::Store;
use tokio::sync::mpsc;
use tracing::{debug, info};

use self::app::LedgerApp;
use self::config::NodeConfig;
use self::mempool::{Limits, Mempool};
use self::shared::Shared;

/// Checks the node key against the one the ledger names for this
/// institution in the newest committed state (genesis's, until a rotation,
/// R4.4, replaces it). Another member's current node key is refused: the
/// node would vote and serve as that member. Any other key only warns, at
/// every height: the institution may have rotated its key in blocks this
/// store has not synced yet (the node-key drill, even from an empty data
/// directory), and a node whose key the ledger does not name cannot vote —
/// its votes do not count until a block names its key.
fn check_node_key(
    store: &Store,
    institution: &InstitutionId,
    key: &KeyFile,
    key_path: &Path,
    transport: &medledger_contracts::crypto::PublicKey,
    founding: Option<&medledger_contracts::transaction::InstitutionSpec>,
) -> anyhow::Result<()> {
    use medledger_contracts::encoding::from_bytes;
    use medledger_contracts::records::InstitutionRecord;
    use medledger_contracts::state::StateKey;

    let height = store.height()?.unwrap_or(0);
    // Every member's record: the keys of one state-key variant share its
    // first byte.
    let sample = StateKey::Institution(institution.clone()).to_bytes();
    let prefix = sample.get(..1).unwrap_or_default();
    let mut own = None;
    let mut own_transport = None;
    for (raw_key, value) in store.latest_with_prefix(prefix)? {
        let Ok(StateKey::Institution(id)) = from_bytes::<StateKey>(&raw_key, 1024) else {
            continue;
        };
        let record: InstitutionRecord = from_bytes(&value, 64 * 1024)?;
        if id == *institution {
            own = Some(record.spec.node_key);
            own_transport = Some(*record.spec.transport_identity());
        } else if record.spec.node_key == key.public_key() {
            bail!(
                "{} is {id}'s node key, not {institution}'s: a node runs with its own institution's key",
                key_path.display()
            );
        } else if record.spec.transport_identity() == transport {
            // On the network this node would stand for that member.
            bail!(
                "the transport key is {id}'s, not {institution}'s: a node runs with its own institution's key"
            );
        }
    }
    let expected_transport = own_transport.or(founding.map(|spec| *spec.transport_identity()));
    if let Some(expected) = expected_transport
        && expected != *transport
    {
        tracing::warn!(
            %institution,
            height,
            expected = %expected.to_text(),
            key = %transport.to_text(),
            "this is not the transport key the ledger names for this institution at this store's newest height: \
             members' nodes will not connect to this one until a block names it"
        );
    }
    let expected = own.or(founding.map(|spec| spec.node_key));
    if let Some(expected) = expected
        && expected != key.public_key()
    {
        tracing::warn!(
            %institution,
            height,
            key_file = %key_path.display(),
            expected = %expected.to_text(),
            key = %key.public_key().to_text(),
            "this is not the node key the ledger names for this institution at this store's newest height: \
             the node follows the ledger but its votes do not count until a block names this key (a rotation \
             not synced yet); if the institution did not rotate its node key, the key file is wrong"
        );
    }
    Ok(())
}

/// The node's transport key: its own file on a chain whose nodes have one
/// (`sm2-sm3`, where it must be Ed25519), else the node key itself.
fn load_transport_key(
    home: &Path,
    config: &NodeConfig,
    suite: CryptoSuite,
    node_key: &KeyFile,
) -> anyhow::Result<medledger_contracts::crypto::SecretKey> {
    if !suite.has_transport_keys() {
        return Ok(node_key.secret().clone());
    }
    let path = home.join(&config.transport_key_file);
    let key = KeyFile::load(&path).with_context(|| {
        format!(
            "a node on a chain of suite {} needs its transport key (transport_key_file)",
            suite.name()
        )
    })?;
    if key.secret().ed25519_seed().is_none() {
        bail!(
            "{} must hold an Ed25519 key: it is the node's libp2p identity, and libp2p's handshake has no SM2",
            path.display()
        );
    }
    Ok(key.secret().clone())
}

/// Runs the node whose home directory is `home` until it fails or is stopped.
pub fn run(home: &Path) -> anyhow::Result<()> {
    init_logging();
    // Before anything is opened: a node asked for a fault it cannot inject
    // changes nothing.
    let faults = faults::FaultPlan::from_env().map_err(anyhow::Error::msg)?;
    let config = NodeConfig::load(home)?;
    let genesis_path = home.join(&config.genesis_file);
    let genesis = GenesisFile::read(&genesis_path)?
        .validate()
        .with_context(|| format!("{} is not a valid genesis", genesis_path.display()))?;
    let key_path = home.join(&config.node_key_file);
    let key = KeyFile::load(&key_path)?;
    let transport_key = load_transport_key(home, &config, genesis.crypto_suite, &key)?;
    let institution = InstitutionId::new(&config.institution)
        .map_err(|e| anyhow::anyhow!("config `institution`: {e}"))?;
    let founding = genesis.institutions.iter().find(|i| i.id == institution);
    if founding.is_none() {
        // An institution applying to join: its node follows the ledger
        // as soon as the members admit it (they connect only to members).
        info!(
            institution = %config.institution,
            "not a founding member in genesis; other nodes accept this one once governance admits it"
        );
    }
    let validator_at_genesis = founding.is_some_and(|spec| spec.voting_power > 0);

    let data = home.join(&config.data_dir);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let min_free = config.min_free_disk_mb.saturating_mul(1 << 20);
    if let Err(why) = disk::enough_free(&data, min_free) {
        eprintln!("medledger node: {why}");
        std::process::exit(disk::EXIT_STORAGE_FAILED);
    }
    disk::watch(data.clone(), min_free);
    let store = Store::open_compressed(
        &data.join("ledger"),
        genesis.crypto_suite.hash_function(),
        config.compression()?,
    )
    .context("opening the ledger store")?;
    let genesis_hash = genesis.hash();
    match store.genesis_hash()? {
        None => {
            let root = store.initialize(genesis_hash, &genesis.initial_state()?)?;
            info!(%root, "initialised the store from genesis");
        }
        Some(hash) if hash == genesis_hash => {}
        Some(hash) => bail!(
            "the store in {} belongs to genesis {hash}, not {genesis_hash}; use a fresh data_dir",
            data.display()
        ),
    }

    check_node_key(
        &store,
        &institution,
        &key,
        &key_path,
        &transport_key.public_key(),
        founding,
    )?;
    for warning in faults.warnings() {
        tracing::warn!("{warning}");
    }
    clock::set_offset_ms(faults.clock_offset_ms);
    let telemetry = Arc::new(Telemetry::default());
    let (gossip_tx, gossip_rx) = mpsc::channel(100_000);
    let gossip = (!config.mempool.gossip_to.is_empty()).then_some(gossip_tx);
    let mempool = Mempool::new(
        genesis.chain(),
        Limits {
            transactions: config.mempool.max_transactions,
            bytes: config.mempool.max_bytes,
            per_signer: config.mempool.max_per_signer,
        },
    );
    let shared = Arc::new(Shared::new(
        genesis.chain(),
        institution.clone(),
        store,
        mempool,
        telemetry.clone(),
        gossip,
    ));
    let settings = Settings {
        chain: genesis.chain(),
        moniker: config.institution.clone(),
        node_key: key.secret().clone(),
        transport_key: transport_key.clone(),
        wal_dir: data.join("wal"),
        listen: config.p2p.listen.clone(),
        peers: config.p2p.peers.clone(),
        timeouts: Timeouts {
            propose: Duration::from_millis(genesis.consensus.propose_timeout_ms),
            prevote: Duration::from_millis(genesis.consensus.prevote_timeout_ms),
            precommit: Duration::from_millis(genesis.consensus.precommit_timeout_ms),
        },
        empty_block_wait: Duration::from_millis(config.consensus.empty_block_wait_ms),
        block_interval: Duration::from_millis(config.consensus.block_interval_ms),
        block_capacity: genesis.consensus.block_transactions_max as usize,
        block_bytes_max: usize::try_from(genesis.consensus.block_bytes_max)
            .context("consensus.block_bytes_max does not fit this machine's memory")?,
    };
    let app = LedgerApp::new(
        shared.clone(),
        genesis_hash,
        genesis.genesis_time,
        genesis.consensus.clone(),
        &faults,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let http_addr: std::net::SocketAddr = config
            .http
            .listen
            .parse()
            .with_context(|| format!("http listen address {:?}", config.http.listen))?;
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("binding the HTTP API to {http_addr}"))?;
        info!(%http_addr, institution = %config.institution, validator_at_genesis, "HTTP API listening");
        let relay = start_gateway(home, &config, &shared, key.secret(), &transport_key, &faults)?;
        let api = Arc::new(http::Api::new(
            shared.clone(),
            http::AuthLimits {
                per_key_per_second: config.http.requests_per_second_per_key,
                per_address_per_second: config.http.requests_per_second_per_address,
                window_ms: config.http.signature_window_ms,
            },
            relay,
        ));
        let server = warp::serve(http::routes(api)).incoming(listener);
        tokio::spawn(server.run());
        tokio::spawn(gossip_loop(
            gossip_rx,
            config.mempool.gossip_to.clone(),
            GossipSigner {
                chain: genesis.chain(),
                institution: institution.clone(),
                key: key.secret().clone(),
            },
        ));
        tokio::select! {
            result = medledger_consensus::run(settings, app, telemetry) => {
                // A full disk can fail the consensus WAL before the watcher
                // (once a second) sees it: that is a storage stop too.
                if let (Err(e), Err(low)) = (&result, disk::enough_free(&data, min_free)) {
                    eprintln!("medledger node: consensus stopped ({e}): {low}");
                    std::process::exit(disk::EXIT_STORAGE_FAILED);
                }
                result.map_err(|e| anyhow::anyhow!("consensus stopped: {e}"))
            }
            _ = tokio::signal::ctrl_c() => {
                info!("stopping on Ctrl-C");
                Ok(())
            }
        }
    })
}

/// Starts the records gateway if configured: the holder answers other
/// members' gateways from `records_dir`; the relay serves this node's
/// practitioners' fetches.
fn start_gateway(
    home: &Path,
    config: &NodeConfig,
    shared: &Arc<Shared>,
    key: &medledger_contracts::crypto::SecretKey,
    transport_key: &medledger_contracts::crypto::SecretKey,
    faults: &faults::FaultPlan,
) -> anyhow::Result<Option<crate::gateway::Relay>> {
    if config.gateway.listen.is_empty() {
        info!("records gateway off (no [gateway] listen address)");
        return Ok(None);
    }
    let listen = config
        .gateway
        .listen
        .parse()
        .with_context(|| format!("gateway listen address {:?}", config.gateway.listen))?;
    let records_dir = home.join(&config.gateway.records_dir);
    let source: Arc<dyn crate::gateway::RecordSource> = if config.gateway.fhir_base.is_empty() {
        Arc::new(crate::gateway::DirectorySource::new(records_dir))
    } else {
        info!(base = %config.gateway.fhir_base, "records are read from a FHIR server");
        Arc::new(crate::gateway::fhir::FhirSource::new(
            &config.gateway.fhir_base,
            &config.gateway.fhir_identifier_system,
            records_dir,
        )?)
    };
    let holder = Arc::new(
        crate::gateway::holder::Holder::new(shared.clone(), source, key.clone())
            .with_faults(faults),
    );
    let own_peer = transport_key
        .ed25519_seed()
        .ok_or_else(|| anyhow::anyhow!("a node's transport key must be Ed25519"))
        .and_then(|seed| {
            libp2p::identity::Keypair::ed25519_from_bytes(seed).map_err(anyhow::Error::from)
        })
        .map(|k| k.public().to_peer_id())
        .map_err(|e| anyhow::anyhow!("node key as libp2p key: {e}"))?;
    let gateway = crate::gateway::Gateway::start(transport_key, listen, holder.clone())
        .map_err(anyhow::Error::msg)?;
    let mut peers = std::collections::BTreeMap::new();
    for (institution, address) in &config.gateway.peers {
        peers.insert(
            institution.clone(),
            crate::gateway::parse_peer_address(address)?,
        );
    }
    Ok(Some(crate::gateway::Relay {
        gateway,
        peers,
        local: (config.institution.clone(), own_peer, holder),
    }))
}

fn init_logging() {
    // Consensus and libp2p are chatty at info; medledger's own lines are what
    // an operator reads. RUST_LOG overrides.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,medledger=info,medledger_consensus=info")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// How this node signs its gossip: as its institution's node.
struct GossipSigner {
    chain: medledger_contracts::types::Chain,
    institution: InstitutionId,
    key: medledger_contracts::crypto::SecretKey,
}

/// Gossip peers' institutions by base URL, as their `/v1/status` said.
type PeerInstitutions = Arc<std::sync::Mutex<std::collections::HashMap<String, InstitutionId>>>;

/// The institution of the node at `base`, from its `/v1/status` (asked once).
async fn peer_institution(
    client: &reqwest::Client,
    base: &str,
    known: &PeerInstitutions,
) -> Option<InstitutionId> {
    if let Some(id) = known.lock().unwrap_or_else(|p| p.into_inner()).get(base) {
        return Some(id.clone());
    }
    let status: serde_json::Value = client
        .get(format!("{base}/v1/status"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let id = InstitutionId::new(status["institution"].as_str()?).ok()?;
    known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(base.to_string(), id.clone());
    Some(id)
}

/// Most transactions a node gossips in one request.
pub const GOSSIP_BATCH_MAX: usize = 2_000;

/// How long a node gathers client transactions before gossiping them:
/// short beside a block's time, long enough that under load a request
/// carries dozens of transactions rather than a handful.
const GOSSIP_LINGER: Duration = Duration::from_millis(50);

/// Passes client-submitted transactions on to the other nodes in batches,
/// each request signed with the node key (peers accept gossip only from members).
async fn gossip_loop(mut rx: mpsc::Receiver<Vec<u8>>, peers: Vec<String>, signer: GossipSigner) {
    let signer = Arc::new(signer);
    let institutions: PeerInstitutions = Arc::default();
    let mut nonce: u64 = {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        u64::from_le_bytes(seed)
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "gossip disabled: no HTTP client");
            return;
        }
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Gather whatever else arrives meanwhile: each request costs every
        // peer an HTTP exchange and a signature check on its authorization,
        // and a larger batch verifies more cheaply per signature.
        tokio::time::sleep(GOSSIP_LINGER).await;
        while batch.len() < GOSSIP_BATCH_MAX {
            match rx.try_recv() {
                Ok(tx) => batch.push(tx),
                Err(_) => break,
            }
        }
        let body = medledger_contracts::encoding::to_bytes(&batch);
        for peer in &peers {
            let base = peer.trim_end_matches('/').to_string();
            nonce = nonce.wrapping_add(1);
            let (client, body, signer, institutions) = (
                client.clone(),
                body.clone(),
                signer.clone(),
                institutions.clone(),
            );
            tokio::spawn(async move {
                // A signed request names the node it is for (request_auth
                // rule 4): the peer's institution, asked once.
                let Some(node) = peer_institution(&client, &base, &institutions).await else {
                    debug!(%base, "gossip to peer skipped: its institution is not known yet");
                    return;
                };
                let auth = medledger_contracts::request_auth::RequestAuth::sign(
                    &signer.chain,
                    &node,
                    "POST",
                    "/v1/gossip",
                    &body,
                    clock::now(),
                    nonce,
                    medledger_contracts::transaction::Signer::InstitutionNode(
                        signer.institution.clone(),
                    ),
                    &signer.key,
                );
                let header = format!(
                    "Medledger {}",
                    hex::encode(medledger_contracts::encoding::to_bytes(&auth))
                );
                let url = format!("{base}/v1/gossip");
                if let Err(e) = client
                    .post(&url)
                    .header("authorization", header)
                    .body(body)
                    .send()
                    .await
                {
                    debug!(%url, error = %e, "gossip to peer failed");
                }
            });
        }
    }
}
