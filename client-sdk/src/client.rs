//! `Client`: the node's HTTP API, typed. Every read of private data is
//! signed with the caller's key ([`Identity`]); nothing returned here is
//! trusted by the light client until it checks the proofs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use medledger_contracts::Hash32;
use medledger_contracts::crypto::SecretKey;
use medledger_contracts::encoding::{from_bytes, to_bytes};
use medledger_contracts::light::{PROVED_VALUE_BYTES_MAX, ProvedValue};
use medledger_contracts::request_auth::RequestAuth;
use medledger_contracts::transaction::{SignedTransaction, Signer};
use medledger_contracts::types::{ChainId, InstitutionId, PatientId, Timestamp, TxHash};
use serde_json::{Value, json};

use crate::error::SdkError;
use crate::keys::KeyFile;

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

/// What happened to a committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOutcome {
    /// Applied.
    Applied,
    /// An access request authorised.
    Authorized,
    /// An access request denied (recorded, with the reason).
    Denied(String),
    /// Rejected by the ledger's rules (recorded, changes nothing).
    Rejected(String),
}

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
    fn from_json(v: &Value) -> Result<Self, SdkError> {
        let text = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let tx = Hash32::from_hex(&text("/tx"))
            .map(TxHash)
            .map_err(|e| SdkError::Decode(format!("receipt tx: {e}")))?;
        let outcome = match text("/outcome/status").as_str() {
            "applied" => TxOutcome::Applied,
            "authorized" => TxOutcome::Authorized,
            "denied" => TxOutcome::Denied(text("/outcome/reason")),
            "rejected" => TxOutcome::Rejected(text("/outcome/reason")),
            other => return Err(SdkError::Decode(format!("unknown outcome {other:?}"))),
        };
        Ok(Self {
            tx,
            height: v["height"]
                .as_u64()
                .ok_or_else(|| SdkError::Decode("receipt without height".into()))?,
            outcome,
            audit_indexes: v["audit_indexes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default(),
        })
    }
}

/// The node's status.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// Chain id.
    pub chain_id: String,
    /// Last committed height.
    pub height: u64,
    /// The node's institution.
    pub institution: String,
    /// The raw answer.
    pub raw: Value,
}

/// A node's HTTP API.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    chain: ChainId,
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
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    )
}

impl Client {
    /// A client of the node at `base_url` (e.g. `http://127.0.0.1:8645`) on `chain`.
    pub fn new(base_url: &str, chain: ChainId) -> Result<Self, SdkError> {
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
    pub fn chain(&self) -> &ChainId {
        &self.chain
    }

    /// The node's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn answer(response: reqwest::Response) -> Result<Value, SdkError> {
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| SdkError::Decode(format!("the node's answer is not JSON: {e}")))?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(SdkError::Api {
                status: status.as_u16(),
                code: body["code"].as_str().unwrap_or("unknown").to_string(),
                message: body["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }

    /// A public GET.
    pub async fn get(&self, path_and_query: &str) -> Result<Value, SdkError> {
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

    /// A GET signed by `who`.
    pub async fn get_signed(
        &self,
        path_and_query: &str,
        who: &Identity,
    ) -> Result<Value, SdkError> {
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
        match Self::answer(response).await {
            Err(e) => Err(e),
            Ok(body) => Err(SdkError::Decode(format!("unexpected answer: {body}"))),
        }
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus, SdkError> {
        let raw = self.get("/v1/status").await?;
        Ok(NodeStatus {
            chain_id: raw["chain_id"].as_str().unwrap_or("").to_string(),
            height: raw["height"].as_u64().unwrap_or(0),
            institution: raw["institution"].as_str().unwrap_or("").to_string(),
            raw,
        })
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
            .json(&json!({
                "transaction": hex::encode(tx.to_bytes()),
                "wait": true,
                "after_height": after_height,
            }))
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        let status = response.status();
        let body = Self::answer(response).await?;
        if status.as_u16() == 202 {
            return Err(SdkError::Api {
                status: 202,
                code: "not_yet_committed".into(),
                message: body.to_string(),
            });
        }
        TxReceipt::from_json(&body)
    }

    /// Submits without waiting; the transaction's id.
    pub async fn submit(&self, tx: &SignedTransaction) -> Result<TxHash, SdkError> {
        let response = self
            .http
            .post(format!("{}/v1/tx", self.base))
            .json(&json!({"transaction": hex::encode(tx.to_bytes())}))
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        let body = Self::answer(response).await?;
        Hash32::from_hex(body["tx"].as_str().unwrap_or(""))
            .map(TxHash)
            .map_err(|e| SdkError::Decode(e.to_string()))
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
            .json(&json!({ "transactions": transactions }))
            .send()
            .await
            .map_err(|e| SdkError::Http(e.to_string()))?;
        let body = Self::answer(response).await?;
        let results = body["results"]
            .as_array()
            .filter(|r| r.len() == txs.len())
            .ok_or_else(|| SdkError::Decode("expected one result per transaction".into()))?;
        Ok(results
            .iter()
            .map(|result| match result["status"].as_str() {
                Some("accepted") => Hash32::from_hex(result["tx"].as_str().unwrap_or(""))
                    .map(TxHash)
                    .map_err(|e| SdkError::Decode(e.to_string())),
                _ => Err(SdkError::Api {
                    status: 200,
                    code: result["code"].as_str().unwrap_or("refused").into(),
                    message: result["message"].as_str().unwrap_or("").into(),
                }),
            })
            .collect())
    }

    /// A committed transaction's receipt, if committed.
    pub async fn receipt(&self, tx: &TxHash) -> Result<Option<TxReceipt>, SdkError> {
        match self.get(&format!("/v1/receipts/{}", tx.0.to_hex())).await {
            Ok(v) => TxReceipt::from_json(&v).map(Some),
            Err(SdkError::Api { status: 404, .. }) => Ok(None),
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
        let body = self.get_signed(&path, who).await?;
        decode_proved(&body["proved"])
    }

    /// The validator-set record after `height`, proved (`None` for height 0:
    /// that one is in the genesis file).
    pub async fn proved_validators_after(
        &self,
        height: u64,
    ) -> Result<Option<ProvedValue>, SdkError> {
        let body = self.get(&format!("/v1/validators/{}", height + 1)).await?;
        match &body["proved_record"] {
            Value::Null => Ok(None),
            v => decode_proved(v).map(Some),
        }
    }

    /// Every page of a paged list route, signed by `who`.
    pub async fn list_all(&self, path: &str, who: &Identity) -> Result<Vec<Value>, SdkError> {
        let mut items = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let page_path = match after {
                Some(a) => format!("{path}?after={a}&limit=500"),
                None => format!("{path}?limit=500"),
            };
            let page = self.get_signed(&page_path, who).await?;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_after"].as_u64() {
                Some(next) => after = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// A patient's grants the caller may see (unverified listing; verify each with the light client).
    pub async fn patient_grants(
        &self,
        patient: &PatientId,
        who: &Identity,
    ) -> Result<Vec<Value>, SdkError> {
        self.list_all(&format!("/v1/patients/{}/grants", patient.0.to_hex()), who)
            .await
    }

    /// A patient's consent requests the caller may see.
    pub async fn patient_consent_requests(
        &self,
        patient: &PatientId,
        who: &Identity,
    ) -> Result<Vec<Value>, SdkError> {
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
    ) -> Result<Vec<Value>, SdkError> {
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
    ) -> Result<Vec<Value>, SdkError> {
        self.list_all(&format!("/v1/patients/{}/history", patient.0.to_hex()), who)
            .await
    }
}

fn decode_proved(v: &Value) -> Result<ProvedValue, SdkError> {
    let text = v
        .as_str()
        .ok_or_else(|| SdkError::Decode("the answer carries no proof".into()))?;
    let bytes = hex::decode(text).map_err(|e| SdkError::Decode(format!("proof hex: {e}")))?;
    from_bytes(&bytes, PROVED_VALUE_BYTES_MAX).map_err(|e| SdkError::Decode(format!("proof: {e}")))
}
