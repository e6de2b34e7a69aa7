//! `Client`: the node's HTTP API, typed. Every read of private data is
//! signed with the caller's key ([`Identity`]); nothing returned here is
//! trusted by the light client until it checks the proofs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use medledger_api as api;
use medledger_contracts::constants::ARCHIVED_BLOCK_BYTES_MAX;
use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::light::{PROVED_VALUE_BYTES_MAX, ProvedValue};
use medledger_contracts::request_auth::RequestAuth;
use medledger_contracts::transaction::{SignedTransaction, Signer};
use medledger_contracts::types::{Chain, InstitutionId, PatientId, Timestamp, TxHash};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::SdkError;
use crate::keys::KeyFile;

/// The largest answer the client reads. The largest the node gives is an
/// archived block (`GET /v1/archive/{height}`): block, certificate and audit
/// entries, in hex (twice their bytes), in a small JSON object.
pub const ANSWER_BYTES_MAX: usize = 2 * ARCHIVED_BLOCK_BYTES_MAX + 4096;

/// Who the caller is: a signer the ledger knows and the key that signs for it.
#[derive(Clone, Debug)]
pub struct Identity {
    /// As whom requests and transactions are signed.
    pub signer: Signer,
    key: SecretKey,
}

impl Identity {
    /// A patient, with their current key.
    pub fn patient(key: &KeyFile) -> Self {
        Self::patient_with_id(key.patient_id(), key)
    }

    /// A patient whose key was rotated or recovered (their id stays that of their first key).
    pub fn patient_with_id(id: PatientId, key: &KeyFile) -> Self {
        Self {
            signer: Signer::Patient(id),
            key: key.secret().clone(),
        }
    }

    /// A practitioner, with their current key.
    pub fn practitioner(key: &KeyFile) -> Self {
        Self {
            signer: Signer::Practitioner(key.practitioner_id()),
            key: key.secret().clone(),
        }
    }

    /// An institution's administrators, with the admin key.
    pub fn institution(id: InstitutionId, admin_key: &KeyFile) -> Self {
        Self {
            signer: Signer::Institution(id),
            key: admin_key.secret().clone(),
        }
    }

    /// Any signer with its key.
    pub fn new(signer: Signer, key: SecretKey) -> Self {
        Self { signer, key }
    }

    /// The secret key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }
}

/// What happened to a committed transaction: the API's own type.
pub use medledger_api::Outcome as TxOutcome;

/// A committed transaction's receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxReceipt {
    /// The transaction's id (names the grant, request… it created).
    pub tx: TxHash,
    /// The block it is in.
    pub height: u64,
    /// What happened.
    pub outcome: TxOutcome,
    /// Audit entries it appended.
    pub audit_indexes: Vec<u64>,
}

impl TxReceipt {
    fn from_api(receipt: api::Receipt) -> Self {
        Self {
            tx: TxHash(receipt.tx.0),
            height: receipt.height,
            outcome: receipt.outcome,
            audit_indexes: receipt.audit_indexes,
        }
    }
}

/// A node's HTTP API.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    chain: Chain,
    /// The institution whose node this is: every signed request names it,
    /// so it cannot be replayed at another member's node. Read from
    /// `/v1/status` at the first signed request unless given.
    node: Arc<OnceLock<InstitutionId>>,
}

fn fresh_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    // Without OS entropy the clock's nanoseconds still make a nonce unlikely to repeat.
    if getrandom::fill(&mut bytes).is_err() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos().into())
            .unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// This machine's clock, in ms since the epoch.
pub fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

impl Client {
    /// A client of the node at `base_url` (e.g. `http://127.0.0.1:8645`) on
    /// `chain` (its id and crypto suite, from its genesis: [`Genesis::chain`]).
    ///
    /// [`Genesis::chain`]: medledger_genesis::Genesis::chain
    pub fn new(base_url: &str, chain: Chain) -> Result<Self, SdkError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| SdkError::Http(e.to_string()))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            chain,
            node: Arc::new(OnceLock::new()),
        })
    }

    /// The same client, told which institution's node it talks to (no
    /// `/v1/status` lookup before the first signed request).
    pub fn with_node(self, institution: InstitutionId) -> Self {
        let node = OnceLock::new();
        let _ = node.set(institution);
        Self {
            node: Arc::new(node),
            ..self
        }
    }

    /// The institution whose node this is (asked once, then remembered).
    pub async fn node_institution(&self) -> Result<InstitutionId, SdkError> {
        if let Some(node) = self.node.get() {
            return Ok(node.clone());
        }
        let status = self.status().await?;
        let institution = InstitutionId::new(&status.institution)
            .map_err(|e| SdkError::Decode(format!("the node names no valid institution: {e}")))?;
        Ok(self.node.get_or_init(|| institution).clone())
    }

    /// The chain this client signs for.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// An answer's body, refused past [`ANSWER_BYTES_MAX`]: a node that
    /// streams without end cannot exhaust the client's memory.
    async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, SdkError> {
        let too_large = || {
            SdkError::Decode(format!(
                "the node's answer is over {ANSWER_BYTES_MAX} bytes"
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > ANSWER_BYTES_MAX as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SdkError::Http(format!("reading the node's answer: {e}")))?
        {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The answer's body as `T` (strictly: an unknown field is refused), or
    /// the node's error.
    async fn answer<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, SdkError> {
        let status = response.status();
        let body = Self::read_bounded(response).await?;
        if status.is_success() && status.as_u16() != 202 {
            return serde_json::from_slice(&body).map_err(|e| {
                SdkError::Decode(format!("the node's answer is not the expected JSON: {e}"))
            });
        }
        // The node's errors are `ErrorBody`; anything else (a proxy's page
        // in front of the node) keeps its status, with its text as message.
        Err(match serde_json::from_slice::<api::ErrorBody>(&body) {
            Ok(error) => SdkError::Api {
                status: status.as_u16(),
                code: error.code,
                message: error.message,
            },
            Err(_) => SdkError::Api {
                status: status.as_u16(),
                code: "unknown".into(),
                message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            },
        })
    }

    /// A public GET, answered as untyped JSON (for tools that print what a
    /// route answers; typed calls use [`Client::get_as`]).
    pub async fn get(&self, path_and_query: &str) -> Result<Value, SdkError> {
        self.get_as(path_and_query).await
    }

    /// A public GET, answered as the API type `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T, SdkError> {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        Self::answer(response).await
    }

    /// The `Authorization` header value for a request signed by `who`, for
    /// this client's node only.
    pub async fn authorization(
        &self,
        who: &Identity,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<String, SdkError> {
        let node = self.node_institution().await?;
        let auth = RequestAuth::sign(
            &self.chain,
            &node,
            method,
            path_and_query,
            body,
            now(),
            fresh_nonce(),
            who.signer.clone(),
            &who.key,
        );
        Ok(format!("Medledger {}", hex::encode(to_bytes(&auth))))
    }

    /// A GET signed by `who`, answered as untyped JSON (typed calls use
    /// [`Client::get_signed_as`]).
    pub async fn get_signed(
        &self,
        path_and_query: &str,
        who: &Identity,
    ) -> Result<Value, SdkError> {
        self.get_signed_as(path_and_query, who).await
    }

    /// A GET signed by `who`, answered as the API type `T`.
    pub async fn get_signed_as<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        who: &Identity,
    ) -> Result<T, SdkError> {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .header(
                "authorization",
                self.authorization(who, "GET", path_and_query, b"").await?,
            )
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        Self::answer(response).await
    }

    /// A POST signed by `who`, answered as a raw (possibly streaming) response;
    /// an error answer becomes [`SdkError::Api`].
    pub async fn post_signed_raw(
        &self,
        path: &str,
        body: String,
        who: &Identity,
    ) -> Result<reqwest::Response, SdkError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(
                "authorization",
                self.authorization(who, "POST", path, body.as_bytes())
                    .await?,
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        if response.status().is_success() {
            return Ok(response);
        }
        match Self::answer::<Value>(response).await {
            Err(e) => Err(e),
            Ok(body) => Err(SdkError::Decode(format!("unexpected answer: {body}"))),
        }
    }

    /// The node's status.
    pub async fn status(&self) -> Result<api::Status, SdkError> {
        self.get_as("/v1/status").await
    }

    /// `GET /v1/proposals/{proposal}`: a governance proposal and its votes.
    pub async fn proposal(&self, proposal: &TxHash) -> Result<api::Proposal, SdkError> {
        self.get_as(&format!("/v1/proposals/{}", proposal.0.to_hex()))
            .await
    }

    /// Submits a signed transaction and waits for its commit (at most 30 s on the node).
    /// `after_height`: the node checks it only once it has reached that
    /// height (pass the height of a receipt got from another node).
    pub async fn submit_and_wait(
        &self,
        tx: &SignedTransaction,
        after_height: Option<u64>,
    ) -> Result<TxReceipt, SdkError> {
        let response = self
            .http
            .post(format!("{}/v1/tx", self.base))
            .json(&api::SubmitBody {
                transaction: hex::encode(tx.to_bytes()),
                wait: true,
                after_height,
            })
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        // A 202 (accepted, not committed in time) is an `SdkError::Api`.
        match Self::answer(response).await? {
            api::SubmitAnswer::Committed(receipt) => Ok(TxReceipt::from_api(receipt)),
            api::SubmitAnswer::Accepted(_) => Err(SdkError::Decode(
                "the node answered without the receipt it was asked to wait for".into(),
            )),
        }
    }

    /// Submits without waiting; the transaction's id.
    pub async fn submit(&self, tx: &SignedTransaction) -> Result<TxHash, SdkError> {
        let response = self
            .http
            .post(format!("{}/v1/tx", self.base))
            .json(&api::SubmitBody {
                transaction: hex::encode(tx.to_bytes()),
                wait: false,
                after_height: None,
            })
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        match Self::answer(response).await? {
            api::SubmitAnswer::Accepted(accepted) => Ok(TxHash(accepted.tx.0)),
            api::SubmitAnswer::Committed(receipt) => Ok(TxHash(receipt.tx.0)),
        }
    }

    /// Submits up to 1,000 transactions in one request, without waiting:
    /// for each, in order, its id or the node's refusal (an
    /// [`SdkError::Api`] with the code `submit` would get). The outer error
    /// is for the request as a whole (the node unreachable, too many).
    pub async fn submit_many(
        &self,
        txs: &[SignedTransaction],
    ) -> Result<Vec<Result<TxHash, SdkError>>, SdkError> {
        let transactions: Vec<String> = txs.iter().map(|tx| hex::encode(tx.to_bytes())).collect();
        let response = self
            .http
            .post(format!("{}/v1/txs", self.base))
            .json(&api::SubmitManyBody { transactions })
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        let answer: api::SubmitManyAnswer = Self::answer(response).await?;
        if answer.results.len() != txs.len() {
            return Err(SdkError::Decode(format!(
                "expected one result per transaction ({}), got {}",
                txs.len(),
                answer.results.len()
            )));
        }
        Ok(answer
            .results
            .into_iter()
            .map(|result| match result {
                api::SubmitResult::Accepted { tx } => Ok(TxHash(tx.0)),
                api::SubmitResult::Refused { code, message } => Err(SdkError::Api {
                    status: 200,
                    code,
                    message,
                }),
            })
            .collect())
    }

    /// A committed transaction's receipt, if committed.
    pub async fn receipt(&self, tx: &TxHash) -> Result<Option<TxReceipt>, SdkError> {
        match self
            .get_as(&format!("/v1/receipts/{}", tx.0.to_hex()))
            .await
        {
            Ok(receipt) => Ok(Some(TxReceipt::from_api(receipt))),
            // Only the node's own answers mean "not committed": a proxy's 404
            // page (a wrong base URL) stays an error.
            Err(SdkError::Api {
                status: 404, code, ..
            }) if code == "pending" || code == "unknown_transaction" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A grant with its proof at `height` (latest if `None`), unchecked.
    pub async fn proved_grant(
        &self,
        grant: &TxHash,
        height: Option<u64>,
        who: &Identity,
    ) -> Result<ProvedValue, SdkError> {
        let path = match height {
            Some(h) => format!("/v1/grants/{}?height={h}", grant.0.to_hex()),
            None => format!("/v1/grants/{}", grant.0.to_hex()),
        };
        let answer: api::ProvedGrant = self.get_signed_as(&path, who).await?;
        decode_proved(&answer.proved)
    }

    /// The validator-set record after `height`, proved (`None` for height 0:
    /// that one is in the genesis file).
    pub async fn proved_validators_after(
        &self,
        height: u64,
    ) -> Result<Option<ProvedValue>, SdkError> {
        let answer: api::Validators = self
            .get_as(&format!("/v1/validators/{}", height + 1))
            .await?;
        answer
            .proved_record
            .as_deref()
            .map(decode_proved)
            .transpose()
    }

    /// Every page of a paged list route, signed by `who`.
    pub async fn list_all<T: DeserializeOwned>(
        &self,
        path: &str,
        who: &Identity,
    ) -> Result<Vec<T>, SdkError> {
        let mut items = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let page_path = match after {
                Some(a) => format!("{path}?after={a}&limit=500"),
                None => format!("{path}?limit=500"),
            };
            let page: api::Page<T> = self.get_signed_as(&page_path, who).await?;
            let empty = page.items.is_empty();
            items.extend(page.items);
            match page.next_after {
                // A node that sends empty pages or does not move forward
                // would keep this loop (and `items`) going for ever.
                Some(next) if !empty && after.is_none_or(|a| next > a) => after = Some(next),
                Some(next) => {
                    return Err(SdkError::Decode(format!(
                        "the node's paging does not move forward (next after {next}, was {:?}, page empty: {empty})",
                        after
                    )));
                }
                None => return Ok(items),
            }
        }
    }

    /// A patient's grants the caller may see (unverified listing; verify each with the light client).
    pub async fn patient_grants(
        &self,
        patient: &PatientId,
        who: &Identity,
    ) -> Result<Vec<api::Grant>, SdkError> {
        self.list_all(&format!("/v1/patients/{}/grants", patient.0.to_hex()), who)
            .await
    }

    /// A patient's consent requests the caller may see.
    pub async fn patient_consent_requests(
        &self,
        patient: &PatientId,
        who: &Identity,
    ) -> Result<Vec<api::ConsentRequest>, SdkError> {
        self.list_all(
            &format!("/v1/patients/{}/consent-requests", patient.0.to_hex()),
            who,
        )
        .await
    }

    /// A patient's delegations.
    pub async fn patient_delegations(
        &self,
        patient: &PatientId,
        who: &Identity,
    ) -> Result<Vec<api::Delegation>, SdkError> {
        self.list_all(
            &format!("/v1/patients/{}/delegations", patient.0.to_hex()),
            who,
        )
        .await
    }

    /// A patient's access history (audit entries) the caller may see.
    pub async fn patient_history(
        &self,
        patient: &PatientId,
        who: &Identity,
    ) -> Result<Vec<api::AuditEntry>, SdkError> {
        self.list_all(&format!("/v1/patients/{}/history", patient.0.to_hex()), who)
            .await
    }
}

pub(crate) fn decode_proved(text: &str) -> Result<ProvedValue, SdkError> {
    let bytes = hex::decode(text).map_err(|e| SdkError::Decode(format!("proof hex: {e}")))?;
    from_bytes(&bytes, PROVED_VALUE_BYTES_MAX).map_err(|e| SdkError::Decode(format!("proof: {e}")))
}
