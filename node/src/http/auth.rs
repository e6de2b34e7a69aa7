//! Who is asking: signed requests (`contracts::request_auth`), their replay
//! window, and request-rate limits per signing key or per address.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use medledger_contracts::crypto::{KeyCache, PublicKey};
use medledger_contracts::encoding::from_bytes;
use medledger_contracts::request_auth::{REQUEST_AUTH_BYTES_MAX, RequestAuth};
use warp::http::{HeaderMap, StatusCode};

use super::ApiError;
use super::access::{Reader, ReaderError, resolve_reader};
use crate::clock::now;
use crate::shared::Shared;

/// Limits on who may ask how often, and how old a signature may be.
#[derive(Clone, Copy, Debug)]
pub struct AuthLimits {
    /// Requests per second one signing key may make (sustained).
    pub per_key_per_second: u32,
    /// Requests per second one address may make without signing.
    pub per_address_per_second: u32,
    /// How far a request's time may be from this node's clock, in ms.
    pub window_ms: u64,
}

/// Most (key, nonce) pairs remembered. Past this the oldest are forgotten
/// first, never refusing a request signed just now: many keys of one
/// member's own making cannot make every signed read busy (issue 16, item
/// 7). What a forgotten entry protected stays protected: the table then
/// refuses requests dated at or before it (a "floor"), but the floor never
/// rises above [`FLOOR_LAG_MS`] before now, so a request signed in the last
/// seconds always passes. An entry younger than that could be forgotten only
/// if this node verified a million requests within those seconds, far
/// beyond what it can verify; and a signed read is valid at this node only
/// (request_auth rule 4).
const NONCES_MAX: usize = 1_000_000;

/// How far behind now the replay floor may rise at most.
const FLOOR_LAG_MS: u64 = 5_000;

/// What spending a nonce came to.
#[derive(Debug, PartialEq, Eq)]
enum Spent {
    Fresh,
    /// Seen inside the window.
    Replayed,
    /// Dated at or before an entry forgotten early: it might be a replay.
    BeforeFloor,
}

/// The nonces seen inside the window, by the time they expire at, bounded.
struct NonceTable {
    /// (time the entry leaves the window's reach, key, nonce).
    by_time: std::collections::BTreeSet<(u64, Vec<u8>, u64)>,
    seen: HashMap<(Vec<u8>, u64), u64>,
    /// Requests dated at or before this are refused (see [`NONCES_MAX`]).
    floor: u64,
    capacity: usize,
}

impl NonceTable {
    fn new(capacity: usize) -> Self {
        Self {
            by_time: std::collections::BTreeSet::new(),
            seen: HashMap::new(),
            floor: 0,
            capacity,
        }
    }

    /// Spends `nonce` of `key` for a request dated `time`, at `now`.
    fn spend(&mut self, key: &[u8], nonce: u64, time: u64, now: u64, window: u64) -> Spent {
        let entry = (key.to_vec(), nonce);
        if self.seen.contains_key(&entry) {
            return Spent::Replayed;
        }
        if time <= self.floor {
            return Spent::BeforeFloor;
        }
        // A request dated `time` is accepted until `time + window`; its
        // entry is needed until then, and no longer.
        while let Some(first) = self.by_time.first() {
            let expired = first.0 < now;
            if !expired && self.by_time.len() < self.capacity {
                break;
            }
            if !expired {
                // Forgotten early: nothing dated at or before it may pass.
                let dated = first.0.saturating_sub(window);
                self.floor = self.floor.max(dated.min(now.saturating_sub(FLOOR_LAG_MS)));
            }
            if let Some((_, k, n)) = self.by_time.pop_first() {
                self.seen.remove(&(k, n));
            }
        }
        if time <= self.floor {
            return Spent::BeforeFloor;
        }
        let until = time.saturating_add(window);
        self.by_time.insert((until, entry.0.clone(), entry.1));
        self.seen.insert(entry, until);
        Spent::Fresh
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_time.len()
    }
}

/// Checks signatures, remembers nonces, limits rates.
pub struct Authenticator {
    limits: AuthLimits,
    /// Keyed by (signing key, address), for keys in `known` only: the limit
    /// is checked before the signature is, so someone who names another's
    /// key from elsewhere only spends their own budget, never the holder's.
    per_key: DefaultKeyedRateLimiter<(Vec<u8>, Option<IpAddr>)>,
    /// Unsigned requests, and signed ones by keys not in `known`: a fresh
    /// key per request is charged here, to its address, like no key at all.
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    /// Keys that authenticated recently (signature valid, signer registered
    /// with that key): only these get a budget of their own.
    known: Mutex<HashSet<PublicKey>>,
    /// Addresses whose failed authentications overran their address budget,
    /// and until when: from there even known keys' budgets are closed, so
    /// naming others' keys with forged signatures gains nothing.
    barred: Mutex<HashMap<IpAddr, std::time::Instant>>,
    /// (public key bytes, nonce) pairs spent inside the window.
    seen: Mutex<NonceTable>,
    /// Readers' keys, decompressed once (a hospital's system signs thousands
    /// of requests with one key).
    prepared: KeyCache,
}

/// Most prepared keys kept; past this the cache starts afresh.
const PREPARED_KEYS_MAX: usize = 10_000;

/// Most keys remembered as having authenticated; past this the set starts
/// afresh (their next request is charged to its address until it verifies).
const KNOWN_KEYS_MAX: usize = 100_000;

/// Most entries one rate limiter keeps (they are keyed by outside input):
/// past this, entries whose budget has refilled are dropped, and if the
/// limiter is still full a request with a new key or address is refused
/// until some go idle, so memory stays bounded under any flood.
const LIMITER_ENTRIES_MAX: usize = 100_000;

fn rate_limited() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests from this key or address; slow down and retry",
    )
}

/// Spends one unit of `key`'s budget in `limiter`, keeping the limiter within
/// [`LIMITER_ENTRIES_MAX`] entries.
fn spend<K: Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    if limiter.len() >= LIMITER_ENTRIES_MAX {
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() >= LIMITER_ENTRIES_MAX {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many clients at once; retry shortly",
            ));
        }
    }
    limiter.check_key(key).map_err(|_| rate_limited())
}

fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    // A burst of one second's worth: clients that batch are not punished.
    Quota::per_second(rate).allow_burst(rate)
}

/// The request's auth token, from `Authorization: Medledger <hex>`. One in
/// the URL (`?auth=`) is refused: proxies and access logs keep URLs, and a
/// signed read's token must not outlive its request there.
pub fn token(headers: &HeaderMap, query: &str) -> Result<Option<RequestAuth>, ApiError> {
    // Refused even beside a header: a token in the URL is already in logs.
    if query
        .split('&')
        .any(|pair| pair == "auth" || pair.starts_with("auth="))
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_authorization",
            "send the request signature in the Authorization header, never in the URL",
        ));
    }
    let text = if let Some(value) = headers.get("authorization") {
        let value = value.to_str().unwrap_or("");
        Some(value.strip_prefix("Medledger ").ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_authorization",
                "the Authorization header must be `Medledger <hex of BCS RequestAuth>`",
            )
        })?)
    } else {
        None
    };
    let Some(text) = text else {
        return Ok(None);
    };
    let bytes = hex::decode(text.trim()).map_err(|e| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_authorization",
            format!("the request signature is not hex: {e}"),
        )
    })?;
    from_bytes::<RequestAuth>(&bytes, REQUEST_AUTH_BYTES_MAX)
        .map(Some)
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_authorization",
                format!("the request signature does not decode: {e}"),
            )
        })
}

impl Authenticator {
    /// A fresh authenticator.
    pub fn new(limits: AuthLimits) -> Self {
        Self {
            limits,
            per_key: RateLimiter::keyed(quota(limits.per_key_per_second)),
            per_address: RateLimiter::keyed(quota(limits.per_address_per_second)),
            seen: Mutex::new(NonceTable::new(NONCES_MAX)),
            prepared: KeyCache::new(PREPARED_KEYS_MAX),
            known: Mutex::new(HashSet::new()),
            barred: Mutex::new(HashMap::new()),
        }
    }

    /// Charges a signed request that failed authentication to its address;
    /// past the address's budget, the address is barred for a second.
    pub fn charge_failure(&self, remote: Option<SocketAddr>) {
        let Some(addr) = remote else {
            return;
        };
        if spend(&self.per_address, &addr.ip()).is_ok() {
            return;
        }
        let now = std::time::Instant::now();
        let mut barred = self.barred.lock().unwrap_or_else(|p| p.into_inner());
        if barred.len() >= LIMITER_ENTRIES_MAX {
            barred.retain(|_, until| *until > now);
            if barred.len() >= LIMITER_ENTRIES_MAX {
                barred.clear();
            }
        }
        barred.insert(addr.ip(), now + std::time::Duration::from_secs(1));
    }

    fn is_barred(&self, remote: Option<SocketAddr>) -> bool {
        let Some(addr) = remote else {
            return false;
        };
        let barred = self.barred.lock().unwrap_or_else(|p| p.into_inner());
        barred
            .get(&addr.ip())
            .is_some_and(|until| *until > std::time::Instant::now())
    }

    fn is_known(&self, key: &PublicKey) -> bool {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.contains(key)
    }

    fn remember(&self, key: &PublicKey) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KNOWN_KEYS_MAX {
            known.clear();
        }
        known.insert(*key);
    }

    /// Refuses a request over its signer's (or, unsigned, its address's) rate.
    pub fn rate_limit(
        &self,
        token: Option<&RequestAuth>,
        remote: Option<SocketAddr>,
    ) -> Result<(), ApiError> {
        if token.is_some() && self.is_barred(remote) {
            return Err(rate_limited());
        }
        match (token, remote) {
            (Some(t), addr) if self.is_known(&t.public_key) => spend(
                &self.per_key,
                &(t.public_key.raw_bytes().to_vec(), addr.map(|a| a.ip())),
            ),
            (_, Some(addr)) => spend(&self.per_address, &addr.ip()),
            (_, None) => Ok(()),
        }
    }

    /// Charges `extra` more units to an unsigned request's address: a
    /// request that carries many transactions (`POST /v1/txs`) spends the
    /// budget of as many requests, so batching cannot multiply what one
    /// address may make the node verify.
    pub fn charge_address(&self, remote: Option<SocketAddr>, extra: u32) -> Result<(), ApiError> {
        let (Some(addr), Some(extra)) = (remote, NonZeroU32::new(extra)) else {
            return Ok(());
        };
        match self.per_address.check_key_n(&addr.ip(), extra) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this address has sent too many transactions for now; slow down and retry",
            )),
            Err(_) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "a batch this size is more than this address may send in a second ({} transactions); send smaller batches",
                    self.limits.per_address_per_second
                ),
            )),
        }
    }

    /// Checks a signed request and says who signed it.
    pub fn authenticate(
        &self,
        shared: &Shared,
        auth: &RequestAuth,
        method: &str,
        signed_path: &str,
        body: &[u8],
    ) -> Result<Reader, ApiError> {
        let unauthorized = |code: &'static str, message: String| {
            ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        };
        // Rule 4: signed for this institution's node, or replayable elsewhere.
        if auth.node != shared.institution {
            return Err(unauthorized(
                "wrong_node",
                format!(
                    "the request was signed for {}'s node; this is {}'s: sign it for the node you ask (its institution is in GET /v1/status)",
                    auth.node.as_str(),
                    shared.institution.as_str()
                ),
            ));
        }
        let now = now().0;
        let skew = now.abs_diff(auth.time.0);
        if skew > self.limits.window_ms {
            return Err(unauthorized(
                "stale_request",
                format!(
                    "the request's time is {skew} ms from this node's clock; at most {} ms is accepted (check the clock, sign each request afresh)",
                    self.limits.window_ms
                ),
            ));
        }
        let bad_signature = |e: medledger_contracts::crypto::CryptoError| {
            unauthorized(
                "bad_signature",
                format!(
                    "the request signature does not verify over {method} {signed_path} on chain {}: {e}",
                    shared.chain.id.as_str()
                ),
            )
        };
        // The key first: one of another suite is refused before the body is hashed.
        let key = self
            .prepared
            .prepare(shared.chain.suite, &auth.public_key)
            .map_err(bad_signature)?;
        let digest = auth.digest_for(&shared.chain, method, signed_path, body);
        key.verify(&digest, &auth.signature)
            .map_err(bad_signature)?;
        let reader = resolve_reader(shared, auth).map_err(|e| match e {
            ReaderError::StateUnavailable(why) => ApiError::internal(why),
            ReaderError::Refused(why) => unauthorized("unknown_signer", why),
        })?;
        self.remember(&auth.public_key);
        // The nonce is spent only by a request that verified, so no one can
        // burn another key's nonces.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let spent = seen.spend(
            auth.public_key.raw_bytes(),
            auth.nonce,
            auth.time.0,
            now,
            self.limits.window_ms,
        );
        drop(seen);
        if spent == Spent::BeforeFloor {
            return Err(unauthorized(
                "stale_request",
                "this node has seen so many signed requests that it only accepts ones signed just now; sign it again".into(),
            ));
        }
        if spent == Spent::Replayed {
            return Err(unauthorized(
                "replayed_request",
                format!(
                    "nonce {} was already used by this key; sign every request with a new nonce",
                    auth.nonce
                ),
            ));
        }
        Ok(reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: u32) -> AuthLimits {
        AuthLimits {
            per_key_per_second: 100,
            per_address_per_second: per_address,
            window_ms: 1000,
        }
    }

    #[test]
    fn unsigned_requests_are_limited_per_address() {
        let auth = Authenticator::new(limits(2));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert!(auth.rate_limit(None, Some(a)).is_ok());
        assert!(auth.rate_limit(None, Some(a)).is_ok());
        assert_eq!(
            auth.rate_limit(None, Some(a)).unwrap_err().code,
            "rate_limited"
        );
        assert!(
            auth.rate_limit(None, Some(b)).is_ok(),
            "another address has its own budget"
        );
    }

    #[test]
    fn a_batch_spends_one_unit_per_transaction_of_its_address() {
        let auth = Authenticator::new(limits(10));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(auth.rate_limit(None, Some(a)).is_ok());
        assert!(auth.charge_address(Some(a), 8).is_ok());
        assert!(auth.rate_limit(None, Some(a)).is_ok(), "ten of ten spent");
        assert_eq!(
            auth.charge_address(Some(a), 1).unwrap_err().code,
            "rate_limited"
        );
        let b: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let e = auth.charge_address(Some(b), 11).unwrap_err();
        assert!(e.message.contains("smaller batches"), "{}", e.message);
    }

    #[test]
    fn naming_a_key_from_elsewhere_does_not_spend_the_key_holders_budget() {
        let auth = Authenticator::new(AuthLimits {
            per_key_per_second: 2,
            per_address_per_second: 100,
            window_ms: 1000,
        });
        let token = token_of(5);
        auth.remember(&token.public_key);
        let attacker: SocketAddr = "127.0.0.9:1".parse().unwrap();
        let holder: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..2 {
            assert!(auth.rate_limit(Some(&token), Some(attacker)).is_ok());
        }
        assert!(auth.rate_limit(Some(&token), Some(attacker)).is_err());
        assert!(auth.rate_limit(Some(&token), Some(holder)).is_ok());
    }

    /// Issue 16, item 7: many keys of one member's making (self-registered
    /// patients) fill the nonce table; on 8925727 every signed read was then
    /// refused `busy` until the window passed. Now the oldest nonces give
    /// way, nobody is refused, the table stays at its bound, and a recent
    /// nonce is still a replay.
    #[test]
    fn a_full_nonce_table_refuses_nobody_and_still_catches_recent_replays() {
        let mut table = NonceTable::new(1_000);
        let window = 60_000;
        let now = 1_000_000;
        for key in 0..2_000u32 {
            // The flood, its requests dated a little in the past.
            let time = now - 10_000 + u64::from(key);
            assert_eq!(
                table.spend(&key.to_be_bytes(), 1, time, now, window),
                Spent::Fresh
            );
        }
        assert_eq!(table.len(), 1_000);
        // An honest reader's request, signed now, is taken, and its replay refused.
        assert_eq!(table.spend(b"patient", 7, now, now, window), Spent::Fresh);
        assert_eq!(
            table.spend(b"patient", 7, now, now, window),
            Spent::Replayed
        );
        // A forgotten entry cannot be replayed: what is dated at or before
        // the newest forgotten one is refused.
        assert_eq!(
            table.spend(&0u32.to_be_bytes(), 1, now - 10_000, now, window),
            Spent::BeforeFloor
        );
        // The newest of the flood are still remembered.
        assert_eq!(
            table.spend(
                &1_999u32.to_be_bytes(),
                1,
                now - 10_000 + 1_999,
                now,
                window
            ),
            Spent::Replayed
        );
        // A flood dated ahead of the clock cannot raise the floor over a
        // request signed just now.
        let mut table = NonceTable::new(100);
        for key in 0..1_000u32 {
            table.spend(&key.to_be_bytes(), 1, now + 50_000, now, window);
        }
        assert_eq!(
            table.spend(b"patient", 9, now - 1_000, now, window),
            Spent::Fresh
        );
        // Past the window, entries leave by their time, whatever order
        // they came in (one dated ahead does not hold the others).
        let mut table = NonceTable::new(1_000);
        assert_eq!(
            table.spend(b"ahead", 1, now + window, now, window),
            Spent::Fresh
        );
        assert_eq!(table.spend(b"now", 1, now, now, window), Spent::Fresh);
        let later = now + window + 1;
        assert_eq!(
            table.spend(b"patient", 8, later, later, window),
            Spent::Fresh
        );
        assert_eq!(table.len(), 2);
    }

    fn token_of(seed: u8) -> RequestAuth {
        RequestAuth::sign(
            &medledger_contracts::types::Chain::new(
                medledger_contracts::types::ChainId::new("c").unwrap(),
                medledger_contracts::crypto::CryptoSuite::Ed25519Sha256,
            ),
            &medledger_contracts::types::InstitutionId::new("n").unwrap(),
            "GET",
            "/",
            b"",
            medledger_contracts::types::Timestamp(0),
            1,
            medledger_contracts::transaction::Signer::Institution(
                medledger_contracts::types::InstitutionId::new("x").unwrap(),
            ),
            &medledger_contracts::crypto::SecretKey::from_seed([seed; 32]),
        )
    }

    /// The attack: a fresh random key per request. On 4238e91 each key got
    /// a budget of its own (and a limiter entry), so an address was never
    /// limited; now an unknown key is charged to its address.
    #[test]
    fn a_fresh_key_per_request_does_not_escape_the_address_budget() {
        let auth = Authenticator::new(limits(3));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for seed in 1..=3 {
            assert!(auth.rate_limit(Some(&token_of(seed)), Some(a)).is_ok());
        }
        assert_eq!(
            auth.rate_limit(Some(&token_of(4)), Some(a))
                .unwrap_err()
                .code,
            "rate_limited"
        );
        assert_eq!(
            auth.rate_limit(None, Some(a)).unwrap_err().code,
            "rate_limited",
            "unsigned requests share that budget"
        );
        // A key that authenticated has a budget of its own.
        let known = token_of(9);
        auth.remember(&known.public_key);
        assert!(auth.rate_limit(Some(&known), Some(a)).is_ok());
    }

    /// Found in review: forged tokens naming keys known here (public keys
    /// are easy to collect) each got a budget of their own per address.
    #[test]
    fn failed_authentications_bar_the_address_for_known_keys_too() {
        let auth = Authenticator::new(limits(3));
        let attacker: SocketAddr = "127.0.0.9:1".parse().unwrap();
        let holder: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let known: Vec<RequestAuth> = (1..=5).map(token_of).collect();
        for t in &known {
            auth.remember(&t.public_key);
        }
        for _ in 0..4 {
            auth.charge_failure(Some(attacker));
        }
        for t in &known {
            assert_eq!(
                auth.rate_limit(Some(t), Some(attacker)).unwrap_err().code,
                "rate_limited"
            );
        }
        assert!(auth.rate_limit(Some(&known[0]), Some(holder)).is_ok());
    }

    #[test]
    fn limiters_keyed_by_outside_input_stay_bounded() {
        let auth = Authenticator::new(limits(1));
        let mut refused = 0;
        for i in 0..(LIMITER_ENTRIES_MAX as u128 + 10) {
            let addr = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::from(i + 1)), 1);
            match auth.rate_limit(None, Some(addr)) {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.code, "busy");
                    refused += 1;
                }
            }
        }
        assert!(auth.per_address.len() <= LIMITER_ENTRIES_MAX);
        assert!(refused <= 10, "only past the bound: {refused}");
    }

    #[test]
    fn malformed_authorization_is_refused_clearly() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(token(&headers, "").unwrap_err().code, "bad_authorization");
        headers.insert("authorization", "Medledger zz".parse().unwrap());
        assert_eq!(token(&headers, "").unwrap_err().code, "bad_authorization");
        headers.insert("authorization", "Medledger 00".parse().unwrap());
        assert_eq!(token(&headers, "").unwrap_err().code, "bad_authorization");
        assert!(token(&HeaderMap::new(), "limit=3").unwrap().is_none());
        assert_eq!(
            token(&HeaderMap::new(), "auth=12").unwrap_err().code,
            "bad_authorization"
        );
    }
}
