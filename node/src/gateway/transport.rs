//! Gateway-to-gateway transport: libp2p request-response over TCP with Noise
//! (the peer's identity is its node key) and yamux. One BCS message per
//! request or response, length-prefixed and bounded.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use medledger_client_sdk::records::{GATEWAY_MESSAGE_BYTES_MAX, GatewayRequest, GatewayResponse};
use medledger_contracts::crypto::{PublicKey, SecretKey};
use medledger_contracts::encoding::{from_bytes, to_bytes};
use tokio::sync::{mpsc, oneshot};

const PROTOCOL: &str = "/medledger/records/1";

/// Length-prefixed BCS messages.
#[derive(Clone, Default)]
pub struct WireCodec;

async fn read_message<T, M>(io: &mut T) -> io::Result<M>
where
    T: AsyncRead + Unpin + Send,
    M: serde::de::DeserializeOwned,
{
    let mut length = [0u8; 4];
    io.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > GATEWAY_MESSAGE_BYTES_MAX {
        return Err(io::Error::other(format!(
            "gateway message of {length} bytes is over the {GATEWAY_MESSAGE_BYTES_MAX} allowed"
        )));
    }
    let mut bytes = vec![0u8; length];
    io.read_exact(&mut bytes).await?;
    from_bytes(&bytes, GATEWAY_MESSAGE_BYTES_MAX).map_err(|e| io::Error::other(e.to_string()))
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
        read_message(io).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<GatewayResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io).await
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

/// Answers inbound requests: given the peer, the request, returns the response.
pub type Handler = Arc<dyn Fn(PeerId, GatewayRequest) -> GatewayResponse + Send + Sync>;

enum Command {
    Send {
        peer: PeerId,
        address: Multiaddr,
        request: GatewayRequest,
        reply: oneshot::Sender<Result<GatewayResponse, String>>,
    },
}

/// A handle to the running gateway transport.
#[derive(Clone)]
pub struct Gateway {
    commands: mpsc::Sender<Command>,
}

/// The libp2p peer id of a node key.
pub fn peer_id_of_key(key: &PublicKey) -> Option<PeerId> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(key.raw_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(ed).to_peer_id())
}

impl Gateway {
    /// Starts the transport listening on `listen`, answering with `handler`
    /// (run on blocking threads: it reads files and state).
    pub fn start(key: &SecretKey, listen: Multiaddr, handler: Handler) -> Result<Self, String> {
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(key.seed())
            .map_err(|e| format!("node key as libp2p key: {e}"))?;
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
            .map_err(|e| format!("gateway transport: {e}"))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| format!("gateway behaviour: {e}"))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        swarm
            .listen_on(listen.clone())
            .map_err(|e| format!("gateway cannot listen on {listen}: {e}"))?;
        let (commands, mut rx) = mpsc::channel::<Command>(256);
        let (answers_tx, mut answers) =
            mpsc::channel::<(ResponseChannel<GatewayResponse>, GatewayResponse)>(256);
        tokio::spawn(async move {
            let mut pending: HashMap<
                OutboundRequestId,
                oneshot::Sender<Result<GatewayResponse, String>>,
            > = HashMap::new();
            loop {
                tokio::select! {
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::Behaviour(request_response::Event::Message { peer, message, .. }) => match message {
                            request_response::Message::Request { request, channel, .. } => {
                                let handler = handler.clone();
                                let answers = answers_tx.clone();
                                tokio::spawn(async move {
                                    let answer = tokio::task::spawn_blocking(move || handler(peer, request)).await;
                                    let answer = answer.unwrap_or_else(|e| GatewayResponse::Refused {
                                        code: "internal".into(),
                                        message: format!("the holder failed: {e}"),
                                    });
                                    let _ = answers.send((channel, answer)).await;
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
                                let _ = reply.send(Err(error.to_string()));
                            }
                        }
                        SwarmEvent::NewListenAddr { address, .. } => {
                            tracing::info!(%address, "records gateway listening");
                        }
                        _ => {}
                    },
                    Some((channel, answer)) = answers.recv() => {
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
    ) -> Result<GatewayResponse, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                peer,
                address,
                request,
                reply,
            })
            .await
            .map_err(|_| "the gateway stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the gateway stopped".to_string())?
    }
}
