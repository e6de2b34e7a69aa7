//! The application message loop: starts Malachite's engine and answers each
//! of its messages by calling the node's [`Application`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig, P2pConfig, ValueSyncConfig,
};
use malachitebft_app_channel::app::consensus::VoteExtensionError;
use malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use malachitebft_app_channel::app::engine::util::streaming::StreamContent;
use malachitebft_app_channel::app::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::codec::Codec;
use malachitebft_app_channel::app::types::core::{
    Context as _, HeightParams, LinearTimeouts, Round, SigningScheme as _, Validity,
};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{Keypair, LocallyProposedValue, ProposedValue};
use malachitebft_app_channel::{
    AppMsg, Channels, ConsensusContext, NetworkContext, NetworkIdentity, NetworkMsg,
    NetworkRequest, RequestContext, Signer as _, SyncContext, WalContext, start_engine,
};
use medledger_contracts::Hash32;
use medledger_contracts::crypto::{CryptoSuite, PublicKey, SecretKey};
use medledger_contracts::encoding::HashFunction;
use medledger_contracts::records::{
    Validator as LedgerValidator, ValidatorSet as LedgerValidators,
};
use medledger_contracts::types::{Chain, InstitutionId};
use tracing::{debug, info, warn};

use crate::codec::{WireCodec, certificate_from_contract, certificate_to_contract};
use crate::context::{Address, BlockId, BlockPart, Ctx, Height, Validator, ValidatorSet};
use crate::reassembly::{Assembled, Outcome, Piece, Streams};
use crate::signing::{LedgerSigning, NodeSigner, NodeVerifier, address_of, block_id};
use crate::{
    Application, Arrival, BlockRefusal, ConsensusError, MemberNode, Settings, SharedTelemetry,
    Timeouts,
};

/// Bytes of block per proposal part: small enough for gossip, large enough
/// that a full block is a handful of messages.
const CHUNK_BYTES: usize = 256 * 1024;
/// Blocks served per sync request.
const SYNC_BATCH_MAX: u64 = 50;

struct NodeConfigImpl {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for NodeConfigImpl {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

/// The libp2p peer id of a node's transport identity (an Ed25519 key), as text.
fn peer_id_of_key(key: &PublicKey) -> Option<String> {
    let ed = libp2p_identity::ed25519::PublicKey::try_from_bytes(key.raw_bytes()).ok()?;
    Some(
        libp2p_identity::PublicKey::from(ed)
            .to_peer_id()
            .to_string(),
    )
}

/// The libp2p identity of a transport key (the node key itself on an
/// `ed25519-sha256` chain).
pub(crate) fn keypair(key: &SecretKey) -> Result<Keypair, ConsensusError> {
    let seed = key.ed25519_seed().ok_or_else(|| {
        ConsensusError::Key(
            "a node's transport key (its libp2p identity) must be Ed25519: libp2p's handshake has no SM2".into(),
        )
    })?;
    Keypair::ed25519_from_bytes(seed)
        .map_err(|e| ConsensusError::Key(format!("node key as libp2p key: {e}")))
}

/// Inbound connections to accept from one address: two for each configured
/// peer at the address most of them share, and never below Malachite's 5.
fn connections_per_address(peers: &[String]) -> usize {
    let mut per_host: HashMap<&str, usize> = HashMap::new();
    for peer in peers {
        // `/ip4/HOST/tcp/PORT/p2p/ID` (or ip6, dns4, dns6, dns): the host is
        // the second component.
        if let Some(host) = peer.split('/').nth(2) {
            *per_host.entry(host).or_insert(0) += 1;
        }
    }
    let most = per_host.values().copied().max().unwrap_or(0);
    (2 * most + 2).max(5)
}

fn linear_timeouts(t: &Timeouts) -> LinearTimeouts {
    // Each further round waits a little longer, so a slow network converges.
    LinearTimeouts {
        propose: t.propose,
        propose_delta: t.propose / 2,
        prevote: t.prevote,
        prevote_delta: t.prevote / 2,
        precommit: t.precommit,
        precommit_delta: t.precommit / 2,
        rebroadcast: t.propose + t.prevote + t.precommit,
        max_timeout: Duration::from_secs(30),
    }
}

fn consensus_validators(
    hash: HashFunction,
    set: &LedgerValidators,
) -> Result<ValidatorSet, ConsensusError> {
    let validators = set
        .validators
        .iter()
        .map(|v| Validator {
            address: address_of(hash, &v.node_key),
            public_key: v.node_key,
            power: v.power,
        })
        .collect();
    Ok(ValidatorSet::new(validators))
}

/// The transport identity of a validator's node: on a chain whose nodes
/// have transport keys, the one its institution's record names (from
/// `members`); otherwise its node key.
fn transport_of(
    suite: CryptoSuite,
    members: &HashMap<InstitutionId, PublicKey>,
    validator: &LedgerValidator,
) -> Option<PublicKey> {
    if suite.has_transport_keys() {
        members.get(&validator.institution).copied()
    } else {
        Some(validator.node_key)
    }
}

/// Whether `publisher` (a libp2p peer id, as text) is the node of the
/// validator whose consensus address is `proposer`.
fn published_by_proposer(
    chain: &Chain,
    members: &HashMap<InstitutionId, PublicKey>,
    set: &LedgerValidators,
    proposer: Address,
    publisher: &str,
) -> bool {
    set.validators
        .iter()
        .find(|v| address_of(chain.hash(), &v.node_key) == proposer)
        .and_then(|v| transport_of(chain.suite, members, v))
        .and_then(|key| peer_id_of_key(&key))
        .is_some_and(|peer| peer == publisher)
}

/// A block this node has in full for the height in progress.
struct KnownBlock {
    height: u64,
    round: Round,
    valid_round: Round,
    proposer: Address,
    bytes: Vec<u8>,
    valid: bool,
}

/// Complete proposals for heights after the one in progress kept at most,
/// until that height starts (a fast proposer's next block can arrive before
/// this node has committed the current one).
const FUTURE_PROPOSALS_MAX: usize = 16;

struct Driver<A: Application> {
    app: A,
    ctx: Ctx,
    /// The chain (its suite says where nodes' transport identities are).
    chain: Chain,
    /// The chain's hash function (consensus addresses).
    hash: HashFunction,
    /// Every member's transport identity, from the committed state as of
    /// the last [`Self::refresh_peers`].
    transports: HashMap<InstitutionId, PublicKey>,
    address: Address,
    timeouts: LinearTimeouts,
    empty_block_wait: Duration,
    block_interval: Duration,
    block_capacity: usize,
    /// When this node last committed a block.
    last_commit: tokio::time::Instant,
    /// Complete proposals for later heights, judged when their height starts.
    future: Vec<Assembled>,
    /// Configured peer addresses with the peer id each names.
    configured_peers: Vec<(String, String)>,
    /// Configured peers dropped because they are not (or no longer) members.
    dropped_peers: std::collections::HashSet<String>,
    /// Blocks proposed or received, by id (cleared as heights commit).
    known: HashMap<BlockId, KnownBlock>,
    /// Our own proposal per (height, round), so asking twice gets the same.
    own: HashMap<(u64, Round), BlockId>,
    /// Proposal streams being received.
    streams: Streams,
    /// The height whose block was committed on `Decided`.
    committed: Option<u64>,
    telemetry: SharedTelemetry,
}

/// Runs consensus until the engine stops.
pub async fn run<A: Application>(
    settings: Settings,
    app: A,
    telemetry: SharedTelemetry,
) -> Result<(), ConsensusError> {
    let ctx = Ctx;
    let public_key = settings.node_key.public_key();
    let hash = settings.chain.hash();
    let address = address_of(hash, &public_key);
    let keypair = keypair(&settings.transport_key)?;
    let peer_id = keypair.public().to_peer_id();

    let mut p2p = P2pConfig {
        listen_addr: settings.listen.parse().map_err(|e| {
            ConsensusError::Address(format!("p2p listen address {}: {e}", settings.listen))
        })?,
        persistent_peers: settings
            .peers
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e| ConsensusError::Address(format!("peer address {p}: {e}")))
            })
            .collect::<Result<_, ConsensusError>>()?,
        // Only the consortium's configured members; no discovery of strangers.
        persistent_peers_only: true,
        // GossipSub, Malachite's default. Its mesh relays each message, so
        // a node receives a block's proposal several times over, more the
        // more validators; Broadcast (each message once, to each peer) cut
        // it about threefold in `medledger bench --validators N`, but in
        // Malachite 0.8.2 it announces a node's consensus subscriptions to a
        // peer only once per first connection, and one lost announcement
        // leaves that peer never sending to it while any connection stays
        // up (docs/scale.md, "Many validators").
        ..P2pConfig::default()
    };
    p2p.discovery.enabled = false;
    // Malachite accepts at most 5 inbound connections from one IP address,
    // members included, so members sharing an address (a local testnet,
    // institutions behind one NAT) were left part-connected: 16 nodes on
    // 127.0.0.1 had 6 to 10 peers each. Allow two per member at the most
    // shared address, so that one address alone holds no more slots than
    // its members need; where every member has its own address the default
    // stays.
    p2p.discovery.max_connections_per_ip = connections_per_address(&settings.peers);
    let config = NodeConfigImpl {
        moniker: settings.moniker.clone(),
        consensus: ConsensusConfig {
            p2p,
            ..ConsensusConfig::default()
        },
        value_sync: ValueSyncConfig {
            status_update_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            batch_size: 20,
            ..ValueSyncConfig::default()
        },
    };

    let signer = NodeSigner::new(settings.chain.clone(), settings.node_key.clone());
    // Every member node can sign: whether it votes at a height is decided by
    // the validator set of that height (from state), so an observer that
    // governance makes a validator starts voting without a restart.
    let proof = signer
        .sign_validator_proof(
            LedgerSigning::encode_public_key(&public_key),
            peer_id.to_bytes(),
        )
        .await
        .map_err(|e| ConsensusError::Engine(format!("signing the validator proof: {e}")))?;
    let proof_bytes = WireCodec
        .encode(&proof)
        .map_err(|e| ConsensusError::Engine(format!("encoding the validator proof: {e}")))?;
    let identity = NetworkIdentity::new_validator(
        settings.moniker.clone(),
        keypair,
        address.to_string(),
        proof_bytes,
    );
    let verifier = NodeVerifier::new(settings.chain.clone());
    let consensus_ctx =
        ConsensusContext::new_validator(address, Box::new(verifier), Box::new(signer));
    std::fs::create_dir_all(&settings.wal_dir).map_err(|e| {
        ConsensusError::Engine(format!("creating {}: {e}", settings.wal_dir.display()))
    })?;
    let (channels, _handle) = start_engine(
        ctx.clone(),
        config,
        WalContext::new(settings.wal_dir.join("consensus.wal"), WireCodec),
        NetworkContext::new(identity, WireCodec),
        consensus_ctx,
        SyncContext::new(WireCodec),
        RequestContext::new(100),
    )
    .await
    .map_err(|e| ConsensusError::Engine(format!("starting consensus: {e}")))?;
    info!(%address, %peer_id, "consensus started");

    spawn_peer_counter(channels.net_requests.clone(), telemetry.clone());
    let mut driver = Driver {
        app,
        ctx,
        chain: settings.chain.clone(),
        hash,
        transports: HashMap::new(),
        address,
        timeouts: linear_timeouts(&settings.timeouts),
        empty_block_wait: settings.empty_block_wait,
        block_interval: settings.block_interval,
        block_capacity: settings.block_capacity.max(1),
        last_commit: tokio::time::Instant::now(),
        future: Vec::new(),
        configured_peers: settings
            .peers
            .iter()
            .filter_map(|addr| {
                let id = addr.rsplit_once("/p2p/")?.1.to_string();
                Some((addr.clone(), id))
            })
            .collect(),
        dropped_peers: std::collections::HashSet::new(),
        known: HashMap::new(),
        own: HashMap::new(),
        streams: Streams::new(settings.block_bytes_max),
        committed: None,
        telemetry,
    };
    driver.run(channels).await
}

/// Counts connected peers for telemetry, and redials member nodes whose
/// connection was lost: with peer discovery off, the network layer dials a
/// persistent peer only when it is added, so after a partition heals nobody
/// would dial again. A peer missing for a few seconds is removed and added
/// back, which dials it.
fn spawn_peer_counter(
    requests: tokio::sync::mpsc::Sender<NetworkRequest>,
    telemetry: SharedTelemetry,
) {
    const REDIAL_AFTER: Duration = Duration::from_secs(4);
    tokio::spawn(async move {
        let mut missing_since: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            if let Ok(Some(dump)) = NetworkRequest::dump_state(&requests).await {
                telemetry.peers.store(dump.peers.len(), Ordering::Relaxed);
                let connected: std::collections::HashSet<String> =
                    dump.peers.keys().map(ToString::to_string).collect();
                for addr in dump.persistent_peer_addrs {
                    let text = addr.to_string();
                    let Some(id) = text.rsplit("/p2p/").next().map(str::to_string) else {
                        continue;
                    };
                    if connected.contains(&id) {
                        missing_since.remove(&id);
                        continue;
                    }
                    let now = tokio::time::Instant::now();
                    let since = *missing_since.entry(id.clone()).or_insert(now);
                    if now.duration_since(since) >= REDIAL_AFTER {
                        info!(peer = %id, "redialing a member's node after its connection was lost");
                        let _ =
                            NetworkRequest::remove_persistent_peer(&requests, addr.clone()).await;
                        let _ = NetworkRequest::add_persistent_peer(&requests, addr).await;
                        missing_since.insert(id, now);
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

/// Runs block execution and disk writes without stalling the runtime's
/// other tasks (networking, the HTTP API) on this worker thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn stream_id(height: u64, round: Round) -> StreamId {
    let mut bytes = height.to_be_bytes().to_vec();
    bytes.extend_from_slice(&round.as_i64().to_be_bytes());
    StreamId::new(Bytes::from(bytes))
}

impl<A: Application> Driver<A> {
    fn params(&self, height: u64) -> Result<HeightParams<Ctx>, ConsensusError> {
        let set = consensus_validators(self.hash, &self.app.validators(height)?)?;
        Ok(HeightParams::new(set, self.timeouts, None))
    }

    async fn run(&mut self, mut channels: Channels<Ctx>) -> Result<(), ConsensusError> {
        self.refresh_peers(&channels).await;
        while let Some(msg) = channels.consensus.recv().await {
            // An error here (the application cannot give the validator set
            // or build a block) leaves consensus unable to go on safely.
            self.handle(msg, &channels).await?;
        }
        Err(ConsensusError::Engine(
            "the consensus engine stopped".into(),
        ))
    }

    async fn handle(
        &mut self,
        msg: AppMsg<Ctx>,
        channels: &Channels<Ctx>,
    ) -> Result<(), ConsensusError> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let height = self.app.next_height();
                info!(height, "consensus ready");
                let params = self.params(height)?;
                let _ = reply.send((Height(height), params));
            }
            AppMsg::StartedRound {
                height,
                round,
                reply_value,
                ..
            } => {
                if let Some(r) = round.as_u32() {
                    self.telemetry.round.store(
                        medledger_contracts::constants::usize_from(u64::from(r)),
                        Ordering::Relaxed,
                    );
                }
                // Proposals for this height that arrived early are judged now.
                let early: Vec<Assembled> = {
                    let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.future)
                        .into_iter()
                        .partition(|a| a.height == height.0);
                    self.future = later.into_iter().filter(|a| a.height > height.0).collect();
                    now
                };
                let mut values: Vec<ProposedValue<Ctx>> = Vec::new();
                for assembled in early {
                    if let Some(value) = self.judge(assembled)
                        && value.validity.is_invalid()
                        && value.round == round
                    {
                        values.push(value);
                    }
                }
                values.extend(
                    self.known
                        .iter()
                        .filter(|(_, b)| b.height == height.0 && b.round == round)
                        .map(|(id, b)| self.proposed_value(*id, b)),
                );
                let _ = reply_value.send(values);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                let id = match self.own.get(&(height.0, round)) {
                    Some(id) => *id,
                    None => {
                        self.gather(timeout).await;
                        let (hash, bytes) = blocking(|| self.app.propose(height.0))?;
                        let id = block_id(&hash);
                        self.remember(id, height.0, round, self.address, bytes);
                        self.own.insert((height.0, round), id);
                        id
                    }
                };
                let _ = reply.send(LocallyProposedValue::new(height, round, id));
                self.stream_block(channels, height.0, round, Round::Nil, id)
                    .await;
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                let verdicts = extensions
                    .into_iter()
                    .map(|(address, _)| (address, Err(VoteExtensionError::InvalidVoteExtension)))
                    .collect();
                let _ = reply.send(verdicts);
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                value_id,
                ..
            } => {
                self.stream_block(channels, height.0, round, valid_round, value_id)
                    .await;
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                // Every node keeps every block from height 1 (auditors replay them all).
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let publisher = published_by.unwrap_or(from).to_string();
                let value = self.receive_part(publisher, part);
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                let height = certificate.height.0;
                let id = certificate.value_id;
                self.committed = None;
                if self
                    .known
                    .get(&id)
                    .is_some_and(|b| b.valid && b.height == height)
                {
                    let committed = certificate_to_contract(&certificate)
                        .map_err(|e| e.to_string())
                        .and_then(|cert| {
                            blocking(|| self.app.commit(height, &Hash32(id.0), cert))
                                .map_err(|e| e.to_string())
                        });
                    match committed {
                        Ok(()) => {
                            self.committed = Some(height);
                            self.last_commit = tokio::time::Instant::now();
                            debug!(height, block = %id, round = %certificate.round, "committed");
                        }
                        // The height restarts (see Finalized) and the block comes again by sync.
                        Err(e) => {
                            tracing::error!(height, block = %id, error = %e, "could not commit")
                        }
                    }
                } else {
                    warn!(height, block = %id, "decided a block this node does not hold; will sync it");
                }
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let height = certificate.height.0;
                let next = if self.committed == Some(height) {
                    self.refresh_peers(channels).await;
                    self.known.retain(|_, b| b.height > height);
                    self.own.retain(|(h, _), _| *h > height);
                    // Streams of later heights stay: their parts may be early.
                    self.streams.retain_heights_above(height);
                    Next::Start(Height(height + 1), self.params(height + 1)?)
                } else {
                    Next::Restart(Height(height), self.params(height)?)
                };
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let start = range.start().0;
                let end = range.end().0.min(start.saturating_add(SYNC_BATCH_MAX - 1));
                let mut values = Vec::new();
                for h in start..=end {
                    let Some((bytes, cert)) = self.app.decided(h) else {
                        break;
                    };
                    match certificate_from_contract(&cert) {
                        Ok(cert) => values.push(RawDecidedValue::new(Bytes::from(bytes), cert)),
                        Err(e) => {
                            warn!(height = h, error = %e, "stored certificate unusable for sync");
                            break;
                        }
                    }
                }
                let _ = reply.send(values);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome =
                    match blocking(|| self.app.check(height.0, &value_bytes, Arrival::Decided)) {
                        Ok(hash) => {
                            let id = block_id(&hash);
                            self.remember(id, height.0, round, proposer, value_bytes.to_vec());
                            SyncedValueOutcome::Verdict(ProposedValue {
                                height,
                                round,
                                valid_round: Round::Nil,
                                proposer,
                                value: id,
                                validity: Validity::Valid,
                            })
                        }
                        Err(BlockRefusal::Invalid(hash, why)) => {
                            warn!(height = height.0, %why, "synced block refused");
                            SyncedValueOutcome::Verdict(ProposedValue {
                                height,
                                round,
                                valid_round: Round::Nil,
                                proposer,
                                value: block_id(&hash),
                                validity: Validity::Invalid,
                            })
                        }
                        Err(BlockRefusal::Undecodable(why)) => {
                            warn!(height = height.0, %why, "undecodable synced block");
                            SyncedValueOutcome::PeerFault
                        }
                        Err(BlockRefusal::Local(why)) => {
                            warn!(height = height.0, %why, "could not check synced block");
                            SyncedValueOutcome::LocalTransientError
                        }
                    };
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// Keeps connected only the configured peers whose node key belongs to a
    /// current member in the committed state: a member removed or suspended
    /// by governance is disconnected, and reconnected if reinstated.
    async fn refresh_peers(&mut self, channels: &Channels<Ctx>) {
        let nodes: Vec<MemberNode> = match self.app.member_nodes() {
            Ok(nodes) => nodes,
            Err(e) => {
                warn!(error = %e, "membership unavailable; peers unchanged");
                return;
            }
        };
        let members: std::collections::HashSet<String> = nodes
            .iter()
            .filter(|n| n.active)
            .filter_map(|n| peer_id_of_key(&n.transport_identity))
            .collect();
        self.transports = nodes
            .into_iter()
            .map(|n| (n.institution, n.transport_identity))
            .collect();
        for (addr, id) in &self.configured_peers {
            let member = members.contains(id);
            let dropped = self.dropped_peers.contains(id);
            let Ok(multiaddr) = addr.parse() else {
                continue;
            };
            if !member && !dropped {
                let _ =
                    NetworkRequest::remove_persistent_peer(&channels.net_requests, multiaddr).await;
                self.dropped_peers.insert(id.clone());
                info!(peer = %id, "disconnected a peer that is not a current member's node");
            } else if member && dropped {
                let _ =
                    NetworkRequest::add_persistent_peer(&channels.net_requests, multiaddr).await;
                self.dropped_peers.remove(id);
                info!(peer = %id, "reconnecting a reinstated member's node");
            }
        }
    }

    /// Before building a block: wait until a block's worth of transactions
    /// waits, or the block interval since the last commit has passed with
    /// some waiting, or (with none) the empty-block wait is over. Never
    /// longer than half the propose timeout, so the proposal is in time.
    async fn gather(&self, timeout: Duration) {
        let now = tokio::time::Instant::now();
        let cap = timeout / 2;
        let batch_deadline = self.last_commit + self.block_interval.min(cap);
        let idle_deadline = now + self.empty_block_wait.min(cap);
        loop {
            let waiting = self.app.waiting_transactions();
            let now = tokio::time::Instant::now();
            if waiting >= self.block_capacity
                || (waiting > 0 && now >= batch_deadline)
                || now >= idle_deadline.max(batch_deadline)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Keeps a valid block this node built or synced, until its height commits.
    fn remember(
        &mut self,
        id: BlockId,
        height: u64,
        round: Round,
        proposer: Address,
        bytes: Vec<u8>,
    ) {
        self.known.insert(
            id,
            KnownBlock {
                height,
                round,
                valid_round: Round::Nil,
                proposer,
                bytes,
                valid: true,
            },
        );
    }

    fn proposed_value(&self, id: BlockId, block: &KnownBlock) -> ProposedValue<Ctx> {
        ProposedValue {
            height: Height(block.height),
            round: block.round,
            valid_round: block.valid_round,
            proposer: block.proposer,
            value: id,
            validity: Validity::from_bool(block.valid),
        }
    }

    async fn stream_block(
        &self,
        channels: &Channels<Ctx>,
        height: u64,
        round: Round,
        valid_round: Round,
        id: BlockId,
    ) {
        let Some(block) = self.known.get(&id) else {
            debug!(height, %id, "asked to stream a block this node does not hold");
            return;
        };
        let stream = stream_id(height, round);
        let mut parts = vec![BlockPart::Init {
            height,
            round: round.as_i64(),
            valid_round: valid_round.as_i64(),
            proposer: self.address,
        }];
        parts.extend(
            block
                .bytes
                .chunks(CHUNK_BYTES)
                .map(|c| BlockPart::Chunk(c.to_vec())),
        );
        parts.push(BlockPart::Fin { block_id: id });
        let mut sequence = 0u64;
        for part in parts {
            let msg = StreamMessage::new(stream.clone(), sequence, StreamContent::Data(part));
            sequence += 1;
            if channels
                .network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await
                .is_err()
            {
                return;
            }
        }
        let fin = StreamMessage::new(stream, sequence, StreamContent::Fin);
        let _ = channels
            .network
            .send(NetworkMsg::PublishProposalPart(fin))
            .await;
    }

    /// Buffers a part; when its stream is complete, checks the block and
    /// answers the proposed value with its validity.
    fn receive_part(
        &mut self,
        publisher: String,
        part: StreamMessage<BlockPart>,
    ) -> Option<ProposedValue<Ctx>> {
        let piece = match part.content {
            StreamContent::Data(data) => Piece::Part(data),
            StreamContent::Fin => Piece::End,
        };
        let next = self.app.next_height();
        match self.streams.receive(
            &publisher,
            part.stream_id.to_bytes(),
            part.sequence,
            piece,
            next,
        ) {
            Outcome::Incomplete => None,
            // At debug: a faulty member could otherwise fill the log.
            Outcome::Dropped(malformed) => {
                debug!(%publisher, %malformed, "proposal stream dropped");
                None
            }
            Outcome::Complete(assembled) => self.place(assembled),
        }
    }

    /// A complete proposal: judged now if it is for the height in
    /// progress, kept if for one of the next two heights, else ignored.
    fn place(&mut self, assembled: Assembled) -> Option<ProposedValue<Ctx>> {
        let height = assembled.height;
        let next = self.app.next_height();
        if height > next {
            // One publisher gets two early proposals per height at most.
            let from_publisher = self
                .future
                .iter()
                .filter(|a| a.publisher == assembled.publisher && a.height == height)
                .count();
            if height <= next + 2 && from_publisher < 2 && self.future.len() < FUTURE_PROPOSALS_MAX
            {
                debug!(height, "proposal for a later height kept until it starts");
                self.future.push(assembled);
            }
            return None;
        }
        if height < next {
            debug!(height, "proposal for a committed height ignored");
            return None;
        }
        self.judge(assembled)
    }

    /// Checks a complete proposal for the height in progress: the round's
    /// proposer, then the block itself. Valid blocks are remembered.
    fn judge(&mut self, assembled: Assembled) -> Option<ProposedValue<Ctx>> {
        let Assembled {
            publisher,
            height,
            round,
            valid_round,
            proposer,
            bytes,
            claimed,
        } = assembled;
        // Only the round's proposer may propose.
        let validators = self.app.validators(height).ok();
        let expected = validators
            .as_ref()
            .and_then(|v| consensus_validators(self.hash, v).ok())
            .map(|set| {
                self.ctx
                    .select_proposer(&set, Height(height), round)
                    .address
            });
        if expected != Some(proposer) {
            warn!(height, %proposer, "proposal from a validator that is not this round's proposer");
            return None;
        }
        // And only from the proposer's own node (the publisher is signed in
        // gossip): another member's stream naming the proposer and its block
        // id with other bytes would otherwise be judged invalid under that
        // id, and this node would vote nil on the honest block.
        if !validators.as_ref().is_some_and(|v| {
            published_by_proposer(&self.chain, &self.transports, v, proposer, &publisher)
        }) {
            warn!(height, %proposer, %publisher, "proposal stream not published by the proposer's node; dropped");
            return None;
        }
        let arrival = if valid_round.is_defined() {
            Arrival::Reproposed
        } else {
            Arrival::Fresh
        };
        let valid = match blocking(|| self.app.check(height, &bytes, arrival)) {
            Ok(hash) if block_id(&hash) == claimed => true,
            Ok(hash) => {
                warn!(height, %claimed, actual = %hash, "proposal parts do not make the claimed block");
                false
            }
            Err(BlockRefusal::Invalid(_, why)) => {
                warn!(height, %why, "proposed block is invalid; voting nil");
                false
            }
            Err(BlockRefusal::Undecodable(why)) => {
                warn!(height, %why, "proposed block does not decode; voting nil");
                false
            }
            Err(BlockRefusal::Local(why)) => {
                warn!(height, %why, "could not check proposed block");
                return None;
            }
        };
        let block = KnownBlock {
            height,
            round,
            valid_round,
            proposer,
            bytes,
            valid,
        };
        let value = self.proposed_value(claimed, &block);
        // An invalid block is never stored under the id it claims, so a valid
        // block with that id can still arrive.
        if valid {
            self.known.insert(claimed, block);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use medledger_contracts::encoding::BoundedVec;
    use medledger_contracts::records::Validator;

    use super::*;

    #[test]
    fn members_sharing_an_address_may_all_connect_and_others_keep_the_default() {
        let local: Vec<String> = (0..24)
            .map(|i| format!("/ip4/127.0.0.1/tcp/{}/p2p/12D3KooW", 27000 + i))
            .collect();
        assert_eq!(connections_per_address(&local), 50);
        let spread: Vec<String> = (1..=24)
            .map(|i| format!("/ip4/10.0.0.{i}/tcp/26656/p2p/12D3KooW"))
            .collect();
        assert_eq!(connections_per_address(&spread), 5);
        let nat = [
            "/dns4/hospital.example/tcp/1/p2p/a",
            "/dns4/hospital.example/tcp/2/p2p/b",
            "/ip4/10.0.0.9/tcp/3/p2p/c",
        ]
        .map(String::from);
        assert_eq!(connections_per_address(&nat), 6);
        assert_eq!(connections_per_address(&[]), 5);
    }

    /// Issue 16, item 11: a proposal stream counts only when the proposer's
    /// own node published it; a stream naming the proposer from another
    /// member's node (or from a stranger) does not.
    #[test]
    fn only_the_proposers_node_may_publish_its_proposal() {
        for suite in [CryptoSuite::Ed25519Sha256, CryptoSuite::Sm2Sm3] {
            let keys: Vec<SecretKey> = (1..=3u8)
                .map(|i| SecretKey::from_seed_of(suite, [i; 32]).unwrap())
                .collect();
            // On sm2-sm3 each node's network identity is an Ed25519 key of
            // its own, named in its institution's record.
            let transports: Vec<SecretKey> = (1..=3u8)
                .map(|i| SecretKey::from_seed([i + 10; 32]))
                .collect();
            let institution = |i: usize| InstitutionId::new(&format!("member-{i}")).unwrap();
            let set = LedgerValidators {
                validators: BoundedVec::new(
                    keys.iter()
                        .enumerate()
                        .map(|(i, k)| Validator {
                            institution: institution(i),
                            node_key: k.public_key(),
                            power: 1,
                        })
                        .collect(),
                )
                .unwrap(),
            };
            let members: HashMap<InstitutionId, PublicKey> = (0..3)
                .map(|i| {
                    let identity = if suite.has_transport_keys() {
                        transports[i].public_key()
                    } else {
                        keys[i].public_key()
                    };
                    (institution(i), identity)
                })
                .collect();
            let chain = Chain {
                id: medledger_contracts::types::ChainId::new("test-chain").unwrap(),
                suite,
            };
            let hash = chain.hash();
            let peer = |i: usize| peer_id_of_key(&members[&institution(i)]).unwrap();
            let proposer = address_of(hash, &keys[0].public_key());
            let (own, other_member) = (peer(0), peer(1));
            let stranger = peer_id_of_key(&SecretKey::from_seed([9; 32]).public_key()).unwrap();
            let published = |proposer, publisher: &str| {
                published_by_proposer(&chain, &members, &set, proposer, publisher)
            };
            assert!(published(proposer, &own), "{suite:?}");
            assert!(!published(proposer, &other_member));
            assert!(!published(proposer, &stranger));
            // A proposer address that is no validator's has no node at all.
            let outsider = address_of(
                hash,
                &SecretKey::from_seed_of(suite, [8; 32])
                    .unwrap()
                    .public_key(),
            );
            assert!(!published(outsider, &own));
            if suite.has_transport_keys() {
                // Without its record the proposer's node is not known.
                assert!(!published_by_proposer(
                    &chain,
                    &HashMap::new(),
                    &set,
                    proposer,
                    &own
                ));
            }
        }
    }
}
