//! The node's HTTP API: one route table ([`ROUTES`]) that the dispatcher,
//! the OpenAPI test and the metrics all read, so no route escapes the
//! limits, the authentication or the documentation.
//!
//! Every request is rate-limited (per signing key when signed, per address
//! otherwise), its body read only up to its route's bound, its query checked
//! against the route's parameters, and every error is a JSON body with a
//! stable `code` and a `message` a developer can act on.

mod access;
mod auth;
mod chain;
mod events;
mod fhir;
#[cfg(test)]
mod openapi;
mod patients;
mod records;

/// The parsers the fuzz targets call (see `crate::fuzz`).
pub(crate) mod fuzz_entry {
    pub(crate) use super::chain::{gossip_body, submit_body, submit_many_body};
    pub(crate) use super::records::fetch_body;

    /// The `Authorization` header's value as a client sent it.
    pub(crate) fn authorization(value: &[u8]) -> bool {
        let Ok(value) = warp::http::HeaderValue::from_bytes(value) else {
            return false;
        };
        let mut headers = warp::http::HeaderMap::new();
        headers.insert("authorization", value);
        let Ok(Some(auth)) = super::auth::token(&headers, "") else {
            return false;
        };
        // The signature check that follows decoding (before nonces and rates).
        if let Ok(id) = medledger_contracts::types::ChainId::new("medledger-fuzz") {
            let chain = medledger_contracts::types::Chain::new(
                id,
                medledger_contracts::crypto::CryptoSuite::Ed25519Sha256,
            );
            let digest = auth.digest_for(&chain, "GET", "/v1/status", b"");
            let _ = auth.public_key.verify(&digest, &auth.signature);
        }
        true
    }

    /// A request line's path and query: the route it matches and the check
    /// of its query against that route.
    pub(crate) fn route_and_query(input: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(input) else {
            return false;
        };
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        let mut taken = false;
        for method in [warp::http::Method::GET, warp::http::Method::POST] {
            let Ok((spec, params)) = super::match_route(&method, path) else {
                continue;
            };
            assert!(params.iter().all(|p| !p.is_empty()));
            if super::check_query(spec, query).is_err() {
                continue;
            }
            // Each path parameter through its route's parser, and the paging.
            let names = spec.path.split('/').filter(|s| s.starts_with('{'));
            let parsed = names.zip(&params).all(|(name, value)| match name {
                "{height}" => super::chain::parse_height(value).is_ok(),
                "{patient}" => super::patients::parse_patient(value).is_ok(),
                "{practitioner}" => super::patients::parse_practitioner(value).is_ok(),
                "{institution}" => super::patients::parse_institution(value).is_ok(),
                "{tx}" | "{grant}" | "{request}" => super::chain::parse_tx(value).is_ok(),
                _ => true,
            });
            let request = super::Request {
                query: query.to_string(),
                params: params.clone(),
                body: Default::default(),
                reader: None,
                remote: None,
            };
            let paged = spec.query.is_empty() || super::patients::Page::of(&request).is_ok();
            taken |= parsed && paged;
        }
        taken
    }
}

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

pub use auth::AuthLimits;

use self::access::Reader;
use self::auth::Authenticator;
use super::shared::Shared;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: chain data that names no one (headers, certificates, status).
    Public,
    /// A signed request (see `contracts::request_auth`); answers are filtered
    /// to what the signer may read.
    Signed,
    /// Another member's node, signing with its node key.
    Peer,
}

/// One route.
#[derive(Clone, Copy, Debug)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path template; `{name}` is one segment.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What body it takes.
    pub body: Body,
    /// Largest body accepted (0: none).
    pub body_max: usize,
    /// Query parameters it takes (any other is refused).
    pub query: &'static [&'static str],
    /// What it answers with on success.
    pub reply: Success,
    /// The error statuses it may answer beyond those every route may
    /// ([`COMMON_ERRORS`], and 403 for signed routes).
    pub errors: &'static [u16],
}

/// A route's request body.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    /// None.
    Empty,
    /// JSON of the API type whose schema has this name.
    Json(fn() -> String),
    /// BCS bytes (`application/octet-stream`), described in words.
    Bcs(&'static str),
}

/// What a route answers with on success (200).
#[derive(Clone, Copy, Debug)]
pub enum Success {
    /// JSON of the API type whose schema has this name.
    Json(fn() -> String),
    /// Server-sent events: each event's name and the schema of its data.
    Events(&'static [SseEvent]),
    /// A FHIR R4 resource (`application/fhir+json`) of the API type whose
    /// schema has this name.
    Fhir(fn() -> String),
    /// Length-prefixed BCS frames (`application/octet-stream`).
    Frames,
    /// The OpenAPI document.
    OpenApi,
    /// OpenMetrics text.
    Metrics,
    /// One of the patient app's files.
    AppFile,
}

/// A server-sent event's name and the name of its data's schema.
pub type SseEvent = (&'static str, fn() -> String);

/// Error statuses every route may answer: a bad query or header (400,
/// 401), a body over the route's bound (413), too many requests (429), a
/// failure inside the node (500), too many clients at once (503).
pub const COMMON_ERRORS: &[u16] = &[400, 401, 413, 429, 500, 503];

/// Query parameters a route cannot do without (the handler answers 400
/// `missing_query_parameter`); every other listed parameter is optional.
pub const REQUIRED_QUERY: &[(&str, &str)] = &[("/fhir/AuditEvent", "patient")];

const NO_BODY: usize = 0;
const PAGE: &[&str] = &["after", "limit"];

use medledger_api as api;
use medledger_api::schema_name as name;

/// Every route the node serves.
#[rustfmt::skip]
pub const ROUTES: &[RouteSpec] = &[
    route("POST", "/v1/tx", Access::Public, Body::Json(name::<api::SubmitBody>), chain::SUBMIT_BODY_MAX, &[], Success::Json(name::<api::SubmitAnswer>), &[202, 409, 422]),
    route("POST", "/v1/txs", Access::Public, Body::Json(name::<api::SubmitManyBody>), chain::SUBMIT_MANY_BODY_MAX, &[], Success::Json(name::<api::SubmitManyAnswer>), &[]),
    route("POST", "/v1/gossip", Access::Peer, Body::Bcs("BCS of a list of signed transactions' BCS bytes"), chain::GOSSIP_BODY_MAX, &[], Success::Json(name::<api::GossipAnswer>), &[]),
    get("/v1/status", Access::Public, &[], Success::Json(name::<api::Status>), &[]),
    get("/v1/headers/{height}", Access::Public, &[], Success::Json(name::<api::Header>), &[404]),
    get("/v1/blocks/{height}", Access::Public, &[], Success::Json(name::<api::BlockAnswer>), &[404]),
    get("/v1/blocks/{height}/transactions", Access::Public, &[], Success::Json(name::<api::BlockTransactions>), &[404]),
    get("/v1/certificates/{height}", Access::Public, &[], Success::Json(name::<api::Certificate>), &[404]),
    get("/v1/validators/{height}", Access::Public, &[], Success::Json(name::<api::Validators>), &[404]),
    get("/v1/receipts/{tx}", Access::Public, &[], Success::Json(name::<api::Receipt>), &[404]),
    get("/v1/archive/{height}", Access::Signed, &[], Success::Json(name::<api::Archived>), &[404]),
    get("/v1/transactions/{tx}", Access::Signed, &[], Success::Json(name::<api::TransactionAnswer>), &[]),
    get("/v1/grants/{grant}", Access::Signed, &["height"], Success::Json(name::<api::ProvedGrant>), &[404]),
    get("/v1/patients/{patient}/grants", Access::Signed, PAGE, Success::Json(name::<api::Page<api::Grant>>), &[]),
    get("/v1/patients/{patient}/consent-requests", Access::Signed, PAGE, Success::Json(name::<api::Page<api::ConsentRequest>>), &[]),
    get("/v1/patients/{patient}/delegations", Access::Signed, PAGE, Success::Json(name::<api::Page<api::Delegation>>), &[]),
    get("/v1/patients/{patient}/history", Access::Signed, PAGE, Success::Json(name::<api::Page<api::AuditEntry>>), &[]),
    get("/v1/patients/{patient}/recovery", Access::Signed, &[], Success::Json(name::<api::Recovery>), &[404]),
    get("/v1/institutions", Access::Public, &[], Success::Json(name::<api::InstitutionList>), &[]),
    get("/v1/institutions/{institution}", Access::Public, &[], Success::Json(name::<api::Institution>), &[404]),
    get("/v1/institutions/{institution}/grants", Access::Signed, PAGE, Success::Json(name::<api::Page<api::Grant>>), &[]),
    get("/v1/institutions/{institution}/accesses", Access::Signed, PAGE, Success::Json(name::<api::Page<api::Access>>), &[]),
    get("/v1/groups", Access::Public, &[], Success::Json(name::<api::GroupList>), &[]),
    get("/v1/proposals", Access::Public, &[], Success::Json(name::<api::ProposalList>), &[]),
    get("/v1/proposals/{proposal}", Access::Public, &[], Success::Json(name::<api::Proposal>), &[404]),
    get("/v1/practitioners/{practitioner}", Access::Public, &[], Success::Json(name::<api::Practitioner>), &[404]),
    get("/v1/licences/{licence}", Access::Public, &[], Success::Json(name::<api::Licence>), &[404]),
    get("/v1/practitioners/{practitioner}/grants", Access::Signed, PAGE, Success::Json(name::<api::Page<api::Grant>>), &[]),
    get("/v1/practitioners/{practitioner}/accesses", Access::Signed, PAGE, Success::Json(name::<api::Page<api::Access>>), &[]),
    get("/v1/accesses/{request}", Access::Signed, &[], Success::Json(name::<api::Access>), &[]),
    route("POST", "/v1/records/fetch", Access::Signed, Body::Json(name::<api::FetchBody>), records::FETCH_BODY_MAX, &[], Success::Frames, &[404, 409, 502]),
    get("/v1/own-accesses/{request}", Access::Signed, &[], Success::Json(name::<api::OwnAccess>), &[]),
    route("POST", "/v1/records/own-fetch", Access::Signed, Body::Json(name::<api::FetchBody>), records::FETCH_BODY_MAX, &[], Success::Frames, &[404, 409, 502]),
    get("/v1/events/blocks", Access::Public, &[], Success::Events(&[("block", name::<api::BlockEvent>), ("lagged", name::<api::LaggedEvent>)]), &[]),
    get("/v1/events/patients/{patient}", Access::Signed, &[], Success::Events(&[("audit", name::<api::AuditEntry>), ("lagged", name::<api::LaggedEvent>), ("ended", name::<api::EndedEvent>)]), &[]),
    get("/fhir/Consent/{grant}", Access::Signed, &[], Success::Fhir(name::<api::fhir::Consent>), &[]),
    get("/fhir/AuditEvent", Access::Signed, &["patient", "after", "limit"], Success::Fhir(name::<api::fhir::Bundle>), &[]),
    get("/v1/openapi.json", Access::Public, &[], Success::OpenApi, &[]),
    get("/app", Access::Public, &[], Success::AppFile, &[]),
    get("/app/{file}", Access::Public, &[], Success::AppFile, &[404]),
    get("/metrics", Access::Public, &[], Success::Metrics, &[]),
];

#[allow(clippy::too_many_arguments)]
const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    body: Body,
    body_max: usize,
    query: &'static [&'static str],
    reply: Success,
    errors: &'static [u16],
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        body,
        body_max,
        query,
        reply,
        errors,
    }
}

const fn get(
    path: &'static str,
    access: Access,
    query: &'static [&'static str],
    reply: Success,
    errors: &'static [u16],
) -> RouteSpec {
    route(
        "GET",
        path,
        access,
        Body::Empty,
        NO_BODY,
        query,
        reply,
        errors,
    )
}

/// The OpenAPI document, kept in `docs/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// An error answer: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// For 405: the methods the path takes (the `Allow` header, RFC 9110 §15.5.6).
    allow: Option<String>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    fn forbidden() -> Self {
        // The same answer whether or not the thing exists: a refusal must
        // not tell an outsider that a patient has grants or records.
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the signer may not read this (or it does not exist)",
        )
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "API request failed inside the node");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node failed to answer; its log says why",
        )
    }

    fn into_response(self) -> Response {
        let body = medledger_api::ErrorBody {
            code: self.code.to_string(),
            message: self.message,
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(allow) = self.allow.and_then(|a| a.parse().ok()) {
            response.headers_mut().insert("allow", allow);
        }
        response
    }
}

impl From<medledger_store::StoreError> for ApiError {
    fn from(e: medledger_store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<medledger_contracts::state::StateError> for ApiError {
    fn from(e: medledger_contracts::state::StateError) -> Self {
        Self::internal(e)
    }
}

/// What a handler returns.
pub type Answer = Result<Response, ApiError>;

fn ok<T: serde::Serialize>(body: &T) -> Answer {
    Ok(warp::reply::json(body).into_response())
}

/// A request as the handlers see it.
pub struct Request {
    /// The raw query string (empty if none).
    pub query: String,
    /// Values of the route's `{…}` segments, in order.
    pub params: Vec<String>,
    /// The body, within the route's bound.
    pub body: Bytes,
    /// The verified signer, for signed and peer routes.
    pub reader: Option<Reader>,
    /// Where the request came from (for per-address limits).
    pub remote: Option<SocketAddr>,
}

impl Request {
    /// A query parameter (already checked to be one the route takes).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// A numeric query parameter.
    pub fn query_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.query_param(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "bad_query",
                        format!("query parameter `{name}` must be a whole number, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    fn reader(&self) -> Result<&Reader, ApiError> {
        self.reader.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "this route needs a signed request",
            )
        })
    }
}

/// The API's state: the node's shared state, the authenticator and the metrics.
pub struct Api {
    shared: Arc<Shared>,
    auth: Authenticator,
    relay: Option<crate::gateway::Relay>,
}

impl Api {
    /// The API over a node's shared state.
    pub fn new(
        shared: Arc<Shared>,
        limits: AuthLimits,
        relay: Option<crate::gateway::Relay>,
    ) -> Self {
        Self {
            auth: Authenticator::new(limits),
            shared,
            relay,
        }
    }
}

/// Matches a path against the route table: the route and its parameters.
fn match_route(method: &Method, path: &str) -> Result<(&'static RouteSpec, Vec<String>), ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut allowed: Vec<&str> = Vec::new();
    for spec in ROUTES {
        let template: Vec<&str> = spec.path.trim_start_matches('/').split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let matched = template.iter().zip(&segments).all(|(t, s)| {
            if t.starts_with('{') {
                params.push((*s).to_string());
                !s.is_empty()
            } else {
                t == s
            }
        });
        if !matched {
            continue;
        }
        if spec.method == method.as_str() {
            return Ok((spec, params));
        }
        allowed.push(spec.method);
    }
    Err(if !allowed.is_empty() {
        allowed.sort_unstable();
        allowed.dedup();
        let allow = allowed.join(", ");
        ApiError {
            allow: Some(allow.clone()),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} does not take {method}; it takes {allow}"),
            )
        }
    } else {
        ApiError::not_found(
            "not_found",
            format!("no route {path}; see /v1/openapi.json"),
        )
    })
}

fn check_query(spec: &RouteSpec, query: &str) -> Result<(), ApiError> {
    let mut seen = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(k, _)| k);
        if !spec.query.contains(&name) && name != "auth" {
            return Err(ApiError::bad_request(
                "unknown_query_parameter",
                format!(
                    "{} takes no query parameter `{name}` (it takes: {})",
                    spec.path,
                    if spec.query.is_empty() {
                        "none".to_string()
                    } else {
                        spec.query.join(", ")
                    }
                ),
            ));
        }
        if seen.contains(&name) {
            return Err(ApiError::bad_request(
                "repeated_query_parameter",
                format!("query parameter `{name}` is given twice"),
            ));
        }
        seen.push(name);
    }
    Ok(())
}

async fn read_body<S, B>(mut stream: S, max: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::bad_request("body_unreadable", format!("reading the body failed: {e}"))
        })?;
        if body.len() + chunk.remaining() > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("this route accepts at most {max} bytes of body"),
            ));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// All routes, as one warp filter.
pub fn routes(
    api: Arc<Api>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .and(warp::any().map(move || api.clone()))
        .then(
            |method: Method,
             path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             remote: Option<SocketAddr>,
             body,
             api: Arc<Api>| async move {
                let started = Instant::now();
                let (label, response) =
                    match handle(&api, method, path.as_str(), query, headers, remote, body).await {
                        (label, Ok(r)) => (label, r),
                        (label, Err(e)) => (label, e.into_response()),
                    };
                api.shared.metrics.observe_request(
                    label,
                    response.status().as_u16(),
                    started.elapsed(),
                );
                response
            },
        )
        .recover(|rejection: warp::Rejection| async move {
            // Only a malformed request line or headers get here.
            Ok::<_, Infallible>(
                ApiError::bad_request("bad_request", format!("{rejection:?}")).into_response(),
            )
        })
        .unify()
}

async fn handle<S, B>(
    api: &Api,
    method: Method,
    path: &str,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: S,
) -> (&'static str, Answer)
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let (spec, params) = match match_route(&method, path) {
        Ok(found) => found,
        Err(e) => return ("unmatched", Err(e)),
    };
    let answer = async {
        check_query(spec, &query)?;
        let token = auth::token(&headers, &query)?;
        api.auth.rate_limit(token.as_ref(), remote)?;
        let body = read_body(body, spec.body_max).await?;
        let reader = match (spec.access, token) {
            (Access::Public, _) => None,
            (_, None) => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    format!(
                        "{} {} needs a signed request: `Authorization: Medledger <hex of BCS RequestAuth>` (see docs/api.md)",
                        spec.method, spec.path
                    ),
                ));
            }
            (access, Some(token)) => {
                let signed = medledger_contracts::request_auth::signed_path(path, &query);
                let reader = api
                    .auth
                    .authenticate(&api.shared, &token, method.as_str(), &signed, &body)
                    .inspect_err(|_| api.auth.charge_failure(remote))?;
                if access == Access::Peer && reader.node_of.is_none() {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "not_a_member_node",
                        "only member nodes, signing with their node key, may call this route",
                    ));
                }
                Some(reader)
            }
        };
        let request = Request {
            query,
            params,
            body,
            reader,
            remote,
        };
        dispatch(api, spec, &request).await
    }
    .await;
    (spec.path, answer)
}

async fn dispatch(api: &Api, spec: &RouteSpec, r: &Request) -> Answer {
    let shared = &api.shared;
    match spec.path {
        "/v1/tx" => chain::submit(shared, r).await,
        "/v1/txs" => chain::submit_many(shared, r, &api.auth).await,
        "/v1/gossip" => chain::gossip(shared, r).await,
        "/v1/status" => chain::status(shared),
        "/v1/headers/{height}" => chain::header(shared, r.param(0)),
        "/v1/blocks/{height}" => chain::block(shared, r.param(0)),
        "/v1/blocks/{height}/transactions" => chain::block_transactions(shared, r.param(0)),
        "/v1/certificates/{height}" => chain::certificate(shared, r.param(0)),
        "/v1/validators/{height}" => chain::validators(shared, r.param(0)),
        "/v1/receipts/{tx}" => chain::receipt(shared, r.param(0)),
        "/v1/archive/{height}" => chain::archived(shared, r),
        "/v1/transactions/{tx}" => patients::transaction(shared, r),
        "/v1/grants/{grant}" => patients::grant(shared, r),
        "/v1/patients/{patient}/grants" => {
            patients::patient_list(shared, r, patients::List::Grants)
        }
        "/v1/patients/{patient}/consent-requests" => {
            patients::patient_list(shared, r, patients::List::ConsentRequests)
        }
        "/v1/patients/{patient}/delegations" => {
            patients::patient_list(shared, r, patients::List::Delegations)
        }
        "/v1/patients/{patient}/history" => {
            patients::patient_list(shared, r, patients::List::History)
        }
        "/v1/patients/{patient}/recovery" => patients::recovery(shared, r),
        "/v1/institutions" => patients::institutions(shared),
        "/v1/institutions/{institution}" => patients::institution(shared, r),
        "/v1/proposals/{proposal}" => patients::proposal(shared, r),
        "/v1/institutions/{institution}/grants" => patients::party_grants(shared, r, false),
        "/v1/institutions/{institution}/accesses" => patients::party_accesses(shared, r, false),
        "/v1/practitioners/{practitioner}" => patients::practitioner(shared, r),
        "/v1/licences/{licence}" => patients::licence(shared, r),
        "/v1/proposals" => patients::proposals(shared),
        "/v1/groups" => patients::groups(shared),
        "/v1/practitioners/{practitioner}/grants" => patients::party_grants(shared, r, true),
        "/v1/practitioners/{practitioner}/accesses" => patients::party_accesses(shared, r, true),
        "/v1/accesses/{request}" => records::access(shared, r),
        "/v1/records/fetch" => records::fetch(shared, api.relay.as_ref(), r).await,
        "/v1/own-accesses/{request}" => records::own_access(shared, r),
        "/v1/records/own-fetch" => records::own_fetch(api.relay.as_ref(), r).await,
        "/v1/events/blocks" => events::blocks(shared),
        "/v1/events/patients/{patient}" => events::patient(shared, r),
        "/fhir/Consent/{grant}" => fhir::consent(shared, r),
        "/fhir/AuditEvent" => fhir::audit_events(shared, r),
        "/v1/openapi.json" => {
            Ok(
                warp::reply::with_header(OPENAPI, "content-type", "application/json")
                    .into_response(),
            )
        }
        "/metrics" => Ok(shared.metrics.render(shared.live_figures())),
        "/app" => app_file("index.html"),
        "/app/{file}" => app_file(r.param(0)),
        other => Err(ApiError::internal(format!("route {other} has no handler"))),
    }
}

/// The patient app (client-sdk/web), compiled into the binary.
pub(crate) const APP_FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../../client-sdk/web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../client-sdk/web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../client-sdk/web/api.js"),
    ),
    (
        "bcs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../client-sdk/web/bcs.js"),
    ),
    (
        "suite.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../client-sdk/web/suite.js"),
    ),
    (
        "records.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../client-sdk/web/records.js"),
    ),
    (
        // SM2 and SM3 for a patient on an sm2-sm3 chain, and the opening of
        // records sealed to the patient on either suite (app-crypto, built by build.rs).
        "app-crypto.wasm",
        "application/wasm",
        include_bytes!(concat!(env!("OUT_DIR"), "/app-crypto.wasm")),
    ),
    (
        "qr.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../client-sdk/web/qr.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../client-sdk/web/style.css"),
    ),
];

fn app_file(name: &str) -> Answer {
    let (_, content_type, body) = APP_FILES
        .iter()
        .find(|(n, ..)| *n == name)
        .ok_or_else(|| ApiError::not_found("not_found", format!("the app has no file {name}")))?;
    let reply = warp::reply::with_header(*body, "content-type", *content_type);
    // The app's code decides what the patient's key signs: no stale copies, no framing.
    let reply = warp::reply::with_header(reply, "cache-control", "no-cache");
    let reply = warp::reply::with_header(reply, "x-frame-options", "DENY");
    let reply = warp::reply::with_header(
        reply,
        "content-security-policy",
        // 'wasm-unsafe-eval' lets the app compile its own SM2 module
        // (served from here); it allows no eval of script text.
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'",
    );
    Ok(reply.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for spec in ROUTES {
            let method = spec.method.to_lowercase();
            assert!(
                doc["paths"][spec.path][&method].is_object(),
                "{} {} is not in docs/openapi.json",
                spec.method,
                spec.path
            );
        }
        // And nothing documented that the node does not serve.
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                assert!(
                    ROUTES
                        .iter()
                        .any(|s| s.path == path && s.method.to_lowercase() == *method),
                    "docs/openapi.json documents {method} {path}, which the node does not serve"
                );
            }
        }
    }

    #[test]
    fn a_gossip_batch_is_bounded_by_its_count_before_it_is_decoded() {
        let most = vec![vec![0u8]; chain::GOSSIP_TRANSACTIONS_MAX];
        let body = medledger_contracts::encoding::to_bytes(&most);
        assert_eq!(chain::gossip_body(&body).unwrap().len(), most.len());
        // One more, or a length prefix claiming millions of empty entries
        // (one byte each), is refused.
        let over = vec![vec![0u8]; chain::GOSSIP_TRANSACTIONS_MAX + 1];
        let body = medledger_contracts::encoding::to_bytes(&over);
        assert!(chain::gossip_body(&body).is_err());
        let mut claimed = vec![0x80, 0x80, 0x80, 0x04]; // ULEB128 of 2^23
        claimed.resize(claimed.len() + (1 << 23), 0);
        assert!(chain::gossip_body(&claimed).is_err());
    }

    #[test]
    fn routes_match_with_parameters_and_methods() {
        let (spec, params) = match_route(&Method::GET, "/v1/patients/ab/grants").unwrap();
        assert_eq!(spec.path, "/v1/patients/{patient}/grants");
        assert_eq!(params, vec!["ab".to_string()]);
        let refused = match_route(&Method::POST, "/v1/status").unwrap_err();
        assert_eq!(refused.code, "method_not_allowed");
        assert_eq!(refused.allow.as_deref(), Some("GET"));
        let response = refused.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "GET");
        assert_eq!(
            match_route(&Method::DELETE, "/v1/tx")
                .unwrap_err()
                .allow
                .as_deref(),
            Some("POST")
        );
        assert_eq!(
            match_route(&Method::GET, "/v2/x").unwrap_err().code,
            "not_found"
        );
        assert_eq!(
            match_route(&Method::GET, "/v1/headers/").unwrap_err().code,
            "not_found"
        );
    }

    #[test]
    fn unknown_and_repeated_query_parameters_are_refused() {
        let spec = ROUTES
            .iter()
            .find(|s| s.path == "/v1/grants/{grant}")
            .unwrap();
        assert!(check_query(spec, "height=3").is_ok());
        assert_eq!(
            check_query(spec, "hieght=3").unwrap_err().code,
            "unknown_query_parameter"
        );
        assert_eq!(
            check_query(spec, "height=3&height=4").unwrap_err().code,
            "repeated_query_parameter"
        );
    }
}
