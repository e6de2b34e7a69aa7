//! Transactions waiting for a block: each checked once on arrival (size,
//! decoding, chain, signature, form) and kept verified, so no node verifies
//! the same signature twice. Bounded in count and bytes, and fair: waiting
//! transactions are held in lanes with their own room, and within a lane
//! no party keeps more than an equal share once others want room.
//!
//! Lanes, in order of priority:
//! 1. **withdrawals** — a patient's or delegate's `Revoke`, `EndDelegation`
//!    and `CancelControlChange` (⅛ of the pool): a withdrawal of consent
//!    never waits behind anyone else's traffic;
//! 2. **members** — transactions signed by an institution's admin or node
//!    key or by a practitioner (¼), one party per institution, so a holder's
//!    `AccessServed` and `FetchRefused` are never crowded out by patients,
//!    and one member's practitioners share that member's part;
//! 3. **patients** — every other patient or delegate transaction (½);
//! 4. **newcomers** — `RegisterPatient` from a key the ledger does not know
//!    yet (⅛), one per key: a flood of new keys fills this lane only.
//!
//! Each lane has that share of the pool's transactions and of its bytes.
//! Within a lane the party is the signing key (the institution, for
//! members; the node checks the claimed signer is bound to the key before
//! it counts). When a lane is full, a transaction from a party holding
//! fewer than the lane's largest party (by at least two) takes the place of
//! that party's newest one; otherwise it is refused `mempool_full`. A block
//! takes each lane's share of its room first, then fills what is left in
//! lane order, so priority never starves a lane.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use medledger_contracts::constants::TRANSACTION_BYTES_MAX;
use medledger_contracts::records::Rejection;
use medledger_contracts::transaction::{
    Payload, SignedTransaction, Signer, TransactionError, VerifiedTransaction,
};
use medledger_contracts::types::{Chain, InstitutionId, Timestamp, TxHash};

/// Mempool bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most transactions held.
    pub transactions: usize,
    /// Most bytes held.
    pub bytes: usize,
    /// Most transactions held from one party (a key, or an institution's
    /// keys and practitioners) in one lane.
    pub per_signer: usize,
}

/// Which lane a transaction waits in (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// A patient's withdrawal of consent.
    Withdrawal,
    /// Signed by a member institution's keys or practitioners.
    Member,
    /// Any other patient or delegate transaction.
    Patient,
    /// A new key's `RegisterPatient`.
    Newcomer,
}

impl Lane {
    const ALL: [Lane; 4] = [
        Lane::Withdrawal,
        Lane::Member,
        Lane::Patient,
        Lane::Newcomer,
    ];

    /// The lane of a transaction with this signer and payload.
    pub fn of(signer: &Signer, payload: &Payload) -> Lane {
        match (signer, payload) {
            (_, Payload::RegisterPatient) => Lane::Newcomer,
            (Signer::Institution(_) | Signer::InstitutionNode(_) | Signer::Practitioner(_), _) => {
                Lane::Member
            }
            (
                _,
                Payload::Revoke { .. }
                | Payload::EndDelegation { .. }
                | Payload::CancelControlChange { .. },
            ) => Lane::Withdrawal,
            _ => Lane::Patient,
        }
    }

    /// This lane's room out of `total` (transactions, bytes, or a block's
    /// transactions).
    fn room(self, total: usize) -> usize {
        let share = match self {
            Lane::Withdrawal | Lane::Newcomer => total / 8,
            Lane::Member => total / 4,
            Lane::Patient => total - 2 * (total / 8) - total / 4,
        };
        share.max(1)
    }

    /// Most transactions one party may hold in this lane.
    fn party_cap(self, limits: &Limits) -> usize {
        match self {
            // A key registers once; variants by nonce are pointless.
            Lane::Newcomer => 1,
            _ => limits.per_signer.max(1),
        }
    }
}

/// Who a waiting transaction counts against within its lane.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    /// A member institution (its admin and node keys and its practitioners).
    Institution(InstitutionId),
    /// A signing key.
    Key(Vec<u8>),
}

impl Party {
    /// The party of a verified transaction; `institution_of` names a
    /// practitioner's institution as the committed state knows it.
    pub fn of(
        verified: &VerifiedTransaction,
        institution_of: impl FnOnce(
            &medledger_contracts::types::PractitionerId,
        ) -> Option<InstitutionId>,
    ) -> Party {
        match &verified.transaction().signer {
            Signer::Institution(id) | Signer::InstitutionNode(id) => Party::Institution(id.clone()),
            Signer::Practitioner(p) => institution_of(p).map_or_else(
                || Party::Key(verified.public_key().raw_bytes().to_vec()),
                Party::Institution,
            ),
            Signer::Patient(_) | Signer::Delegate(_) => {
                Party::Key(verified.public_key().raw_bytes().to_vec())
            }
        }
    }
}

/// Why a transaction was not taken. Each says what the submitter can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Larger than any transaction may be.
    #[error("transaction is {actual} bytes; the limit is {max}")]
    TooLarge {
        /// Size.
        actual: usize,
        /// Limit.
        max: usize,
    },
    /// Not a transaction, or malformed, or wrongly signed.
    #[error("{0}")]
    Invalid(TransactionError),
    /// Already waiting here.
    #[error("transaction {0} is already in the mempool")]
    Duplicate(TxHash),
    /// Already on the ledger.
    #[error("transaction {0} is already committed")]
    AlreadyCommitted(TxHash),
    /// The ledger would reject it now.
    #[error("the ledger would reject this transaction: {0}")]
    WouldReject(String),
    /// Outside its validity window at this node's clock (R1): past its
    /// `valid_until`, or valid for longer than the chain's window allows.
    #[error("{0}; sign it again with a valid_until within the chain's window (GET /v1/status)")]
    OutsideValidity(Rejection),
    /// This signer has its share of the mempool already.
    #[error("this key already has {0} transactions waiting; wait for some to commit")]
    SignerQuota(usize),
    /// The mempool is full.
    #[error("the mempool is full ({0}); retry shortly")]
    Full(&'static str),
}

impl Refusal {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Invalid(TransactionError::Decode(_)) => "malformed",
            Refusal::Invalid(TransactionError::Signature { .. }) => "bad_signature",
            Refusal::Invalid(TransactionError::Field { .. }) => "invalid_field",
            Refusal::Duplicate(_) => "duplicate",
            Refusal::AlreadyCommitted(_) => "already_committed",
            Refusal::WouldReject(_) => "would_be_rejected",
            Refusal::OutsideValidity(Rejection::Expired { .. }) => "expired",
            Refusal::OutsideValidity(_) => "valid_too_long",
            Refusal::SignerQuota(_) => "signer_quota",
            Refusal::Full(_) => "mempool_full",
        }
    }
}

struct Entry {
    verified: VerifiedTransaction,
    bytes: usize,
    lane: Lane,
    party: Party,
    sequence: u64,
}

/// One lane's waiting transactions.
#[derive(Default)]
struct LaneState {
    /// Arrival order.
    order: BTreeMap<u64, TxHash>,
    /// Each party's transactions, by arrival.
    parties: HashMap<Party, BTreeSet<u64>>,
    /// Parties by how many they hold, to find the largest at once.
    by_count: BTreeSet<(usize, Party)>,
    /// Bytes held.
    bytes: usize,
}

impl LaneState {
    fn held(&self, party: &Party) -> usize {
        self.parties.get(party).map_or(0, BTreeSet::len)
    }

    fn add(&mut self, party: &Party, sequence: u64, id: TxHash) {
        let held = self.held(party);
        self.by_count.remove(&(held, party.clone()));
        self.by_count.insert((held + 1, party.clone()));
        self.parties
            .entry(party.clone())
            .or_default()
            .insert(sequence);
        self.order.insert(sequence, id);
    }

    fn remove(&mut self, party: &Party, sequence: u64) {
        let held = self.held(party);
        self.by_count.remove(&(held, party.clone()));
        if held > 1 {
            self.by_count.insert((held - 1, party.clone()));
        }
        if let Some(set) = self.parties.get_mut(party) {
            set.remove(&sequence);
            if set.is_empty() {
                self.parties.remove(party);
            }
        }
        self.order.remove(&sequence);
    }

    /// The transactions to drop so that one of `size` bytes from a party
    /// holding `held` fits within `room` transactions and `byte_room`
    /// bytes: each time the newest of the party then holding the most, if
    /// it holds at least two more than `held` (so it is left no worse off
    /// than the newcomer). `None` (and nothing dropped) if that cannot make
    /// room.
    fn plan_evictions(
        &self,
        held: usize,
        size: usize,
        room: usize,
        byte_room: usize,
        entries: &HashMap<TxHash, Entry>,
    ) -> Option<Vec<TxHash>> {
        let mut taken: HashMap<&Party, usize> = HashMap::new();
        let mut plan = Vec::new();
        let (mut count, mut bytes) = (self.order.len(), self.bytes);
        while count >= room || bytes + size > byte_room {
            // The largest party after what is planned is among the top
            // (parties planned from + 1) by their original counts.
            let (party, remaining) = self
                .by_count
                .iter()
                .rev()
                .take(taken.len() + 1)
                .map(|(n, p)| (p, n - taken.get(p).copied().unwrap_or(0)))
                .max_by_key(|(_, n)| *n)?;
            if remaining < held + 2 {
                return None;
            }
            let already = taken.get(party).copied().unwrap_or(0);
            let sequence = *self.parties.get(party)?.iter().rev().nth(already)?;
            let id = *self.order.get(&sequence)?;
            *taken.entry(party).or_default() += 1;
            count -= 1;
            bytes -= entries.get(&id).map_or(0, |e| e.bytes);
            plan.push(id);
        }
        Some(plan)
    }
}

/// Decodes a transaction from outside, with its id: refused if too large or
/// malformed. Needs no pool (nor its lock).
pub fn decode(chain: &Chain, bytes: &[u8]) -> Result<(SignedTransaction, TxHash), Refusal> {
    if bytes.len() > TRANSACTION_BYTES_MAX {
        return Err(Refusal::TooLarge {
            actual: bytes.len(),
            max: TRANSACTION_BYTES_MAX,
        });
    }
    let signed = SignedTransaction::from_bytes(bytes).map_err(Refusal::Invalid)?;
    // The id is a hash, cheap next to a signature check: repeats are refused on it first.
    let id = signed.id(chain);
    Ok((signed, id))
}

/// The pool.
pub struct Mempool {
    chain: Chain,
    limits: Limits,
    entries: HashMap<TxHash, Entry>,
    lanes: BTreeMap<Lane, LaneState>,
    bytes: usize,
    next_sequence: u64,
    /// The ids of the last few committed blocks. Admission looks a
    /// transaction up in the store and inserts it after checking its
    /// signature, outside this pool's lock; a block that commits it in
    /// between would otherwise leave it waiting here, to be proposed again
    /// and rejected as a duplicate.
    recently_committed: VecDeque<Vec<TxHash>>,
    /// How many of those blocks list each id (a hostile block may repeat one).
    recently_committed_ids: HashMap<TxHash, usize>,
}

/// Committed blocks whose ids the pool still refuses (see
/// `Mempool::recently_committed`): admission takes milliseconds, blocks
/// come at most a few times a second.
const RECENT_BLOCKS: usize = 4;

impl Mempool {
    /// An empty pool for `chain`.
    pub fn new(chain: Chain, limits: Limits) -> Self {
        Self {
            chain,
            limits,
            entries: HashMap::new(),
            lanes: Lane::ALL
                .iter()
                .map(|l| (*l, LaneState::default()))
                .collect(),
            bytes: 0,
            next_sequence: 0,
            recently_committed: VecDeque::new(),
            recently_committed_ids: HashMap::new(),
        }
    }

    /// Transactions waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no transaction is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Transactions waiting in one lane.
    #[cfg(test)]
    pub fn lane_len(&self, lane: Lane) -> usize {
        self.lanes.get(&lane).map_or(0, |l| l.order.len())
    }

    fn lane(&mut self, lane: Lane) -> &mut LaneState {
        self.lanes.entry(lane).or_default()
    }

    /// Decodes bytes from outside and refuses what cannot be taken before
    /// any signature is checked: too large, malformed, a repeat, no room.
    /// `committed` says whether an id is on the ledger already. The caller
    /// verifies the result (outside the pool's lock) and then `insert`s it.
    pub fn precheck(
        &self,
        bytes: &[u8],
        committed: impl Fn(&TxHash) -> bool,
    ) -> Result<SignedTransaction, Refusal> {
        let (signed, id) = decode(&self.chain, bytes)?;
        self.check_waiting(&signed, &id)?;
        if committed(&id) {
            return Err(Refusal::AlreadyCommitted(id));
        }
        Ok(signed)
    }

    /// Refuses, before any signature is checked, what waits here already: the
    /// same transaction (by `id`), or a second registration from a key whose
    /// registration waits (a new key's is the one kind whose party is known
    /// unverified).
    pub fn check_waiting(&self, signed: &SignedTransaction, id: &TxHash) -> Result<(), Refusal> {
        if self.entries.contains_key(id) {
            return Err(Refusal::Duplicate(*id));
        }
        if self.recently_committed_ids.contains_key(id) {
            return Err(Refusal::AlreadyCommitted(*id));
        }
        let lane = Lane::of(&signed.transaction.signer, &signed.transaction.payload);
        if lane == Lane::Newcomer {
            let party = Party::Key(signed.public_key.raw_bytes().to_vec());
            if self.lanes.get(&lane).is_some_and(|l| l.held(&party) > 0) {
                return Err(Refusal::SignerQuota(1));
            }
        }
        Ok(())
    }

    /// Adds a checked transaction, counted against `party` (see
    /// [`Party::of`]); may take the place of a larger party's newest one.
    pub fn insert(
        &mut self,
        verified: VerifiedTransaction,
        party: Party,
    ) -> Result<TxHash, Refusal> {
        let id = verified.id();
        if self.entries.contains_key(&id) {
            return Err(Refusal::Duplicate(id));
        }
        if self.recently_committed_ids.contains_key(&id) {
            return Err(Refusal::AlreadyCommitted(id));
        }
        let lane = Lane::of(
            &verified.transaction().signer,
            &verified.transaction().payload,
        );
        let bytes = verified.encoded_len();
        let held = self.lanes.get(&lane).map_or(0, |l| l.held(&party));
        let cap = lane.party_cap(&self.limits);
        if held >= cap {
            return Err(Refusal::SignerQuota(held));
        }
        // Make room within the lane's share of transactions and of bytes,
        // planned before anything is dropped.
        let room = lane.room(self.limits.transactions);
        let byte_room = lane.room(self.limits.bytes);
        let plan = self
            .lanes
            .get(&lane)
            .and_then(|l| l.plan_evictions(held, bytes, room, byte_room, &self.entries))
            .ok_or(Refusal::Full("this kind of transaction has its share"))?;
        self.remove(plan);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.bytes += bytes;
        let state = self.lane(lane);
        state.add(&party, sequence, id);
        state.bytes += bytes;
        self.entries.insert(
            id,
            Entry {
                verified,
                bytes,
                lane,
                party,
                sequence,
            },
        );
        Ok(id)
    }

    /// Up to `count` transactions and `bytes` bytes for a block, oldest
    /// first within each lane: first each lane up to its share of `count`
    /// (so no lane starves another), then what room is left, lane by lane
    /// in the order of [`Lane`].
    pub fn take_for_block(&self, count: usize, bytes: usize) -> Vec<VerifiedTransaction> {
        let mut out = Vec::new();
        let mut chosen = std::collections::HashSet::new();
        let mut total = 0usize;
        for pass in 0..2 {
            for (lane, state) in &self.lanes {
                let cap = if pass == 0 { lane.room(count) } else { count };
                let mut from_lane = 0;
                for id in state.order.values() {
                    if out.len() >= count || from_lane >= cap {
                        break;
                    }
                    if chosen.contains(id) {
                        from_lane += 1;
                        continue;
                    }
                    let Some(entry) = self.entries.get(id) else {
                        continue;
                    };
                    if total + entry.bytes > bytes {
                        break;
                    }
                    total += entry.bytes;
                    from_lane += 1;
                    chosen.insert(*id);
                    out.push(entry.verified.clone());
                }
            }
        }
        out
    }

    /// Drops the transactions no block at `time` or later may take: their
    /// `valid_until` is past (R1). Returns how many.
    pub fn drop_expired(&mut self, time: Timestamp) -> usize {
        let expired: Vec<TxHash> = self
            .entries
            .iter()
            .filter(|(_, e)| e.verified.transaction().valid_until < time)
            .map(|(id, _)| *id)
            .collect();
        let count = expired.len();
        if count > 0 {
            self.remove(expired);
        }
        count
    }

    /// The verified form of a waiting transaction, so a block that carries
    /// it needs no second signature check.
    pub fn verified(&self, id: &TxHash) -> Option<&VerifiedTransaction> {
        self.entries.get(id).map(|e| &e.verified)
    }

    /// Drops the transactions a block committed, and refuses them for the
    /// next few blocks (an admission already under way may try to insert one).
    pub fn committed(&mut self, ids: &[TxHash]) {
        self.remove(ids.iter().copied());
        if self.recently_committed.len() == RECENT_BLOCKS
            && let Some(oldest) = self.recently_committed.pop_front()
        {
            for id in &oldest {
                if let Some(count) = self.recently_committed_ids.get_mut(id) {
                    *count -= 1;
                    if *count == 0 {
                        self.recently_committed_ids.remove(id);
                    }
                }
            }
        }
        for id in ids {
            *self.recently_committed_ids.entry(*id).or_insert(0) += 1;
        }
        self.recently_committed.push_back(ids.to_vec());
    }

    /// Drops transactions that lost their place (or a block committed).
    pub fn remove(&mut self, ids: impl IntoIterator<Item = TxHash>) {
        for id in ids {
            if let Some(entry) = self.entries.remove(&id) {
                self.bytes -= entry.bytes;
                let lane = self.lane(entry.lane);
                lane.remove(&entry.party, entry.sequence);
                lane.bytes -= entry.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Issue 16, item 8: a flood from new keys, or from one party, cannot
    //! refuse a patient's revocation or a holder's release. (Before lanes,
    //! ten keys could fill a default pool, 10,000 nonce variants each.)

    use medledger_contracts::crypto::SecretKey;
    use medledger_contracts::encoding::{BoundedVec, Hash32};
    use medledger_contracts::transaction::Transaction;
    use medledger_contracts::types::{PatientId, TxHash};

    use super::*;

    fn chain() -> Chain {
        Chain::new(
            medledger_contracts::types::ChainId::new("medledger-mempool-test").unwrap(),
            medledger_contracts::crypto::CryptoSuite::Ed25519Sha256,
        )
    }

    fn pool(transactions: usize) -> Mempool {
        Mempool::new(
            chain(),
            Limits {
                transactions,
                bytes: 1 << 24,
                per_signer: 1_000,
            },
        )
    }

    fn signed(
        key: &SecretKey,
        signer: Signer,
        nonce: u64,
        payload: Payload,
    ) -> VerifiedTransaction {
        Transaction {
            signer,
            nonce,
            valid_until: medledger_contracts::types::Timestamp(u64::MAX),
            payload,
        }
        .sign(&chain(), key)
        .verify(&chain())
        .unwrap()
    }

    fn patient(seed: u8) -> (SecretKey, Signer) {
        let key = SecretKey::from_seed([seed; 32]);
        let signer = Signer::Patient(PatientId::from_key(chain().hash(), &key.public_key()));
        (key, signer)
    }

    fn register(seed: u8, nonce: u64) -> VerifiedTransaction {
        let (key, signer) = patient(seed);
        signed(&key, signer, nonce, Payload::RegisterPatient)
    }

    fn revoke(seed: u8, nonce: u64) -> VerifiedTransaction {
        let (key, signer) = patient(seed);
        let grant = TxHash(Hash32([seed; 32]));
        signed(&key, signer, nonce, Payload::Revoke { grant })
    }

    fn release(institution: &str, nonce: u64) -> VerifiedTransaction {
        let key = SecretKey::from_seed([200; 32]);
        let signer = Signer::InstitutionNode(InstitutionId::new(institution).unwrap());
        let payload = Payload::AccessServed {
            request: TxHash(Hash32([1; 32])),
            content_hashes: BoundedVec::new(Vec::new()).unwrap(),
        };
        signed(&key, signer, nonce, payload)
    }

    fn insert(pool: &mut Mempool, tx: VerifiedTransaction) -> Result<TxHash, Refusal> {
        let party = Party::of(&tx, |_| None);
        pool.insert(tx, party)
    }

    #[test]
    fn a_transaction_committed_while_its_admission_ran_is_not_kept() {
        let mut pool = pool(100);
        let tx = register(1, 0);
        let id = tx.id();
        // A block commits it after admission looked in the store and before
        // admission inserts it.
        pool.committed(&[id]);
        assert!(matches!(
            insert(&mut pool, tx.clone()),
            Err(Refusal::AlreadyCommitted(_))
        ));
        assert!(pool.is_empty());
        // Some blocks later the store alone answers for it.
        for _ in 0..RECENT_BLOCKS {
            pool.committed(&[]);
        }
        assert!(insert(&mut pool, tx).is_ok());
    }

    #[test]
    fn a_proposer_drops_what_is_past_its_valid_until() {
        let mut pool = pool(100);
        let (key, signer) = patient(1);
        let until = |ms| {
            Transaction {
                signer: signer.clone(),
                nonce: ms,
                valid_until: Timestamp(ms),
                payload: Payload::Revoke {
                    grant: TxHash(Hash32([1; 32])),
                },
            }
            .sign(&chain(), &key)
            .verify(&chain())
            .unwrap()
        };
        let (soon, later) = (until(1_000), until(2_000));
        insert(&mut pool, soon).unwrap();
        let later_id = insert(&mut pool, later).unwrap();
        // A block at 1,000 may still take both; one at 1,001 only the later.
        assert_eq!(pool.drop_expired(Timestamp(1_000)), 0);
        assert_eq!(pool.drop_expired(Timestamp(1_001)), 1);
        let left: Vec<_> = pool
            .take_for_block(10, 1 << 20)
            .iter()
            .map(|t| t.id())
            .collect();
        assert_eq!(left, vec![later_id]);
    }

    #[test]
    fn a_new_key_registers_once_and_new_keys_fill_only_their_lane() {
        let mut pool = pool(80);
        // Nonce variants of one key's registration: one waits, the rest are
        // refused — before the signature is even checked.
        insert(&mut pool, register(1, 0)).unwrap();
        assert_eq!(
            insert(&mut pool, register(1, 1)).unwrap_err(),
            Refusal::SignerQuota(1)
        );
        let again = Transaction {
            signer: patient(1).1,
            nonce: 2,
            valid_until: medledger_contracts::types::Timestamp(u64::MAX),
            payload: Payload::RegisterPatient,
        }
        .sign(&chain(), &patient(1).0)
        .to_bytes();
        assert_eq!(
            pool.precheck(&again, |_| false).unwrap_err(),
            Refusal::SignerQuota(1)
        );
        // Many new keys: they fill the newcomers' eighth and no more.
        let mut refused = 0;
        for seed in 2..=100u8 {
            if insert(&mut pool, register(seed, 0)).is_err() {
                refused += 1;
            }
        }
        assert_eq!(pool.lane_len(Lane::Newcomer), 10);
        assert_eq!(refused, 90);
        // A patient's revocation and a holder's release still get in, and
        // a block takes them first.
        let revocation = insert(&mut pool, revoke(7, 0)).unwrap();
        let served = insert(&mut pool, release("city-first-hospital", 0)).unwrap();
        let block: Vec<TxHash> = pool
            .take_for_block(2, 1 << 20)
            .iter()
            .map(|t| t.id())
            .collect();
        assert_eq!(block, [revocation, served]);
    }

    #[test]
    fn a_party_holding_more_than_its_share_gives_way() {
        let mut pool = pool(80);
        // One member's node fills the members' quarter (20).
        for nonce in 0..20 {
            insert(&mut pool, release("city-first-hospital", nonce)).unwrap();
        }
        assert_eq!(pool.lane_len(Lane::Member), 20);
        // Another member's release takes the place of the first's newest.
        let other = insert(&mut pool, release("city-second-hospital", 0)).unwrap();
        assert!(pool.verified(&other).is_some());
        assert_eq!(pool.lane_len(Lane::Member), 20);
        let newest = release("city-first-hospital", 19).id();
        assert!(
            pool.verified(&newest).is_none(),
            "the largest party's newest stays"
        );
        // Parties level out at equal shares; past that the lane is full.
        for nonce in 1..10 {
            insert(&mut pool, release("city-second-hospital", nonce)).unwrap();
        }
        assert!(matches!(
            insert(&mut pool, release("city-second-hospital", 10)),
            Err(Refusal::Full(_))
        ));
        // Committing frees the places.
        let ids: Vec<TxHash> = pool
            .take_for_block(100, 1 << 20)
            .iter()
            .map(|t| t.id())
            .collect();
        pool.remove(ids);
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.lane_len(Lane::Member), 0);
    }

    #[test]
    fn a_busy_lane_does_not_starve_the_others_in_a_block() {
        let mut pool = pool(80);
        for n in 0..20 {
            insert(&mut pool, release(&format!("hospital-{n}"), 0)).unwrap();
        }
        let newcomer = insert(&mut pool, register(1, 0)).unwrap();
        // A block of four: members have first call, but only on their
        // share; the newcomer gets its place.
        let block: Vec<TxHash> = pool
            .take_for_block(4, 1 << 20)
            .iter()
            .map(VerifiedTransaction::id)
            .collect();
        assert_eq!(block.len(), 4);
        assert!(block.contains(&newcomer), "{block:?}");
    }

    #[test]
    fn eviction_is_planned_before_anything_is_dropped() {
        let mut pool = pool(80);
        // The withdrawals' eighth (10), one each from ten keys: a further
        // withdrawal cannot take anyone's place, and none is dropped.
        for seed in 1..=10u8 {
            insert(&mut pool, revoke(seed, 0)).unwrap();
        }
        assert!(matches!(
            insert(&mut pool, revoke(11, 0)),
            Err(Refusal::Full(_))
        ));
        assert_eq!(pool.lane_len(Lane::Withdrawal), 10);
    }
}
