//! Gateway-to-gateway transport: libp2p request-response over TCP with Noise
//! (the peer's identity is its node key) and yamux. One BCS message per
//! request or response, length-prefixed and bounded: a request is a few
//! hundred bytes, so it may be at most [`GATEWAY_REQUEST_BYTES_MAX`]; a
//! response carries a chunk.
//!
//! A peer that is not an active member's node is dropped before the holder
//! does any work for it: its inbound connection is closed once Noise has
//! told who it is (the TCP, Noise and yamux handshakes happen first; a
//! firewall that opens the gateway's port to members' addresses only is the
//! operator's part), and a request that arrives before that is refused from
//! the event loop, never reaching the holder's blocking threads. A member's
//! node has at most [`IN_FLIGHT_PER_PEER`] requests being answered at once.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use medledger_contracts::crypto::{PublicKey, SecretKey};
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_transfer::{
    GATEWAY_MESSAGE_BYTES_MAX, GATEWAY_REQUEST_BYTES_MAX, GatewayRequest, GatewayResponse,
};
use tokio::sync::{mpsc, oneshot};

// 2: the fetch's one-time key is tagged by suite (`RecipientKey`).
const PROTOCOL: &str = "/medledger/records/2";

/// Length-prefixed BCS messages.
#[derive(Clone, Default)]
pub struct WireCodec;

pub(crate) async fn read_message<T, M>(io: &mut T, max: usize) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: serde::de::DeserializeOwned,
{
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > max {
        return Err(io::Error::other(format!(
            "gateway message of {length} bytes is over the {max} allowed"
        )));
    }
    // Memory follows the bytes that arrive, not the length a peer claims.
    let mut bytes = Vec::new();
    io.take(length as u64).read_to_end(&mut bytes).await?;
    if bytes.len() != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "gateway message shorter than its length",
        ));
    }
    from_bytes(&bytes, max).map_err(|e| io::Error::other(e.to_string()))
}

async fn write_message<T, M>(io: &mut T, message: &M) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: serde::Serialize,
{
    let bytes = to_bytes(message);
    let length = u32::try_from(bytes.len()).map_err(|_| io::Error::other("message too large"))?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

#[async_trait::async_trait]
impl request_response::Codec for WireCodec {
    type Protocol = StreamProtocol;
    type Request = GatewayRequest;
    type Response = GatewayResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<GatewayRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, GATEWAY_REQUEST_BYTES_MAX).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<GatewayResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, GATEWAY_MESSAGE_BYTES_MAX).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: GatewayRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: GatewayResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &res).await
    }
}

/// What the transport needs from the holder behind it.
pub trait Answerer: Send + Sync + 'static {
    /// Whether `peer` is an active member's node. `false` is counted and
    /// logged by the answerer; the transport then drops the peer.
    fn admit(&self, peer: &PeerId) -> bool;
    /// The answer to a member's request (run on a blocking thread: it reads
    /// files and state).
    fn answer(&self, peer: PeerId, request: GatewayRequest) -> GatewayResponse;
}

/// Most requests of one member's node being answered at once: each takes a
/// blocking thread, which the node's other work (transaction admission)
/// shares, so one member cannot take them all. Room for a chunk request on
/// each of its transfer slots, and a few opens.
const IN_FLIGHT_PER_PEER: usize = super::holder::TRANSFERS_PER_PEER + 8;

fn busy() -> GatewayResponse {
    GatewayResponse::Refused {
        code: "busy".into(),
        message: "too many requests in progress from this member's node; retry shortly".into(),
    }
}

fn not_a_member() -> GatewayResponse {
    GatewayResponse::Refused {
        code: "not_a_member".into(),
        message: "this peer is not an active member's node".into(),
    }
}

enum Command {
    Send {
        peer: PeerId,
        address: Multiaddr,
        request: GatewayRequest,
        reply: oneshot::Sender<Result<GatewayResponse, TransportError>>,
    },
}

/// Why the records gateway's transport failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The node key does not make a libp2p identity.
    #[error("node key as libp2p key: {0}")]
    Key(String),
    /// The transport could not be built.
    #[error("gateway transport: {0}")]
    Build(String),
    /// The request-response behaviour could not be built.
    #[error("gateway behaviour: {0}")]
    Behaviour(String),
    /// The listening address is refused.
    #[error("gateway cannot listen on {address}: {error}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        error: String,
    },
    /// A request to a peer failed (unreachable, timed out, refused the protocol).
    #[error("request to a peer's gateway failed: {0}")]
    Outbound(String),
    /// The transport's task has stopped.
    #[error("the gateway stopped")]
    Stopped,
    /// This node knows no gateway for the holder.
    #[error("no gateway known for {0}")]
    UnknownHolder(String),
    /// This node's own holder failed to answer.
    #[error("the local holder failed: {0}")]
    Local(String),
}

/// A handle to the running gateway transport.
#[derive(Clone)]
pub struct Gateway {
    commands: mpsc::Sender<Command>,
}

/// The libp2p peer id of a node's transport identity (an Ed25519 key: the
/// node key, or on `sm2-sm3` the institution's transport key).
pub fn peer_id_of_key(key: &PublicKey) -> Option<PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(key.raw_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(ed).to_peer_id())
}

impl Gateway {
    /// Starts the transport listening on `listen` as the node whose
    /// transport key is `key`, answering members with `answerer`.
    pub fn start(
        key: &SecretKey,
        listen: Multiaddr,
        answerer: Arc<dyn Answerer>,
    ) -> Result<Self, TransportError> {
        let seed = key.ed25519_seed().ok_or_else(|| {
            TransportError::Key(
                "a node's transport key (the gateway's libp2p identity) must be Ed25519: libp2p's handshake has no SM2".into(),
            )
        })?;
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(seed)
            .map_err(|e| TransportError::Key(e.to_string()))?;
        let behaviour = request_response::Behaviour::with_codec(
            WireCodec,
            [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
        );
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .map_err(|e| TransportError::Build(e.to_string()))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| TransportError::Behaviour(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm
            .listen_on(listen.clone())
            .map_err(|e| TransportError::Listen {
                address: listen.clone(),
                error: e.to_string(),
            })?;
        let (commands, mut rx) = mpsc::channel::<Command>(256);
        let (answers_tx, mut answers) =
            mpsc::channel::<(PeerId, ResponseChannel<GatewayResponse>, GatewayResponse)>(256);
        tokio::spawn(async move {
            let mut pending: HashMap<
                OutboundRequestId,
                oneshot::Sender<Result<GatewayResponse, TransportError>>,
            > = HashMap::new();
            let mut in_flight: HashMap<PeerId, usize> = HashMap::new();
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. }
                            if endpoint.is_listener() && !answerer.admit(&peer_id) =>
                        {
                            let _ = swarm.disconnect_peer_id(peer_id);
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message { peer, message, .. }) => match message {
                            request_response::Message::Request { channel, .. } if !answerer.admit(&peer) => {
                                let _ = swarm.behaviour_mut().send_response(channel, not_a_member());
                            }
                            request_response::Message::Request { channel, .. }
                                if in_flight.get(&peer).copied().unwrap_or(0) >= IN_FLIGHT_PER_PEER =>
                            {
                                let _ = swarm.behaviour_mut().send_response(channel, busy());
                            }
                            request_response::Message::Request { request, channel, .. } => {
                                *in_flight.entry(peer).or_insert(0) += 1;
                                let answerer = answerer.clone();
                                let answers = answers_tx.clone();
                                tokio::spawn(async move {
                                    let answer = tokio::task::spawn_blocking(move || answerer.answer(peer, request)).await;
                                    let answer = answer.unwrap_or_else(|e| GatewayResponse::Refused {
                                        code: "internal".into(),
                                        message: format!("the holder failed: {e}"),
                                    });
                                    let _ = answers.send((peer, channel, answer)).await;
                                });
                            }
                            request_response::Message::Response { request_id, response } => {
                                if let Some(reply) = pending.remove(&request_id) {
                                    let _ = reply.send(Ok(response));
                                }
                            }
                        },
                        SwarmEvent::Behaviour(request_response::Event::OutboundFailure { request_id, error, .. }) => {
                            if let Some(reply) = pending.remove(&request_id) {
                                let _ = reply.send(Err(TransportError::Outbound(error.to_string())));
                            }
                        }
                        SwarmEvent::NewListenAddr { address, .. } => {
                            tracing::info!(%address, "records gateway listening");
                        }
                        _ => {}
                    },
                    Some((peer, channel, answer)) = answers.recv() => {
                        if let Some(n) = in_flight.get_mut(&peer) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                in_flight.remove(&peer);
                            }
                        }
                        let _ = swarm.behaviour_mut().send_response(channel, answer);
                    }
                    command = rx.recv() => match command {
                        Some(Command::Send { peer, address, request, reply }) => {
                            swarm.add_peer_address(peer, address);
                            let id = swarm.behaviour_mut().send_request(&peer, request);
                            pending.insert(id, reply);
                        }
                        None => return,
                    },
                }
            }
        });
        Ok(Self { commands })
    }

    /// Sends a request to a peer's gateway and waits for its answer.
    pub async fn request(
        &self,
        peer: PeerId,
        address: Multiaddr,
        request: GatewayRequest,
    ) -> Result<GatewayResponse, TransportError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                peer,
                address,
                request,
                reply,
            })
            .await
            .map_err(|_| TransportError::Stopped)?;
        answer.await.map_err(|_| TransportError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use medledger_contracts::Hash32;

    use super::*;

    /// Admits one peer and counts the requests it answers.
    struct Counting {
        member: Option<PeerId>,
        answered: AtomicUsize,
    }

    impl Answerer for Counting {
        fn admit(&self, peer: &PeerId) -> bool {
            self.member.as_ref() == Some(peer)
        }

        fn answer(&self, _: PeerId, _: GatewayRequest) -> GatewayResponse {
            self.answered.fetch_add(1, Ordering::SeqCst);
            GatewayResponse::Wait { retry_ms: 1 }
        }
    }

    fn counting(member: Option<PeerId>) -> Arc<Counting> {
        Arc::new(Counting {
            member,
            answered: AtomicUsize::new(0),
        })
    }

    fn free_address() -> Multiaddr {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    /// Issue 16, item 10: a peer that is not a member's node never reaches
    /// the holder (on the old transport every inbound request, a
    /// stranger's too, took a blocking task and was handed to the holder).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stranger_is_dropped_before_the_holder_sees_its_request() {
        let holder_key = SecretKey::from_seed([1; 32]);
        let member_key = SecretKey::from_seed([2; 32]);
        let stranger_key = SecretKey::from_seed([3; 32]);
        let holder_address = free_address();
        let holder = counting(peer_id_of_key(&member_key.public_key()));
        // Kept: a gateway stops when its last handle is dropped.
        let _holder_gateway =
            Gateway::start(&holder_key, holder_address.clone(), holder.clone()).unwrap();
        let member = Gateway::start(&member_key, free_address(), counting(None)).unwrap();
        let stranger = Gateway::start(&stranger_key, free_address(), counting(None)).unwrap();
        let holder_peer = peer_id_of_key(&holder_key.public_key()).unwrap();
        let ask = GatewayRequest::Chunk {
            transfer: Hash32([0; 32]),
            seq: 0,
        };

        // The member is answered (retried while the holder starts listening).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match member
                .request(holder_peer, holder_address.clone(), ask.clone())
                .await
            {
                Ok(answer) => {
                    assert_eq!(answer, GatewayResponse::Wait { retry_ms: 1 });
                    break;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%e, "holder not listening yet");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("the member was not answered: {e}"),
            }
        }
        assert_eq!(holder.answered.load(Ordering::SeqCst), 1);

        // The stranger is refused or cut off, and the holder never sees it.
        for _ in 0..3 {
            match stranger
                .request(holder_peer, holder_address.clone(), ask.clone())
                .await
            {
                Ok(GatewayResponse::Refused { code, .. }) => assert_eq!(code, "not_a_member"),
                Ok(other) => panic!("a stranger was answered {other:?}"),
                Err(_) => {}
            }
        }
        assert_eq!(holder.answered.load(Ordering::SeqCst), 1);
    }

    /// Issue 16, item 10: a request may claim at most a few KiB, and what is
    /// kept is what arrived: a length claimed but not sent is an error.
    #[tokio::test]
    async fn a_request_is_bounded_and_its_memory_follows_the_bytes_received() {
        let mut claimed_large = futures::io::Cursor::new(
            u32::try_from(GATEWAY_REQUEST_BYTES_MAX + 1)
                .unwrap()
                .to_be_bytes()
                .to_vec(),
        );
        let e = read_message::<_, GatewayRequest>(&mut claimed_large, GATEWAY_REQUEST_BYTES_MAX)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("over the"), "{e}");

        let mut short = 1_000u32.to_be_bytes().to_vec();
        short.extend_from_slice(&[0u8; 10]);
        let e = read_message::<_, GatewayRequest>(
            &mut futures::io::Cursor::new(short),
            GATEWAY_REQUEST_BYTES_MAX,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        let ask = GatewayRequest::Chunk {
            transfer: Hash32([9; 32]),
            seq: 4,
        };
        let mut bytes = Vec::new();
        write_message(&mut futures::io::Cursor::new(&mut bytes), &ask)
            .await
            .unwrap();
        let read: GatewayRequest = read_message(
            &mut futures::io::Cursor::new(bytes),
            GATEWAY_REQUEST_BYTES_MAX,
        )
        .await
        .unwrap();
        assert_eq!(read, ask);
    }
}
