//! Prometheus metrics at `/metrics`: height, round, commit latency, mempool
//! size, peers, API requests by route and status, and the records gateway's
//! refusals by code.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use warp::Reply;
use warp::reply::Response;

use crate::clock::now;

/// Labels of an API request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template (never the concrete path: ids stay out of metrics).
    route: String,
    /// The HTTP status.
    status: u16,
}

/// Labels of a request-duration observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

/// Labels of a gateway refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    /// The refusal's stable code (`not_a_member`, `already_served`…).
    code: String,
}

/// Figures read at the moment `/metrics` is asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Live {
    /// The committed height.
    pub height: u64,
    /// The consensus round at the next height.
    pub round: u64,
    /// Transactions waiting in the mempool.
    pub mempool: u64,
    /// Connected consensus peers.
    pub peers: u64,
}

/// The node's metrics.
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    round: Gauge,
    mempool: Gauge,
    peers: Gauge,
    commit_latency: Histogram,
    committed_transactions: Counter,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabel, Histogram>,
    gateway_refusals: Family<CodeLabel, Counter>,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 1 ms to ~16 s.
    exponential_buckets(0.001, 2.0, 15)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("medledger");
        let height = Gauge::default();
        let round = Gauge::default();
        let mempool = Gauge::default();
        let peers = Gauge::default();
        let commit_latency = Histogram::new(seconds_buckets());
        let committed_transactions = Counter::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(seconds_buckets())
        });
        registry.register("height", "Last committed height", height.clone());
        registry.register(
            "round",
            "Consensus round of the height in progress",
            round.clone(),
        );
        registry.register(
            "mempool_transactions",
            "Transactions waiting in the mempool",
            mempool.clone(),
        );
        registry.register("peers", "Connected member peers", peers.clone());
        registry.register(
            "commit_latency_seconds",
            "From a block's proposal time to its commit on this node",
            commit_latency.clone(),
        );
        registry.register(
            "committed_transactions",
            "Transactions committed since the node started",
            committed_transactions.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by route and status",
            requests.clone(),
        );
        registry.register(
            "api_request_duration_seconds",
            "API request handling time by route",
            request_seconds.clone(),
        );
        let gateway_refusals = Family::<CodeLabel, Counter>::default();
        registry.register(
            "gateway_refusals",
            "Records gateway requests this node refused as holder, by code",
            gateway_refusals.clone(),
        );
        Self {
            registry,
            height,
            round,
            mempool,
            peers,
            commit_latency,
            committed_transactions,
            requests,
            request_seconds,
            gateway_refusals,
        }
    }

    /// Records a refusal by this node's records gateway.
    pub fn observe_gateway_refusal(&self, code: &str) {
        self.gateway_refusals
            .get_or_create(&CodeLabel { code: code.into() })
            .inc();
    }

    /// Records a commit of a block proposed at `proposed_ms`.
    pub fn observe_commit(&self, proposed_ms: u64, transactions: usize) {
        let latency = now().0.saturating_sub(proposed_ms);
        self.commit_latency.observe(latency as f64 / 1000.0);
        self.committed_transactions.inc_by(transactions as u64);
    }

    /// Records an API request.
    pub fn observe_request(&self, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the live figures the caller read just now.
    pub fn render(&self, live: Live) -> Response {
        // Gauges are i64 in the exposition; a height, round, mempool size or
        // peer count past i64::MAX (9.2e18) cannot happen in a node's life,
        // and were it to, the gauge would read its largest value.
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.height.set(gauge(live.height));
        self.round.set(gauge(live.round));
        self.mempool.set(gauge(live.mempool));
        self.peers.set(gauge(live.peers));
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        warp::reply::with_header(
            text,
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .into_response()
    }
}
