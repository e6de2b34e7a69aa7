//! Links between nodes that the simulator can cut: a TCP proxy in front of
//! each node's p2p port for each peer that dials it. Cutting a link drops its
//! open connections and refuses new ones until it is healed; libp2p's Noise
//! handshake passes through untouched (the proxy only moves bytes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed link: a proxy forwarding to a node's p2p port.
pub struct Link {
    /// The port peers dial instead of the node's.
    pub port: u16,
    cut: Arc<AtomicBool>,
    changed: watch::Sender<bool>,
}

impl Link {
    /// A proxy on a free 127.0.0.1 port, forwarding to `target_port`.
    pub async fn start(target_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let cut = Arc::new(AtomicBool::new(false));
        let (changed, _) = watch::channel(false);
        let accept_cut = cut.clone();
        let accept_changed = changed.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the dial fails
                }
                let mut cut_now = accept_changed.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_now.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Self { port, cut, changed })
    }

    /// Cuts (true) or heals (false) the link.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        // `send_replace`: the value must change even when no connection is
        // open (plain `send` fails then, and a later connection would see a stale cut).
        self.changed.send_replace(cut);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    }
}
