//! Links between nodes that the simulator controls: a TCP proxy in front of
//! each node's port for each peer that dials it (consensus p2p, transaction
//! gossip over HTTP, and the records gateway). A link can be cut (open
//! connections dropped, new ones refused until healed), slowed (every burst
//! of bytes held back for a delay before it is passed on, so both latency and
//! throughput suffer, as on a congested line), and it counts the bytes it
//! carries. libp2p's Noise handshake passes through untouched: the proxy only
//! moves bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a link's state is now; shared with its connections.
#[derive(Default)]
struct LinkState {
    cut: AtomicBool,
    delay_ms: AtomicU64,
    bytes: AtomicU64,
}

/// One directed link: a proxy forwarding to one node's port.
pub struct Link {
    /// The port peers dial instead of the node's.
    pub port: u16,
    state: Arc<LinkState>,
    changed: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Frees the port; open connections end with the process's runtime.
        self.accept.abort();
    }
}

impl Link {
    /// A proxy on a free 127.0.0.1 port, forwarding to `target_port`.
    pub async fn start(target_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(LinkState::default());
        let (changed, _) = watch::channel(false);
        let accept_state = state.clone();
        let accept_changed = changed.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if accept_state.cut.load(Ordering::SeqCst) {
                    continue; // dropped: the dial fails
                }
                let mut cut_now = accept_changed.subscribe();
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let both = async {
                        tokio::join!(
                            pump(in_read, out_write, &state),
                            pump(out_read, in_write, &state)
                        )
                    };
                    tokio::select! {
                        _ = both => {}
                        _ = cut_now.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Self {
            port,
            state,
            changed,
            accept,
        })
    }

    /// Cuts (true) or heals (false) the link.
    pub fn set_cut(&self, cut: bool) {
        self.state.cut.store(cut, Ordering::SeqCst);
        // `send_replace`: the value must change even when no connection is
        // open (plain `send` fails then, and a later connection would see a stale cut).
        self.changed.send_replace(cut);
    }

    /// Holds every burst of bytes back by `delay` (zero: full speed).
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(medledger_contracts::types::millis(delay), Ordering::SeqCst);
    }

    /// Bytes carried so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }
}

/// Moves bytes one way until either side closes, delaying and counting them.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: &LinkState) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        state.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn round_trip(port: u16) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        if s.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(2), s.read_exact(&mut buf)).await,
            Ok(Ok(_))
        ) && &buf == b"ping"
    }

    #[tokio::test]
    async fn a_cut_link_refuses_and_a_healed_one_carries_again() {
        let link = Link::start(echo_server().await).await.unwrap();
        assert!(round_trip(link.port).await);
        link.set_cut(true);
        assert!(!round_trip(link.port).await);
        link.set_cut(false);
        assert!(round_trip(link.port).await);
        // An open connection is dropped by a cut.
        let mut open = TcpStream::connect(("127.0.0.1", link.port)).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await.unwrap();
        link.set_cut(true);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let _ = open.write_all(b"ping").await;
        let n = tokio::time::timeout(std::time::Duration::from_secs(2), open.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "{n:?}");
        link.set_cut(false);
        assert!(round_trip(link.port).await);
        assert!(link.bytes() >= 4 * 4 * 2, "{}", link.bytes());
    }

    #[tokio::test]
    async fn a_slowed_link_delays_and_a_restored_one_does_not() {
        let link = Link::start(echo_server().await).await.unwrap();
        link.set_delay(std::time::Duration::from_millis(300));
        let t = std::time::Instant::now();
        assert!(round_trip(link.port).await);
        // Out and back: two delayed bursts.
        assert!(
            t.elapsed() >= std::time::Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
        link.set_delay(std::time::Duration::ZERO);
        let t = std::time::Instant::now();
        assert!(round_trip(link.port).await);
        assert!(
            t.elapsed() < std::time::Duration::from_millis(600),
            "{:?}",
            t.elapsed()
        );
    }
}
