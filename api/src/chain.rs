//! Chain routes: submitting transactions, status, headers, blocks,
//! certificates, validator sets, receipts and transactions.

use medledger_contracts::block::BlockHeader;
use medledger_contracts::encoding::{HashFunction, to_bytes};
use medledger_contracts::records::{Outcome as LedgerOutcome, Receipt as LedgerReceipt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{DenialCode, Hex32, RejectionCode, Signer, TransactionKind};

/// `POST /v1/tx`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// Hex of the BCS-encoded signed transaction.
    pub transaction: String,
    /// Wait until the transaction commits and answer with its receipt.
    #[serde(default)]
    pub wait: bool,
    /// Check the transaction only once this node has committed this height
    /// (a client that just got a receipt from another node passes its
    /// height, so what it did there is visible here too).
    #[serde(default)]
    pub after_height: Option<u64>,
}

/// `POST /v1/tx`'s answer: the receipt when the body asked to wait, else
/// the id of the admitted transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SubmitAnswer {
    /// Committed (with `wait`).
    Committed(Receipt),
    /// Admitted to the mempool (without `wait`).
    Accepted(Accepted),
}

/// A transaction admitted to the node's mempool, not yet committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// Its id.
    pub tx: Hex32,
    /// Always `accepted`.
    pub status: AcceptedStatus,
}

/// The one value of [`Accepted::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AcceptedStatus {
    /// Admitted.
    #[serde(rename = "accepted")]
    Accepted,
}

/// Most transactions in one `POST /v1/txs`.
pub const SUBMIT_MANY_MAX: usize = 1_000;

/// `POST /v1/txs`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitManyBody {
    /// Hex of each BCS-encoded signed transaction (1 to 1,000).
    #[schemars(length(min = 1, max = SUBMIT_MANY_MAX))]
    pub transactions: Vec<String>,
}

/// `POST /v1/txs`'s answer: one result per transaction, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitManyAnswer {
    /// One per transaction sent.
    pub results: Vec<SubmitResult>,
}

/// What happened to one transaction of a `POST /v1/txs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum SubmitResult {
    /// Admitted to the mempool.
    Accepted {
        /// Its id.
        tx: Hex32,
    },
    /// Refused, with the code `POST /v1/tx` would answer.
    Refused {
        /// Stable code.
        code: String,
        /// Why.
        message: String,
    },
}

/// `POST /v1/gossip`'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GossipAnswer {
    /// Transactions admitted.
    pub accepted: u64,
    /// Transactions refused (already held, invalid, or no room).
    pub refused: u64,
}

/// What a committed transaction did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// Applied.
    Applied,
    /// An access (request, emergency, public health) was authorised.
    Authorized,
    /// An access request was denied; the denial is recorded.
    Denied {
        /// Why, as a code.
        code: DenialCode,
        /// Why, for people.
        reason: String,
    },
    /// Nothing changed but the committed id: the rules refused it.
    Rejected {
        /// Why, as a code.
        code: RejectionCode,
        /// Why, for people (with the details a code leaves out).
        reason: String,
    },
}

impl Outcome {
    /// Its `status` on the wire: `applied`, `authorized`, `denied`, `rejected`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Authorized => "authorized",
            Self::Denied { .. } => "denied",
            Self::Rejected { .. } => "rejected",
        }
    }

    /// Why it was denied or rejected, for people.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Denied { reason, .. } | Self::Rejected { reason, .. } => Some(reason),
            Self::Applied | Self::Authorized => None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{} ({reason})", self.status()),
            None => f.write_str(self.status()),
        }
    }
}

impl From<&LedgerOutcome> for Outcome {
    fn from(outcome: &LedgerOutcome) -> Self {
        match outcome {
            LedgerOutcome::Applied => Self::Applied,
            LedgerOutcome::Authorized => Self::Authorized,
            LedgerOutcome::Denied(reason) => Self::Denied {
                code: reason.into(),
                reason: reason.to_string(),
            },
            LedgerOutcome::Rejected(reason) => Self::Rejected {
                code: reason.into(),
                reason: reason.to_string(),
            },
        }
    }
}

/// A committed transaction's receipt (`GET /v1/receipts/{tx}`, and
/// `POST /v1/tx` with `wait`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The transaction's id (it names the grant, request… it created).
    pub tx: Hex32,
    /// Always `committed`.
    pub status: CommittedStatus,
    /// The block it is in.
    pub height: u64,
    /// What it did.
    pub outcome: Outcome,
    /// The audit entries it appended.
    pub audit_indexes: Vec<u64>,
}

impl Receipt {
    /// The receipt of a transaction committed at `height`.
    pub fn new(height: u64, receipt: &LedgerReceipt) -> Self {
        Self {
            tx: receipt.tx.0.into(),
            status: CommittedStatus::Committed,
            height,
            outcome: (&receipt.outcome).into(),
            audit_indexes: receipt.audit_indexes.to_vec(),
        }
    }
}

/// The one value of [`Receipt::status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CommittedStatus {
    /// In a committed block.
    #[serde(rename = "committed")]
    Committed,
}

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// The chain's id.
    pub chain_id: String,
    /// The chain's crypto suite (`ed25519-sha256` or `sm2-sm3`), from its genesis.
    pub crypto_suite: String,
    /// The institution running this node.
    pub institution: String,
    /// Whether this node is in the validator set of the next height.
    pub validator: bool,
    /// The last committed height (0 before the first block).
    pub height: u64,
    /// The last block's hash (`null` before the first block).
    pub latest_block_hash: Option<Hex32>,
    /// The last block's time.
    pub latest_block_time_ms: Option<u64>,
    /// The state root after the last block.
    pub state_root: Option<Hex32>,
    /// The audit log's Merkle root after the last block.
    pub audit_root: Option<Hex32>,
    /// Audit entries so far.
    pub audit_size: u64,
    /// The consensus round at the next height.
    pub round: u64,
    /// Connected consensus peers.
    pub peers: u64,
    /// Transactions waiting in this node's mempool.
    pub mempool_size: u64,
    /// The genesis `tx_validity_window_ms`: a transaction's `valid_until`
    /// may be at most this far ahead of the block that takes it (R1);
    /// clients give theirs half of it.
    pub tx_validity_window_ms: u64,
}

/// A block header, with its BCS for clients that verify it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The header's hash.
    pub hash: Hex32,
    /// The chain's id.
    pub chain_id: String,
    /// Height.
    pub height: u64,
    /// Block time, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The parent's hash.
    pub previous_hash: Hex32,
    /// Merkle root of the block's transaction ids.
    pub transaction_root: Hex32,
    /// State root after the block.
    pub state_root: Hex32,
    /// Audit log root after the block.
    pub audit_root: Hex32,
    /// Audit entries after the block.
    pub audit_size: u64,
    /// Hash of the validator set that certifies the next height.
    pub validator_set_hash: Hex32,
    /// The proposing institution.
    pub proposer: String,
    /// Hex of the BCS header (what the hash and the certificate cover).
    pub bcs: String,
}

impl Header {
    /// The JSON of `header`, on a chain hashing with `hash`.
    pub fn of(hash: HashFunction, header: &BlockHeader) -> Self {
        Self {
            hash: header.hash(hash).into(),
            chain_id: header.chain_id.as_str().to_string(),
            height: header.height,
            time_ms: header.time.0,
            previous_hash: header.previous_hash.into(),
            transaction_root: header.transaction_root.into(),
            state_root: header.state_root.into(),
            audit_root: header.audit_root.into(),
            audit_size: header.audit_size,
            validator_set_hash: header.validator_set_hash.into(),
            proposer: header.proposer.as_str().to_string(),
            bcs: hex::encode(to_bytes(header)),
        }
    }
}

/// `GET /v1/blocks/{height}`: the header and the ids of the transactions
/// (hashes: they say nothing of who or what).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Block")]
pub struct BlockAnswer {
    /// The header.
    pub header: Header,
    /// The transactions' ids, in order.
    pub transactions: Vec<Hex32>,
    /// Their signed hashes (id, key and signature), in order: the leaves of
    /// the header's `transaction_root`, so the list can be checked against a
    /// certified header.
    pub signed_hashes: Vec<Hex32>,
}

/// `GET /v1/blocks/{height}/transactions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockTransactions {
    /// The block's height.
    pub height: u64,
    /// Its time.
    pub time_ms: u64,
    /// The transactions' ids, in order.
    pub transactions: Vec<Hex32>,
    /// Their signed hashes, in order (the leaves of the header's
    /// `transaction_root`).
    pub signed_hashes: Vec<Hex32>,
}

/// `GET /v1/certificates/{height}`: who signed a block's precommits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The certified height.
    pub height: u64,
    /// The round it was decided in.
    pub round: i64,
    /// The certified block's hash.
    pub block: Hex32,
    /// Hex of the BCS certificate (what a light client checks).
    pub bcs: String,
    /// The signers.
    pub signatures: Vec<CertificateSigner>,
}

/// One signer of a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateSigner {
    /// The validator's consensus address.
    pub validator: String,
}

/// A validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidatorSet {
    /// Its hash (in headers as `validator_set_hash`).
    pub hash: Hex32,
    /// The sum of the validators' power.
    pub total_power: u64,
    /// The validators.
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// The JSON of `set`, on a chain hashing with `hash`.
    pub fn of(hash: HashFunction, set: &medledger_contracts::records::ValidatorSet) -> Self {
        Self {
            hash: set.hash(hash).into(),
            total_power: set.total_power(),
            validators: set
                .validators
                .iter()
                .map(|v| Validator {
                    institution: v.institution.as_str().to_string(),
                    node_key: v.node_key.to_text(),
                    power: v.power,
                })
                .collect(),
        }
    }
}

/// One validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validator {
    /// Its institution.
    pub institution: String,
    /// Its node key, `scheme:hex`.
    pub node_key: String,
    /// Its voting power.
    pub power: u64,
}

/// `GET /v1/validators/{height}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Validators {
    /// The height asked for.
    pub height: u64,
    /// The set that certifies that height.
    pub validator_set: ValidatorSet,
    /// A change already decided, and the height it takes effect from.
    pub scheduled: Option<ScheduledValidators>,
    /// Hex of BCS `ProvedValue`: the validator-set record of `height - 1`
    /// proved against its certified header; `null` for height 1 (genesis's).
    pub proved_record: Option<String>,
}

/// A validator set decided for a later height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledValidators {
    /// The first height it certifies.
    pub from_height: u64,
    /// The set.
    pub validator_set: ValidatorSet,
}

/// `GET /v1/archive/{height}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Archived {
    /// The height.
    pub height: u64,
    /// Hex of BCS `ArchivedBlock` (block, certificate, audit entries).
    pub archived: String,
}

/// `GET /v1/transactions/{tx}`: a committed signed transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Transaction")]
pub struct TransactionAnswer {
    /// Its id.
    pub id: Hex32,
    /// The block it is in.
    pub height: u64,
    /// Who signed it.
    pub signer: Signer,
    /// The signer's nonce.
    pub nonce: u64,
    /// The last block time at which it could be committed (rule R1), ms.
    pub valid_until_ms: u64,
    /// What it asks for.
    pub kind: TransactionKind,
    /// What it did.
    pub outcome: Outcome,
    /// Hex of the BCS signed transaction.
    pub bcs: String,
}

/// `GET /v1/proposals/{proposal}`: a governance proposal (rules R4.8–R4.10),
/// its votes and where it stands. Public: governance is the consortium's,
/// and names institutions only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// Its id (the id of the `Propose` transaction).
    pub id: Hex32,
    /// The change proposed.
    pub action: ProposalAction,
    /// The proposing institution.
    pub proposer: String,
    /// When it lapses unless carried, ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The votes so far, in the order cast (the proposer's first).
    pub votes: Vec<ProposalVote>,
    /// Where it stands.
    pub status: ProposalStatus,
    /// The height that carried it (`null` unless carried).
    pub carried_at: Option<u64>,
}

/// A proposed change to the consortium.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalAction {
    /// `admit`, `suspend`, `reinstate`, `remove`, `set-voting-power`,
    /// `set-group` or `set-codes`.
    pub kind: String,
    /// The institution it concerns (`null` for `set-group`).
    pub institution: Option<String>,
    /// The voting power it would have (`admit`, `set-voting-power`).
    pub voting_power: Option<u64>,
    /// The group it sets (`set-group`, rule R4.15).
    pub group: Option<String>,
    /// The group's members it would set (`set-group`; none dissolves it).
    pub members: Option<Vec<String>>,
    /// The unified social credit code it would set (`set-codes`, R4.18).
    #[serde(default)]
    pub legal_code: Option<String>,
    /// The practice licence reference it would set (`set-codes`).
    #[serde(default)]
    pub licence_ref: Option<String>,
}

/// One validator's vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalVote {
    /// The voting institution.
    pub institution: String,
    /// For (`true`) or against.
    pub approve: bool,
}

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Collecting votes.
    Open,
    /// Carried and executed.
    Carried,
    /// The votes against make two thirds impossible.
    Defeated,
    /// Carried, but no longer valid when it came to execute.
    Failed,
    /// Still open on the ledger but past its `expires_at`: no vote counts
    /// any more.
    Expired,
}

/// `GET /v1/proposals`: the governance proposals, open ones first, then
/// the rest by when they lapse, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalList {
    /// At most [`PROPOSALS_LISTED_MAX`] proposals.
    pub items: Vec<Proposal>,
    /// Whether some were left out: the last in this order (closed ones
    /// lapsing earliest first; open ones only past 500 open). Each is still
    /// at `GET /v1/proposals/{id}`.
    pub truncated: bool,
}

/// Most proposals one `GET /v1/proposals` lists.
pub const PROPOSALS_LISTED_MAX: usize = 500;

impl Proposal {
    /// The answer for proposal `id`'s record, as of a block at `time`.
    pub fn new(
        id: &medledger_contracts::types::TxHash,
        record: &medledger_contracts::records::ProposalRecord,
        time: medledger_contracts::types::Timestamp,
    ) -> Self {
        use medledger_contracts::records::ProposalStatus as Ledger;
        use medledger_contracts::transaction::GovernanceAction as Action;
        let (kind, institution, voting_power) = match &record.action {
            Action::Admit(spec) => ("admit", Some(&spec.id), Some(spec.voting_power)),
            Action::Suspend(i) => ("suspend", Some(i), None),
            Action::Reinstate(i) => ("reinstate", Some(i), None),
            Action::Remove(i) => ("remove", Some(i), None),
            Action::SetVotingPower { institution, power } => {
                ("set-voting-power", Some(institution), Some(*power))
            }
            Action::SetGroup { .. } => ("set-group", None, None),
            Action::SetCodes { institution, .. } => ("set-codes", Some(institution), None),
        };
        let (legal_code, licence_ref) = match &record.action {
            Action::SetCodes {
                legal_code,
                licence_ref,
                ..
            } => (
                Some(legal_code.as_str().to_string()),
                Some(licence_ref.as_str().to_string()),
            ),
            _ => (None, None),
        };
        let (group, members) = match &record.action {
            Action::SetGroup { group, members } => (
                Some(group.as_str().to_string()),
                Some(members.iter().map(|m| m.as_str().to_string()).collect()),
            ),
            _ => (None, None),
        };
        let (status, carried_at) = match record.status {
            Ledger::Open if record.expires_at <= time => (ProposalStatus::Expired, None),
            Ledger::Open => (ProposalStatus::Open, None),
            Ledger::Carried(height) => (ProposalStatus::Carried, Some(height)),
            Ledger::Defeated => (ProposalStatus::Defeated, None),
            Ledger::Failed => (ProposalStatus::Failed, None),
        };
        Self {
            id: id.0.into(),
            action: ProposalAction {
                kind: kind.to_string(),
                institution: institution.map(|i| i.as_str().to_string()),
                voting_power,
                group,
                members,
                legal_code,
                licence_ref,
            },
            proposer: record.proposer.as_str().to_string(),
            expires_at_ms: record.expires_at.0,
            votes: record
                .votes
                .iter()
                .map(|(institution, approve)| ProposalVote {
                    institution: institution.as_str().to_string(),
                    approve: *approve,
                })
                .collect(),
            status,
            carried_at,
        }
    }
}
