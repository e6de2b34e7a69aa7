//! The holder's side of a transfer: every check on its own node before a
//! byte leaves, the manifest, the `AccessServed` it records with the
//! manifest's hashes, and chunks sealed in order once that release is
//! committed.
//!
//! Checks, in order (the first that fails is the answer, with a stable code):
//! the connecting peer is an active member's node (`not_a_member`; the
//! transport drops such a peer before it reaches the holder); the fetch is
//! for this chain and this holder, recent, and signed by the practitioner's
//! current key (`bad_authorization`); the practitioner is active and belongs
//! to the connecting peer's institution (`wrong_institution`); the access
//! request is committed, made by that practitioner, authorised, and for this
//! holder (`not_authorized`); it was not served before (`already_served`);
//! for a grant-based access the grant is still active now
//! (`grant_not_active`). A patient with no records here gets an empty
//! manifest, not a refusal: no answer says whether a patient has records at
//! this hospital. Nothing is waited for before the signature is checked:
//! if this node has not yet reached the height that committed the request,
//! a signed fetch is answered `Wait` (no thread sleeps) and asked again.
//!
//! Each member's node has its own [`TRANSFERS_PER_PEER`] transfer slots, so
//! one member's fetches cannot take another's; each transfer has its own
//! lock, so reading one transfer's records never holds up another's.
//!
//! A patient's fetch of their own records (`open_own`, R7.8) takes the
//! same first checks, then: the patient's current key signed it, and it
//! names their committed `OwnRecordsRequest` to this holder
//! (`not_authorized`), not served before (`already_served`); it is served
//! with no grant scope, and stops if that key is replaced mid-transfer.
//!
//! The last three refusals concern an access the ledger knows, so the holder
//! records each on the ledger (`FetchRefused`, once per access and reason):
//! the patient's history and the auditor then see a fetch after a
//! revocation, a replay, or a request used by someone it was not made for.
//! The first three name nothing the ledger could check and are only logged.
//!
//! The release is recorded before the content goes [R7.2]: the holder
//! submits `AccessServed` with the manifest and answers every chunk request
//! with `Wait` until the release is committed, so a requester who stops
//! early has still left a release on the ledger, and a fetch opened again
//! (after a restart of this node, too) finds it there and is refused
//! `already_served`. If the committed release says its basis no longer held
//! (a revocation ordered first), no chunk is sent (`grant_not_active`); if it
//! does not commit within [`RELEASE_COMMIT_WAIT`], the transfer ends
//! (`release_not_recorded`). The basis is checked again before every chunk,
//! so a revocation committed mid-transfer stops it at the next one.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use medledger_contracts::Hash32;
use medledger_contracts::crypto::{PublicKey, SecretKey, Signature};
use medledger_contracts::encoding::BoundedVec;
use medledger_contracts::records::{
    AccessKind, AccessRecord, Decision, DenialReason, GrantRecord, LedgerParameters,
    OwnAccessRecord, PatientRecord, PractitionerRecord,
};
use medledger_contracts::state::{Overlay, StateKey};
use medledger_contracts::state_machine::{grant_carries_at, practitioner_may_act_at};
use medledger_contracts::transaction::{Payload, Signer, Transaction, record_link_message};
use medledger_contracts::types::{
    Category, ChainId, FetchRefusal, GrantTerms, InstitutionId, MemberStatus, PatientId,
    PractitionerId, RequestId, Timestamp,
};
use medledger_transfer::{
    CHUNK_BYTES, FetchAuthorization, GatewayRequest, GatewayResponse, MANIFEST_ITEMS_MAX, Manifest,
    ManifestItem, RecipientKey, SignedFetch, SignedOwnFetch, TransferSealer, released_hash,
    seal_items,
};

use super::scope::{self, Facts};
use super::transport::{Answerer, peer_id_of_key};
use super::{Ledger, PatientLink, RecordSource, hash_reader, hash_reader_keeping};
use crate::clock::now;

/// How far a fetch authorization's time may be from this node's clock.
const FETCH_WINDOW_MS: u64 = 5 * 60 * 1000;
/// A transfer left idle this long is dropped.
const TRANSFER_IDLE: Duration = Duration::from_secs(300);
/// Most transfers in progress at once for one member's node.
pub const TRANSFERS_PER_PEER: usize = 16;
/// How many blocks ahead of this node a fetch's `committed_at` may be and
/// still be answered `Wait` (further is refused, not waited for).
const COMMITTED_AT_AHEAD_MAX: u64 = 100;
/// How long a transfer waits for its release to be committed.
const RELEASE_COMMIT_WAIT: Duration = Duration::from_secs(30);
/// How often the requester's gateway asks again while the release commits.
const RELEASE_RETRY_MS: u32 = 100;

/// A transfer in progress: who may ask for its chunks, and its own lock.
struct Slot {
    peer: PeerId,
    /// A patient's own transfer: counted in the peer's pool of those, so
    /// that patients relayed by a member cannot take its practitioners' slots.
    own: bool,
    transfer: Mutex<Transfer>,
}

struct Transfer {
    request: RequestId,
    /// For a patient's own records (R7.8): the key that signed the fetch,
    /// which must stay their current key; `None` for an access.
    own_key: Option<PublicKey>,
    /// The verified link it reads under (never looked up again).
    link: PatientLink,
    items: Vec<ManifestItem>,
    /// What its release records: the items' hashes under the transfer's salt.
    released: Vec<Hash32>,
    sealer: TransferSealer,
    next_seq: u64,
    item: usize,
    reader: Option<Box<dyn Read + Send>>,
    sent_in_item: u64,
    touched: Instant,
    /// When its `AccessServed` was submitted, until it is seen committed.
    release_pending_since: Option<Instant>,
    /// Ended (complete or stopped): a request that waited on the lock meanwhile
    /// finds nothing more to send.
    ended: bool,
}

/// What a transfer serves, once the fetch naming it has passed its checks.
struct Serving<'a> {
    request: RequestId,
    patient: PatientId,
    categories: &'a [Category],
    /// The grant's terms (its record scope), for a grant-based access.
    terms: Option<GrantTerms>,
    one_time_key: &'a RecipientKey,
    /// See [`Transfer::own_key`].
    own_key: Option<PublicKey>,
}

/// Member nodes' peer ids, read from the state once per height.
#[derive(Default)]
struct MemberPeers {
    height: Option<u64>,
    peers: HashMap<PeerId, InstitutionId>,
}

/// The holder.
pub struct Holder {
    ledger: Arc<dyn Ledger>,
    source: Arc<dyn RecordSource>,
    node_key: SecretKey,
    transfers: Mutex<HashMap<Hash32, Arc<Slot>>>,
    members: Mutex<MemberPeers>,
    /// Requests served or being served since the node started (the ledger
    /// knows the committed ones).
    served: Mutex<HashSet<RequestId>>,
    /// Refusals submitted to the ledger since the node started (the ledger
    /// takes one per access and reason; this keeps replays from flooding
    /// the mempool with transactions it would reject).
    refusals_recorded: Mutex<HashSet<(RequestId, FetchRefusal)>>,
    /// Fault plan: alter every sealed chunk, so tests can show the
    /// requester detects it.
    tamper: bool,
    /// Fault plan: serve without checking the grant is still active — the
    /// broken build the simulator's invariants must catch.
    skip_grant_check: bool,
}

/// A failure of this hospital's own record source. What crosses to the
/// requester is a code and a fixed message, and the log gets only the
/// error's kind: a source's error text can name a FHIR search URL with the
/// record number in it, or a file's name.
fn source_failed(error: &std::io::Error) -> GatewayResponse {
    tracing::warn!(kind = ?error.kind(), "record source failed");
    refused(
        "source_unavailable",
        "the holder could not read its records; ask again later",
    )
}

fn key_change_pending() -> GatewayResponse {
    refused(
        "key_change_pending",
        "a replacement of the patient's key is pending or took effect: their own records are not sent under the old key",
    )
}

fn slots_full() -> GatewayResponse {
    refused(
        "busy",
        "too many transfers in progress for this member; retry shortly",
    )
}

/// Ask again shortly: this node has not yet reached the request's height,
/// or another request of the same transfer is being answered.
fn wait() -> GatewayResponse {
    GatewayResponse::Wait {
        retry_ms: RELEASE_RETRY_MS,
    }
}

fn refused(code: &str, message: impl Into<String>) -> GatewayResponse {
    GatewayResponse::Refused {
        code: code.into(),
        message: message.into(),
    }
}

impl Holder {
    /// A holder serving `source` for this node's institution.
    pub fn new(
        ledger: Arc<dyn Ledger>,
        source: Arc<dyn RecordSource>,
        node_key: SecretKey,
    ) -> Self {
        Self {
            ledger,
            source,
            node_key,
            transfers: Mutex::new(HashMap::new()),
            members: Mutex::new(MemberPeers::default()),
            served: Mutex::new(HashSet::new()),
            refusals_recorded: Mutex::new(HashSet::new()),
            tamper: false,
            skip_grant_check: false,
        }
    }

    /// The same holder misbehaving as a test's fault plan says (tamper with
    /// chunks, skip the grant check); see [`crate::faults`].
    pub(crate) fn with_faults(mut self, faults: &crate::faults::FaultPlan) -> Self {
        self.tamper = faults.tamper_chunk;
        self.skip_grant_check = faults.skip_grant_check;
        self
    }

    fn state<T: serde::de::DeserializeOwned>(
        &self,
        key: &StateKey,
    ) -> Result<Option<T>, GatewayResponse> {
        Overlay::new(self.ledger.committed_state())
            .get(key)
            .map_err(|e| refused("internal", format!("state unavailable: {e}")))
    }

    /// The active member institution whose node key is `peer`'s identity
    /// (the members are read from the state once per height).
    fn institution_of_peer(&self, peer: &PeerId) -> Result<Option<InstitutionId>, GatewayResponse> {
        let height = self.ledger.height();
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        if members.height != Some(height) {
            let records = self
                .ledger
                .institution_records()
                .map_err(|e| refused("internal", e.to_string()))?;
            members.peers = records
                .into_iter()
                .filter(|r| r.status == MemberStatus::Active)
                .filter_map(|r| Some((peer_id_of_key(r.spec.transport_identity())?, r.spec.id)))
                .collect();
            members.height = Some(height);
        }
        Ok(members.peers.get(peer).cloned())
    }

    /// Answers one request from a peer's gateway.
    pub fn handle(&self, peer: PeerId, request: GatewayRequest) -> GatewayResponse {
        let answer = match request {
            GatewayRequest::Open(fetch) => {
                let _span = tracing::info_span!(
                    "transfer_open",
                    request = %fetch.authorization.request,
                    %peer
                )
                .entered();
                self.open(peer, &fetch)
            }
            GatewayRequest::Chunk { transfer, seq } => {
                let _span = tracing::debug_span!("transfer", %transfer, seq, %peer).entered();
                self.chunk(peer, transfer, seq)
            }
            GatewayRequest::OpenOwn(fetch) => {
                let _span = tracing::info_span!(
                    "own_transfer_open",
                    request = %fetch.authorization.request,
                    %peer
                )
                .entered();
                self.open_own(peer, &fetch)
            }
        };
        let response = match answer {
            Ok(response) | Err(response) => response,
        };
        if let GatewayResponse::Refused { code, .. } = &response {
            // Counted whatever the refusal: those that name nothing the
            // ledger could check are recorded nowhere else but the log.
            self.ledger.count_refusal(code);
        }
        response
    }

    /// The checks every fetch goes through first, a practitioner's or a
    /// patient's: from an active member's node (its institution is the
    /// answer), for this chain and holder, recent, signed by the key it
    /// names, with a usable one-time key of this chain's suite.
    #[allow(clippy::too_many_arguments)]
    fn first_checks(
        &self,
        peer: &PeerId,
        chain_id: &ChainId,
        holder: &InstitutionId,
        time: Timestamp,
        digest: &Hash32,
        public_key: &PublicKey,
        signature: &Signature,
        one_time_key: &RecipientKey,
    ) -> Result<InstitutionId, GatewayResponse> {
        let Some(peer_institution) = self.institution_of_peer(peer)? else {
            tracing::warn!(%peer, "records fetch from a peer that is not a member's node");
            return Err(refused(
                "not_a_member",
                "this peer is not an active member's node",
            ));
        };
        if *chain_id != self.ledger.chain().id || holder != self.ledger.institution() {
            return Err(refused(
                "bad_authorization",
                "the fetch is for another chain or holder",
            ));
        }
        if now().0.abs_diff(time.0) > FETCH_WINDOW_MS {
            return Err(refused(
                "bad_authorization",
                "the fetch authorization is stale; sign a new one",
            ));
        }
        // The signature before anything is waited for or read about the
        // access; a key of another suite costs no verification.
        let chain = self.ledger.chain();
        if !chain.suite.accepts(public_key) || public_key.verify(digest, signature).is_err() {
            return Err(refused(
                "bad_authorization",
                "the fetch is not signed by the key it names",
            ));
        }
        if one_time_key.suite() != chain.suite {
            return Err(refused(
                "bad_authorization",
                format!(
                    "the one-time key is not of this chain's suite ({}): records are sealed to {} keys here",
                    chain.suite.name(),
                    match chain.suite {
                        medledger_contracts::crypto::CryptoSuite::Ed25519Sha256 => "X25519",
                        medledger_contracts::crypto::CryptoSuite::Sm2Sm3 => "SM2",
                    }
                ),
            ));
        }
        // A key no transfer can be sealed to is refused before the
        // patient's records are listed and hashed (a malformed key sent
        // again and again would otherwise make the holder read them all
        // each time, with nothing on the ledger).
        if let Err(e) = one_time_key.validate() {
            return Err(refused(
                "bad_authorization",
                format!("the one-time key is unusable: {e}"),
            ));
        }
        Ok(peer_institution)
    }

    fn open(&self, peer: PeerId, fetch: &SignedFetch) -> Result<GatewayResponse, GatewayResponse> {
        let a = &fetch.authorization;
        let peer_institution = self.first_checks(
            &peer,
            &a.chain,
            &a.holder,
            a.time,
            &a.digest(self.ledger.chain().hash()),
            &fetch.public_key,
            &fetch.signature,
            &a.one_time_key,
        )?;
        // The request committed at `committed_at`; this node may be a few
        // blocks behind: the requester's gateway asks again (a claim far
        // ahead is not waited for).
        let height = self.ledger.height();
        let behind = height < a.committed_at && a.committed_at <= height + COMMITTED_AT_AHEAD_MAX;
        let practitioner: Option<PractitionerRecord> =
            self.state(&StateKey::Practitioner(a.practitioner))?;
        let Some(practitioner) = practitioner else {
            if behind {
                return Ok(wait());
            }
            return Err(refused("bad_authorization", "unknown practitioner"));
        };
        if practitioner.key != fetch.public_key {
            return Err(refused(
                "bad_authorization",
                "the fetch is not signed by the practitioner's current key",
            ));
        }
        if practitioner.status != MemberStatus::Active
            || practitioner.institution != peer_institution
        {
            return Err(refused(
                "wrong_institution",
                "the practitioner is not an active practitioner of the connecting member",
            ));
        }
        if behind {
            return Ok(wait());
        }
        let access: AccessRecord = self
            .state(&StateKey::Access(a.request))?
            .ok_or_else(|| refused("not_authorized", "no committed access request has this id"))?;
        let not_authorized = refused(
            "not_authorized",
            "the access request is not an authorised request of this practitioner to this holder",
        );
        if access.holder != *self.ledger.institution() {
            return Err(not_authorized);
        }
        if access.requester != a.practitioner || access.decision != Decision::Authorized {
            self.record_refusal(a.request, a.practitioner, FetchRefusal::NotAuthorized);
            return Err(not_authorized);
        }
        if access.release.is_some() || !self.served().insert(a.request) {
            self.record_refusal(a.request, a.practitioner, FetchRefusal::AlreadyServed);
            return Err(refused(
                "already_served",
                "this request was served already; make a new request",
            ));
        }
        let result = self.open_access(peer, a, &access);
        if result.is_err() {
            self.served().remove(&a.request);
        }
        result
    }

    /// A practitioner's transfer, once the fetch and the access check out:
    /// what the access rests on must still hold.
    fn open_access(
        &self,
        peer: PeerId,
        a: &FetchAuthorization,
        access: &AccessRecord,
    ) -> Result<GatewayResponse, GatewayResponse> {
        if self.skip_grant_check {
            tracing::error!(
                "MEDLEDGER_FAULT=skip-grant-check: serving without the grant check (tests only)"
            );
        } else if let Err((code, why)) = self.basis_holds_now(access)? {
            // On the ledger, every one of these is the access's basis not
            // holding (R7.6 `GrantNotActive`).
            self.record_refusal(a.request, a.practitioner, FetchRefusal::GrantNotActive);
            return Err(refused(code, why));
        }
        self.start(
            peer,
            Serving {
                request: a.request,
                patient: access.patient,
                categories: access.categories.as_slice(),
                terms: self.grant_terms(access)?,
                one_time_key: &a.one_time_key,
                own_key: None,
            },
        )
    }

    /// A patient's fetch of their own records [R7.8]: the checks of any
    /// fetch, then the patient's current key signed it and names the
    /// committed `OwnRecordsRequest` they made of this holder, not served
    /// before. Nothing here is recorded as `FetchRefused` (it names no
    /// practitioner); a refusal is logged and counted.
    fn open_own(
        &self,
        peer: PeerId,
        fetch: &SignedOwnFetch,
    ) -> Result<GatewayResponse, GatewayResponse> {
        let a = &fetch.authorization;
        self.first_checks(
            &peer,
            &a.chain,
            &a.holder,
            a.time,
            &a.digest(self.ledger.chain().hash()),
            &fetch.public_key,
            &fetch.signature,
            &a.one_time_key,
        )?;
        let height = self.ledger.height();
        let behind = height < a.committed_at && a.committed_at <= height + COMMITTED_AT_AHEAD_MAX;
        let patient: Option<PatientRecord> = self.state(&StateKey::Patient(a.patient))?;
        let Some(patient) = patient else {
            if behind {
                return Ok(wait());
            }
            return Err(refused("bad_authorization", "unknown patient"));
        };
        // A key replaced by recovery contacts signs from the end of its
        // delay (R4.3), by this node's clock as by the next block's.
        if *patient.key_at(now()) != fetch.public_key {
            return Err(refused(
                "bad_authorization",
                "the fetch is not signed by the patient's current key",
            ));
        }
        // A key that recovery contacts are replacing may be a lost phone's
        // in a thief's hands: the delay protects the account, and the
        // records wait for it too.
        if patient.key_change_pending_at(now()) {
            return Err(key_change_pending());
        }
        if behind {
            return Ok(wait());
        }
        let own: OwnAccessRecord =
            self.state(&StateKey::OwnAccess(a.request))?
                .ok_or_else(|| {
                    refused(
                        "not_authorized",
                        "no committed own-records request has this id",
                    )
                })?;
        if own.holder != *self.ledger.institution() || own.patient != a.patient {
            return Err(refused(
                "not_authorized",
                "the request is not this patient's own-records request to this holder",
            ));
        }
        if own.release.is_some() || !self.served().insert(a.request) {
            return Err(refused(
                "already_served",
                "this request was served already; make a new request",
            ));
        }
        let result = self.start(
            peer,
            Serving {
                request: a.request,
                patient: a.patient,
                categories: own.categories.as_slice(),
                terms: None,
                one_time_key: &a.one_time_key,
                own_key: Some(fetch.public_key),
            },
        );
        if result.is_err() {
            self.served().remove(&a.request);
        }
        result
    }

    /// Whether a patient's own transfer may go on: the key that signed its
    /// fetch is still their current key and no replacement of it is
    /// pending (recovery contacts approving a new key after a phone was
    /// lost stop it at the next chunk).
    fn own_key_current(
        &self,
        request: RequestId,
        key: &PublicKey,
    ) -> Result<bool, GatewayResponse> {
        let own: Option<OwnAccessRecord> = self.state(&StateKey::OwnAccess(request))?;
        let Some(own) = own else { return Ok(false) };
        let patient: Option<PatientRecord> = self.state(&StateKey::Patient(own.patient))?;
        Ok(patient.is_some_and(|p| p.key_at(now()) == key && !p.key_change_pending_at(now())))
    }

    /// Whether what the access rests on still holds now (R7.2, R7.3): the
    /// requester may still act (active, on a licence in force where genesis
    /// asks for it, R4.14, at an institution whose attested licence is in
    /// force, R4.16), and the grant, emergency window or mandate
    /// holds. `Err` gives the refusal's code and why.
    fn basis_holds_now(
        &self,
        access: &AccessRecord,
    ) -> Result<Result<(), (&'static str, String)>, GatewayResponse> {
        let requester: Option<PractitionerRecord> =
            self.state(&StateKey::Practitioner(access.requester))?;
        let Some(requester) = requester else {
            return Ok(Err((
                "grant_not_active",
                "the requesting practitioner is not registered".into(),
            )));
        };
        // What the ledger's basis asks of the requester (R7.2), at this
        // node's clock.
        let standing = practitioner_may_act_at(
            &Overlay::new(self.ledger.committed_state()),
            &access.requester,
            &requester,
            now(),
        )
        .map_err(|e| refused("internal", format!("state unavailable: {e}")))?;
        match standing {
            Ok(_) => {}
            Err(DenialReason::LicenceNotInForce(problem)) => {
                return Ok(Err(("licence_not_in_force", problem.to_string())));
            }
            Err(why) => return Ok(Err(("grant_not_active", why.to_string()))),
        }
        let holds = match &access.kind {
            AccessKind::Grant { grant, .. } => {
                match self.state::<GrantRecord>(&StateKey::Grant(*grant))? {
                    // Active, and a group's still counting the requester's
                    // institution among its members (R5.11).
                    Some(g) => grant_carries_at(
                        &Overlay::new(self.ledger.committed_state()),
                        &g,
                        &requester.institution,
                        now(),
                    )
                    .map_err(|e| refused("internal", format!("state unavailable: {e}")))?,
                    None => false,
                }
            }
            AccessKind::Emergency { .. } => {
                let params: LedgerParameters =
                    self.state(&StateKey::Parameters)?.unwrap_or_default();
                access
                    .emergency_fetchable_at(now(), &params.emergency)
                    .unwrap_or(false)
            }
            AccessKind::PublicHealth { .. } => true,
        };
        Ok(match (&access.kind, holds) {
            (_, true) => Ok(()),
            (AccessKind::Emergency { .. }, false) => Err((
                "grant_not_active",
                "the emergency access is past its fetch window or was found unjustified".into(),
            )),
            (_, false) => Err((
                "grant_not_active",
                "the grant is no longer active (revoked or expired), or the requester's institution left the group it was made to".into(),
            )),
        })
    }

    /// The patient's record-number link here that their current key signed
    /// (`record_link_message` for this chain and institution): the first
    /// such of the source's links, none if none verifies. Links that fail
    /// are logged without the record number or the patient.
    fn verified_link(
        &self,
        patient: &PatientId,
        request: &RequestId,
    ) -> Result<Option<PatientLink>, GatewayResponse> {
        let links = self.source.links(patient).map_err(|e| source_failed(&e))?;
        if links.is_empty() {
            return Ok(None);
        }
        let record: Option<PatientRecord> = self.state(&StateKey::Patient(*patient))?;
        let signed_by_patient = |link: &PatientLink| {
            let message = record_link_message(
                self.ledger.chain(),
                self.ledger.institution(),
                patient,
                &link.record_number,
            );
            match (&record, &link.signature) {
                (Some(record), Some(signature)) => record
                    .key
                    .verify(&message, &Signature::of_scheme(&record.key, *signature))
                    .is_ok(),
                _ => false,
            }
        };
        let verified = links.iter().position(signed_by_patient);
        // Every link before the one used failed; later ones are not checked.
        let unsigned = verified.unwrap_or(links.len());
        if unsigned > 0 {
            tracing::warn!(
                %request,
                unsigned,
                "record-number links of this request's patient are not signed by their current key: nothing is served under them until the patient signs again at the desk"
            );
        }
        Ok(verified.and_then(|i| links.into_iter().nth(i)))
    }

    /// The terms of the grant a grant-based access rests on (its record
    /// scope); `None` for an emergency or public-health access.
    fn grant_terms(&self, access: &AccessRecord) -> Result<Option<GrantTerms>, GatewayResponse> {
        let AccessKind::Grant { grant, .. } = &access.kind else {
            return Ok(None);
        };
        let grant: Option<GrantRecord> = self.state(&StateKey::Grant(*grant))?;
        grant
            .map(|g| Some(g.terms))
            .ok_or_else(|| refused("grant_not_active", "the grant is not on the ledger"))
    }

    /// Drops idle transfers; a request whose release never committed may
    /// be fetched again. A transfer busy now is not idle.
    fn prune(&self, transfers: &mut HashMap<Hash32, Arc<Slot>>) {
        let mut unrecorded = Vec::new();
        transfers.retain(|_, slot| {
            let mut t = match slot.transfer.try_lock() {
                Ok(t) => t,
                Err(std::sync::TryLockError::WouldBlock) => return true,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            };
            let keep = !t.ended && t.touched.elapsed() < TRANSFER_IDLE;
            if !keep && !t.ended && t.release_pending_since.is_some() {
                unrecorded.push(t.request);
            }
            // A request that already holds this slot finds it ended.
            t.ended |= !keep;
            keep
        });
        if !unrecorded.is_empty() {
            let mut served = self.served();
            for request in unrecorded {
                served.remove(&request);
            }
        }
    }

    /// Whether `peer`'s member node holds all its transfer slots.
    fn slots_full(&self, peer: PeerId, own: bool) -> bool {
        let mut transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        self.prune(&mut transfers);
        Self::pool_full(&transfers, peer, own)
    }

    /// Whether `peer`'s pool of transfers (its practitioners', or the
    /// patients' it relays) is full.
    fn pool_full(transfers: &HashMap<Hash32, Arc<Slot>>, peer: PeerId, own: bool) -> bool {
        transfers
            .values()
            .filter(|s| s.peer == peer && s.own == own)
            .count()
            >= TRANSFERS_PER_PEER
    }

    fn served(&self) -> std::sync::MutexGuard<'_, HashSet<RequestId>> {
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, peer: PeerId, s: Serving<'_>) -> Result<GatewayResponse, GatewayResponse> {
        // No listing or hashing for a member whose slots are all taken.
        let own = s.own_key.is_some();
        if self.slots_full(peer, own) {
            return Err(slots_full());
        }
        // Nothing is listed under a link the patient's current key did not
        // sign: the answer is the same empty manifest as for a patient with
        // no records here.
        let link = self.verified_link(&s.patient, &s.request)?;
        let hash = self.ledger.chain().hash();
        let listed = match &link {
            Some(link) => self
                .source
                .list(link, s.categories)
                .map_err(|e| source_failed(&e))?,
            None => Vec::new(),
        };
        if listed.len() > MANIFEST_ITEMS_MAX {
            return Err(refused(
                "too_many_resources",
                format!("more than {MANIFEST_ITEMS_MAX} resources; ask for fewer categories"),
            ));
        }
        // Only what the grant's record scope reaches (R5.10), left out
        // without a word (see `scope`): JSON resources are read once, for
        // their hash and their facts; an attachment's scope follows from the
        // resource beside it, and one out of scope is not read at all.
        let terms = s.terms;
        // Items are listed only under a verified link.
        let open = |path: &str| -> Result<Box<dyn Read + Send>, GatewayResponse> {
            let link = link
                .as_ref()
                .ok_or_else(|| refused("internal", "an item listed without a link"))?;
            self.source.open(link, path).map_err(|e| source_failed(&e))
        };
        let mut json_facts = HashMap::new();
        let mut read = vec![None; listed.len()];
        for (slot, item) in read.iter_mut().zip(&listed) {
            if !scope::is_json(&item.path) {
                continue;
            }
            let reader = open(&item.path)?;
            let (content_hash, size, bytes) =
                hash_reader_keeping(hash, reader, scope::FACTS_BYTES_MAX)
                    .map_err(|e| source_failed(&e))?;
            let facts = bytes.map_or_else(Facts::default, |b| Facts::of_bytes(&b));
            json_facts.insert(item.path.clone(), facts.clone());
            *slot = Some((content_hash, size, facts));
        }
        let mut items = Vec::with_capacity(listed.len());
        for (item, json) in listed.into_iter().zip(read) {
            let (content_hash, size) = match json {
                Some((content_hash, size, facts)) => {
                    if !scope::in_scope(terms.as_ref(), &facts) {
                        continue;
                    }
                    (content_hash, size)
                }
                None => {
                    let facts = scope::attachment_facts(&item.path, &json_facts);
                    if !scope::in_scope(terms.as_ref(), &facts) {
                        continue;
                    }
                    hash_reader(hash, open(&item.path)?).map_err(|e| source_failed(&e))?
                }
            };
            items.push(ManifestItem {
                path: item.path,
                category: item.category,
                size,
                content_hash,
            });
        }
        let transfer = self.ledger.chain().hash().hash_of(
            b"medledger/records-transfer/v1",
            &(s.request, now().0, s.one_time_key),
        );
        let (sealer, encapsulated_key) =
            TransferSealer::new(s.one_time_key, transfer).map_err(|e| {
                refused(
                    "bad_authorization",
                    format!("the one-time key is unusable: {e}"),
                )
            })?;
        // The ledger gets the hashes under a salt only the two ends know
        // (records rule 4): a guess at a small record is not confirmable.
        let salt = sealer
            .content_salt()
            .map_err(|e| refused("internal", e.to_string()))?;
        let released: Vec<Hash32> = items
            .iter()
            .map(|i| released_hash(self.ledger.chain().hash(), &salt, &i.content_hash))
            .collect();
        // A patient's own manifest may cross any member's node: its items
        // go sealed to the patient's key, only their number in clear.
        let manifest = if own {
            let item_count = u32::try_from(items.len())
                .map_err(|_| refused("internal", "more items than a manifest holds"))?;
            let sealed = seal_items(
                self.ledger.chain().hash(),
                s.one_time_key,
                &transfer,
                &items,
            )
            .map_err(|e| refused("internal", e.to_string()))?;
            GatewayResponse::SealedManifest {
                transfer,
                encapsulated_key,
                item_count,
                items: sealed,
            }
        } else {
            GatewayResponse::Manifest(Manifest {
                transfer,
                encapsulated_key,
                items: items.clone(),
            })
        };
        tracing::info!(request = %s.request, resources = items.len(), own = s.own_key.is_some(), "records transfer opened");
        let request = s.request;
        if let (false, Some(link)) = (items.is_empty(), link) {
            // The slot is taken before the release is submitted, so a
            // release is never recorded for a transfer there is no room for.
            let mut transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
            self.prune(&mut transfers);
            if Self::pool_full(&transfers, peer, own) {
                return Err(slots_full());
            }
            transfers.insert(
                transfer,
                Arc::new(Slot {
                    peer,
                    own,
                    transfer: Mutex::new(Transfer {
                        request,
                        own_key: s.own_key,
                        link,
                        items: items.clone(),
                        released: released.clone(),
                        sealer,
                        next_seq: 0,
                        item: 0,
                        reader: None,
                        sent_in_item: 0,
                        touched: Instant::now(),
                        release_pending_since: Some(Instant::now()),
                        ended: false,
                    }),
                }),
            );
        }
        // Recorded before any content is sent [R7.2] (outside the lock:
        // admission runs the transaction against state).
        if let Err(refusal) = self.record_release(request, released) {
            self.transfers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&transfer);
            return Err(refusal);
        }
        Ok(manifest)
    }

    fn chunk(
        &self,
        peer: PeerId,
        id: Hash32,
        seq: u64,
    ) -> Result<GatewayResponse, GatewayResponse> {
        // The map's lock only to find the slot; the slot's own lock across
        // state and record reads, so other transfers go on meanwhile.
        let slot = self
            .transfers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .filter(|slot| slot.peer == peer)
            .cloned()
            .ok_or_else(|| refused("unknown_transfer", "no such transfer in progress"))?;
        // A second request for the same transfer while one is being answered
        // waits on the requester's side, not on a blocking thread here.
        let mut t = match slot.transfer.try_lock() {
            Ok(t) => t,
            Err(std::sync::TryLockError::WouldBlock) => return Ok(wait()),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if t.ended {
            return Err(refused("unknown_transfer", "no such transfer in progress"));
        }
        if seq != t.next_seq {
            return Err(refused(
                "out_of_order",
                format!("expected chunk {}", t.next_seq),
            ));
        }
        t.touched = Instant::now();
        if let Some(since) = t.release_pending_since {
            match self.release_committed(&t)? {
                Some(true) => t.release_pending_since = None,
                Some(false) => {
                    self.end_transfer(&id, &mut t);
                    return Err(refused(
                        "grant_not_active",
                        "the release was recorded after what it rests on stopped holding; nothing is sent",
                    ));
                }
                None if since.elapsed() < RELEASE_COMMIT_WAIT => {
                    return Ok(GatewayResponse::Wait {
                        retry_ms: RELEASE_RETRY_MS,
                    });
                }
                None => {
                    self.end_transfer(&id, &mut t);
                    // Never recorded: a new fetch of the request may try again.
                    self.served().remove(&t.request);
                    return Err(refused(
                        "release_not_recorded",
                        "the release was not committed in time; nothing was sent; fetch again",
                    ));
                }
            }
        }
        // And at every chunk: a revocation (or the end of an emergency
        // window) committed mid-transfer stops it at the next chunk.
        if let Some(key) = t.own_key {
            if !self.own_key_current(t.request, &key)? {
                self.end_transfer(&id, &mut t);
                return Err(key_change_pending());
            }
        } else if !self.skip_grant_check {
            let access: Option<AccessRecord> = self.state(&StateKey::Access(t.request))?;
            let holds = match access {
                Some(access) => self.basis_holds_now(&access)?,
                None => Err((
                    "grant_not_active",
                    "the access is not on this node's ledger".into(),
                )),
            };
            if let Err((code, why)) = holds {
                self.end_transfer(&id, &mut t);
                return Err(refused(code, why));
            }
        }
        let item_index = t.item;
        let Some(item) = t.items.get(item_index).cloned() else {
            return Err(refused("unknown_transfer", "the transfer is complete"));
        };
        if t.reader.is_none() {
            let reader = self
                .source
                .open(&t.link, &item.path)
                .map_err(|e| source_failed(&e))?;
            t.reader = Some(reader);
            t.sent_in_item = 0;
        }
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut filled = 0;
        if let Some(reader) = t.reader.as_mut() {
            while filled < CHUNK_BYTES {
                let n = reader
                    .read(&mut buffer[filled..])
                    .map_err(|e| source_failed(&e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
        }
        buffer.truncate(filled);
        t.sent_in_item += filled as u64;
        let last_of_item = t.sent_in_item >= item.size || filled < CHUNK_BYTES;
        // Items are at most MANIFEST_ITEMS_MAX: their index fits the AAD's u32.
        let item_number = u32::try_from(item_index)
            .map_err(|_| refused("internal", "an item index beyond the manifest's bound"))?;
        let mut sealed = t
            .sealer
            .seal(seq, item_number, last_of_item, &buffer)
            .map_err(|e| refused("internal", e.to_string()))?;
        if self.tamper {
            tracing::error!("MEDLEDGER_FAULT=tamper-chunk: altering a sealed chunk (tests only)");
            if let Some(byte) = sealed.sealed.first_mut() {
                *byte ^= 1;
            }
        }
        t.next_seq += 1;
        if last_of_item {
            t.item += 1;
            t.reader = None;
        }
        if t.item == t.items.len() {
            tracing::info!(request = %t.request, resources = t.items.len(), "records transfer complete");
            self.end_transfer(&id, &mut t);
        }
        Ok(GatewayResponse::Chunk(sealed))
    }

    /// Ends a transfer: out of the map, and marked for a request that
    /// waited on its lock meanwhile.
    fn end_transfer(&self, id: &Hash32, t: &mut Transfer) {
        t.ended = true;
        t.reader = None;
        self.transfers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Whether the transfer's release is committed: `None` not yet,
    /// `Some(true)` committed with this transfer's hashes while its basis
    /// held, `Some(false)` committed otherwise (its basis had stopped
    /// holding, or another transfer's release was recorded).
    fn release_committed(&self, t: &Transfer) -> Result<Option<bool>, GatewayResponse> {
        let release = if t.own_key.is_some() {
            let own: Option<OwnAccessRecord> = self.state(&StateKey::OwnAccess(t.request))?;
            own.and_then(|o| o.release)
        } else {
            let access: Option<AccessRecord> = self.state(&StateKey::Access(t.request))?;
            access.and_then(|a| a.release)
        };
        Ok(release.map(|release| {
            (release.grant_active_at_release || self.skip_grant_check)
                && release.content_hashes.iter().eq(t.released.iter())
        }))
    }

    /// Submits `AccessServed` with the salted content hashes (none for a
    /// patient with no records here), signed by the node key. A release this
    /// node cannot submit ends the fetch: nothing is sent unrecorded.
    fn record_release(
        &self,
        request: RequestId,
        released: Vec<Hash32>,
    ) -> Result<(), GatewayResponse> {
        let content_hashes = BoundedVec::new(released)
            .map_err(|_| refused("too_many_resources", "too many resources to record"))?;
        self.submit(
            request,
            "release",
            Payload::AccessServed {
                request,
                content_hashes,
            },
        )
        .map_err(|_| {
            refused(
                "release_not_recorded",
                "the holder could not submit the release to the ledger; nothing was sent; fetch again",
            )
        })
    }

    /// Submits `FetchRefused`, once per access and reason.
    fn record_refusal(
        &self,
        request: RequestId,
        practitioner: PractitionerId,
        reason: FetchRefusal,
    ) {
        let first = self
            .refusals_recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((request, reason));
        if first {
            let payload = Payload::FetchRefused {
                request,
                practitioner,
                reason,
            };
            let _ = self.submit(request, reason.code(), payload);
        }
    }

    /// Signs `payload` with the node key and hands it to this node's mempool.
    fn submit(
        &self,
        request: RequestId,
        what: &str,
        payload: Payload,
    ) -> Result<(), crate::mempool::Refusal> {
        // Half the chain's validity window (R1), as the SDK's clients do.
        let window = self.ledger.tx_validity_window_ms();
        let tx = Transaction {
            signer: Signer::InstitutionNode(self.ledger.institution().clone()),
            nonce: now().0,
            valid_until: medledger_contracts::types::Timestamp(now().0.saturating_add(window / 2)),
            payload,
        }
        .sign(self.ledger.chain(), &self.node_key);
        match self.ledger.submit(&tx) {
            Ok(id) => {
                tracing::info!(%request, tx = %id, what, "submitted to the ledger");
                Ok(())
            }
            Err(refusal) => {
                tracing::error!(%request, %refusal, what, "could not be submitted to the ledger");
                Err(refusal)
            }
        }
    }
}

impl Answerer for Holder {
    /// A stranger is logged and counted here; the transport drops it.
    fn admit(&self, peer: &PeerId) -> bool {
        match self.institution_of_peer(peer) {
            Ok(Some(_)) => true,
            Ok(None) => {
                tracing::warn!(%peer, "records gateway: a peer that is not a member's node, dropped");
                self.ledger.count_refusal("not_a_member");
                false
            }
            // The state could not be read: refused for now; the peer may retry.
            Err(_) => false,
        }
    }

    fn answer(&self, peer: PeerId, request: GatewayRequest) -> GatewayResponse {
        self.handle(peer, request)
    }
}

#[cfg(test)]
mod tests {
    //! The holder's first checks, on a real store initialised from the
    //! example genesis: answered before any state about an access is read,
    //! so a peer or a signer that is not who it claims learns nothing.

    use medledger_consensus::Telemetry;
    use medledger_contracts::crypto::SecretKey;
    use medledger_contracts::encoding::Hash32;
    use medledger_contracts::encoding::HashFunction;
    use medledger_contracts::types::{ChainId, PractitionerId, TxHash};
    use medledger_store::Store;
    use medledger_transfer::FetchAuthorization;

    use super::*;
    use crate::gateway::DirectorySource;
    use crate::mempool::{Limits, Mempool};
    use crate::shared::Shared;

    const CHAIN: &str = "medledger-holder-test";

    struct Setup {
        _dir: tempfile::TempDir,
        holder: Holder,
        shared: Arc<Shared>,
        keys: std::collections::BTreeMap<String, medledger_client_sdk::KeyFile>,
    }

    fn setup() -> Setup {
        let (file, keys) = medledger_client_sdk::keys::example_consortium(CHAIN, true).unwrap();
        let genesis = file.validate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("ledger"),
            genesis.crypto_suite.hash_function(),
        )
        .unwrap();
        store
            .initialize(genesis.hash(), &genesis.initial_state().unwrap())
            .unwrap();
        let chain = genesis.chain();
        let limits = Limits {
            transactions: 100,
            bytes: 1 << 20,
            per_signer: 10,
        };
        let shared = Arc::new(Shared::new(
            chain.clone(),
            InstitutionId::new("city-first-hospital").unwrap(),
            store,
            Mempool::new(chain, limits),
            Arc::new(Telemetry::default()),
            None,
        ));
        let source = Arc::new(DirectorySource::new(dir.path().join("records")));
        let node_key = keys["node:city-first-hospital"].secret().clone();
        Setup {
            _dir: dir,
            holder: Holder::new(shared.clone(), source, node_key),
            shared,
            keys,
        }
    }

    fn fetch_by(key: &SecretKey) -> GatewayRequest {
        fetch_at(key, 0)
    }

    /// A fetch claiming its request committed at `committed_at`.
    fn fetch_at(key: &SecretKey, committed_at: u64) -> GatewayRequest {
        let authorization = FetchAuthorization {
            chain: ChainId::new(CHAIN).unwrap(),
            request: TxHash(Hash32([7; 32])),
            holder: InstitutionId::new("city-first-hospital").unwrap(),
            practitioner: PractitionerId::from_key(HashFunction::Sha256, &key.public_key()),
            one_time_key: medledger_transfer::RecipientKey::X25519([9; 32]),
            time: now(),
            committed_at,
        };
        GatewayRequest::Open(Box::new(SignedFetch {
            signature: key.sign(&authorization.digest(HashFunction::Sha256)),
            public_key: key.public_key(),
            authorization,
        }))
    }

    fn peer_of(setup: &Setup, label: &str) -> PeerId {
        peer_id_of_key(&setup.keys[label].public_key()).unwrap()
    }

    fn code(answer: GatewayResponse) -> String {
        match answer {
            GatewayResponse::Refused { code, .. } => code,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_fetch_is_refused_at_the_first_check_it_fails() {
        let s = setup();
        let doctor = s.keys["practitioner:dr-second-1"].secret().clone();
        let second_node = peer_of(&s, "node:city-second-hospital");

        // A peer whose node key is no member's (its Noise identity is its key).
        let stranger = peer_id_of_key(&SecretKey::from_seed([5; 32]).public_key()).unwrap();
        assert_eq!(
            code(s.holder.handle(stranger, fetch_by(&doctor))),
            "not_a_member"
        );
        // A member's node, but the fetch is signed by a key that is no
        // practitioner's.
        let impostor = SecretKey::from_seed([6; 32]);
        assert_eq!(
            code(s.holder.handle(second_node, fetch_by(&impostor))),
            "bad_authorization"
        );
        // A real practitioner arriving through another member's node.
        let platform_node = peer_of(&s, "node:regional-platform");
        assert_eq!(
            code(s.holder.handle(platform_node, fetch_by(&doctor))),
            "wrong_institution"
        );
        // A one-time key of the other suite (SM2 on this Ed25519 chain):
        // records are never sealed with the other suite's primitives.
        let GatewayRequest::Open(mut other_suite) = fetch_by(&doctor) else {
            unreachable!()
        };
        other_suite.authorization.one_time_key = medledger_transfer::RecipientKey::Sm2([2; 33]);
        other_suite.signature =
            doctor.sign(&other_suite.authorization.digest(HashFunction::Sha256));
        match s
            .holder
            .handle(second_node, GatewayRequest::Open(other_suite))
        {
            GatewayResponse::Refused { code, message } => {
                assert_eq!(code, "bad_authorization");
                assert!(message.contains("not of this chain's suite"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A key of the right suite that no transfer can be sealed to (a
        // low-order X25519 point): refused before anything is listed.
        let GatewayRequest::Open(mut low_order) = fetch_by(&doctor) else {
            unreachable!()
        };
        low_order.authorization.one_time_key = medledger_transfer::RecipientKey::X25519([0; 32]);
        low_order.signature = doctor.sign(&low_order.authorization.digest(HashFunction::Sha256));
        match s
            .holder
            .handle(second_node, GatewayRequest::Open(low_order))
        {
            GatewayResponse::Refused { code, message } => {
                assert_eq!(code, "bad_authorization");
                assert!(message.contains("unusable"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The right node and practitioner, but no committed access request:
        // nothing about the patient is read, and nothing is recorded.
        assert_eq!(
            code(s.holder.handle(second_node, fetch_by(&doctor))),
            "not_authorized"
        );
        assert_eq!(s.shared.mempool().len(), 0);
    }

    /// A patient's own fetch (R7.8) passes the same first checks as a
    /// practitioner's, then needs a registered patient's current key; it
    /// is answered `Wait` only once signed, and nothing is recorded.
    #[test]
    fn an_own_fetch_is_refused_at_the_first_check_it_fails() {
        let s = setup();
        let patient = SecretKey::from_seed([8; 32]);
        let own_fetch = |signer: &SecretKey, committed_at: u64| {
            let authorization = medledger_transfer::OwnFetchAuthorization {
                chain: ChainId::new(CHAIN).unwrap(),
                request: TxHash(Hash32([7; 32])),
                holder: InstitutionId::new("city-first-hospital").unwrap(),
                patient: PatientId::from_key(HashFunction::Sha256, &patient.public_key()),
                one_time_key: medledger_transfer::RecipientKey::X25519([9; 32]),
                time: now(),
                committed_at,
            };
            GatewayRequest::OpenOwn(Box::new(SignedOwnFetch {
                signature: signer.sign(&authorization.digest(HashFunction::Sha256)),
                public_key: patient.public_key(),
                authorization,
            }))
        };
        let stranger = peer_id_of_key(&SecretKey::from_seed([5; 32]).public_key()).unwrap();
        assert_eq!(
            code(s.holder.handle(stranger, own_fetch(&patient, 0))),
            "not_a_member"
        );
        // Any member's node relays a patient's fetch.
        let platform_node = peer_of(&s, "node:regional-platform");
        let forged = SecretKey::from_seed([6; 32]);
        assert_eq!(
            code(s.holder.handle(platform_node, own_fetch(&forged, 0))),
            "bad_authorization"
        );
        // Signed, but by no registered patient.
        assert_eq!(
            code(s.holder.handle(platform_node, own_fetch(&patient, 0))),
            "bad_authorization"
        );
        // Signed and naming a height a block ahead: asked again, not refused.
        assert!(matches!(
            s.holder.handle(platform_node, own_fetch(&patient, 1)),
            GatewayResponse::Wait { .. }
        ));
        assert_eq!(s.shared.mempool().len(), 0);
    }

    /// Issue 16, item 10: nothing is waited for before the signature is
    /// checked, and no thread sleeps for a node that is behind. A fetch
    /// naming a height a few blocks ahead is answered `Wait` at once if its
    /// practitioner signed it, and refused at once if not (the holder used
    /// to sleep up to 10 s on a blocking thread before verifying anything).
    #[test]
    fn a_fetch_ahead_of_this_node_is_answered_at_once_signed_or_not() {
        let s = setup();
        let doctor = s.keys["practitioner:dr-second-1"].secret().clone();
        let second_node = peer_of(&s, "node:city-second-hospital");
        let impostor = SecretKey::from_seed([6; 32]);
        // The doctor's fetch with a signature the doctor did not make.
        let GatewayRequest::Open(mut forged) = fetch_at(&doctor, 5) else {
            unreachable!()
        };
        forged.signature = impostor.sign(&forged.authorization.digest(HashFunction::Sha256));
        let started = Instant::now();
        assert_eq!(
            code(s.holder.handle(second_node, GatewayRequest::Open(forged))),
            "bad_authorization"
        );
        assert!(matches!(
            s.holder.handle(second_node, fetch_at(&doctor, 5)),
            GatewayResponse::Wait { .. }
        ));
        // Far ahead is not waited for: nothing this node knows authorises it.
        assert_eq!(
            code(s.holder.handle(second_node, fetch_at(&doctor, 1_000))),
            "not_authorized"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// Issue 16, item 10: a stranger is refused by `admit`, so the
    /// transport drops it before any work; a member's node is admitted.
    #[test]
    fn only_member_nodes_are_admitted() {
        let s = setup();
        let stranger = peer_id_of_key(&SecretKey::from_seed([5; 32]).public_key()).unwrap();
        assert!(!s.holder.admit(&stranger));
        assert!(s.holder.admit(&peer_of(&s, "node:city-second-hospital")));
        // A practitioner's key is not a node's.
        assert!(!s.holder.admit(&peer_of(&s, "practitioner:dr-second-1")));
    }
}
