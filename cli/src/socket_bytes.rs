//! Bytes the nodes of a local consortium received over TCP, per kind of
//! connection, from the kernel's per-socket counters (`ss -tinp`): what the
//! bench reports as network cost per block and per transaction.
//!
//! Only connections open at both readings are counted whole; one closed in
//! between is missed, one opened in between counts from zero. The nodes'
//! libp2p and HTTP connections are long-lived, so the loss is small and
//! only ever an undercount.

use std::collections::{HashMap, HashSet};
use std::process::Command;

/// What a connection is for, told by the node port at either end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Link {
    /// libp2p between nodes: consensus votes, proposals and sync.
    Consensus,
    /// The HTTP API: clients' submissions and reads, and mempool gossip
    /// between nodes.
    Http,
    /// The records gateway.
    Gateway,
}

/// The ports each kind of link listens on.
pub struct Ports {
    pub consensus: HashSet<u16>,
    pub http: HashSet<u16>,
    pub gateway: HashSet<u16>,
}

impl Ports {
    fn link(&self, local: u16, peer: u16) -> Option<Link> {
        let either = |set: &HashSet<u16>| set.contains(&local) || set.contains(&peer);
        if either(&self.consensus) {
            Some(Link::Consensus)
        } else if either(&self.http) {
            Some(Link::Http)
        } else if either(&self.gateway) {
            Some(Link::Gateway)
        } else {
            None
        }
    }
}

/// One reading: bytes received so far by each socket of the watched
/// processes, keyed by (pid, local address, peer address).
pub struct Reading {
    sockets: HashMap<(u32, String, String), (Link, u64)>,
}

/// Reads the counters of every TCP socket of `pids` that touches one of
/// `ports`; `None` if `ss` is missing or its output is not understood.
pub fn read(pids: &[u32], ports: &Ports) -> Option<Reading> {
    let output = Command::new("ss").args(["-tinpH"]).output().ok()?;
    if !output.status.success() {
        return None;
    }
    parse(&String::from_utf8_lossy(&output.stdout), pids, ports)
}

/// Parses `ss -tinpH`: a line per socket (state, queues, local, peer,
/// `users:((…,pid=N,…))`), then an indented line of its TCP figures.
fn parse(text: &str, pids: &[u32], ports: &Ports) -> Option<Reading> {
    let mut sockets = HashMap::new();
    let mut current: Option<(u32, String, String, Link)> = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            let Some((pid, local, peer, link)) = current.take() else {
                continue;
            };
            let received = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("bytes_received:"))
                .map_or(Some(0), |n| n.parse::<u64>().ok())?;
            sockets.insert((pid, local, peer), (link, received));
            continue;
        }
        current = None;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(peer)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let Some(pid) = line
            .split("pid=")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let port = |address: &str| address.rsplit_once(':')?.1.parse::<u16>().ok();
        if !pids.contains(&pid) {
            continue;
        }
        if let (Some(l), Some(p)) = (port(local), port(peer))
            && let Some(link) = ports.link(l, p)
        {
            current = Some((pid, (*local).to_string(), (*peer).to_string(), link));
        }
    }
    Some(Reading { sockets })
}

impl Reading {
    /// Bytes received between `earlier` and this reading, summed over the
    /// watched processes, for one kind of link.
    pub fn received_since(&self, earlier: &Reading, link: Link) -> u64 {
        self.sockets
            .iter()
            .filter(|(_, (l, _))| *l == link)
            .map(|(key, (_, now))| {
                let before = earlier.sockets.get(key).map_or(0, |(_, b)| *b);
                now.saturating_sub(before)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ESTAB 0      0      127.0.0.1:40001 127.0.0.1:52000 users:((\"medledger\",pid=11,fd=30))
\t cubic wscale:7,7 rto:204 bytes_sent:500 bytes_acked:501 bytes_received:7000 segs_out:3
ESTAB 0      0      127.0.0.1:52000 127.0.0.1:40001 users:((\"medledger\",pid=12,fd=31))
\t cubic wscale:7,7 rto:204 bytes_sent:7000 bytes_acked:7001 bytes_received:500 segs_out:3
ESTAB 0      0      127.0.0.1:33333 127.0.0.1:40002 users:((\"medledger\",pid=99,fd=9))
\t cubic bytes_received:123456
ESTAB 0      0      127.0.0.1:40002 127.0.0.1:33333 users:((\"medledger\",pid=11,fd=12))
\t cubic bytes_sent:10
";

    fn ports() -> Ports {
        Ports {
            consensus: [40001].into(),
            http: [40002].into(),
            gateway: HashSet::new(),
        }
    }

    #[test]
    fn counts_what_the_watched_nodes_received_per_link() {
        let empty = parse("", &[11, 12], &ports()).unwrap();
        let reading = parse(SAMPLE, &[11, 12], &ports()).unwrap();
        // Both ends of the libp2p connection are nodes: 7,000 + 500.
        assert_eq!(reading.received_since(&empty, Link::Consensus), 7_500);
        // pid 99 (a client) is not watched; node 11's HTTP socket received
        // nothing yet (no bytes_received field).
        assert_eq!(reading.received_since(&empty, Link::Http), 0);
        assert_eq!(reading.received_since(&reading, Link::Consensus), 0);
    }

    #[test]
    fn a_figure_that_is_not_a_number_fails_the_reading() {
        let bad = "ESTAB 0 0 127.0.0.1:40001 127.0.0.1:1 users:((\"m\",pid=11,fd=3))\n\t bytes_received:x\n";
        assert!(parse(bad, &[11], &ports()).is_none());
    }
}
