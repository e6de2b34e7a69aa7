//! The HTTP API and the SDK against a live four-node testnet: the light
//! client verifies grants and names the check a tampered answer fails;
//! reads are signed, replays and strangers refused; bad input gets a clear
//! 4xx and changes nothing; FHIR views, events and metrics are served.

mod common;

use std::time::Duration;

use common::*;
use medledger_client_sdk::{
    AccessAnswer, Client, Identity, KeyFile, SdkError, TermsBuilder, TxBuilder, TxOutcome,
};
use medledger_contracts::crypto::Signature;
use medledger_contracts::encoding::{BoundedVec, from_bytes, to_bytes};
use medledger_contracts::light::{LightError, PROVED_VALUE_BYTES_MAX, ProvedValue};
use medledger_contracts::records::GrantStatus;
use medledger_contracts::request_auth::RequestAuth;
use medledger_contracts::state::StateKey;
use medledger_contracts::transaction::{Payload, Signer};
use medledger_contracts::types::{
    Category, Chain, DelegateRole, Grantee, InstitutionId, PatientId, Purpose, SensitiveClass,
    Timestamp, TxHash,
};
use serde_json::{Value, json};

fn chain_id() -> Chain {
    common::chain()
}

fn institution(id: &str) -> InstitutionId {
    InstitutionId::new(id).unwrap()
}

/// A registered patient with a grant to the second hospital (labs and
/// imaging, held at the first hospital).
struct Story {
    patient_key: KeyFile,
    patient: PatientId,
    grant: TxHash,
    height: u64,
}

async fn patient_grants_to_second_hospital(net: &Testnet) -> Story {
    let client = Client::new(&net.nodes()[0].http, chain_id()).unwrap();
    let patient_key = KeyFile::generate().unwrap();
    let patient = patient_key.patient_id();
    let as_patient = TxBuilder::new(chain_id(), Identity::patient(&patient_key));
    let receipt = client
        .submit_and_wait(&as_patient.register_patient(), None)
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Applied);
    let terms = TermsBuilder::new(
        patient,
        Grantee::Institution(institution("city-second-hospital")),
    )
    .category(Category::Imaging)
    .category(Category::LabReports)
    // Records dated from 14 Nov 2023, genetic data included (R5.10).
    .records_from(Timestamp(1_699_920_000_000))
    .include_sensitive(SensitiveClass::Genetic)
    .holders([institution("city-first-hospital")])
    .purpose(Purpose::Referral)
    .days(30)
    .notice(chain_id().hash(), "referral notice")
    .build()
    .unwrap();
    let receipt = client
        .submit_and_wait(&as_patient.grant(terms), Some(receipt.height))
        .await
        .unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Applied, "{receipt:?}");
    Story {
        patient_key,
        patient,
        grant: receipt.tx,
        height: receipt.height,
    }
}

fn verify_error(result: Result<impl std::fmt::Debug, SdkError>) -> LightError {
    match result {
        Err(SdkError::Verify(e)) => e,
        other => panic!("expected a verification error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_light_client_verifies_grants_and_names_each_tampered_check() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let story = patient_grants_to_second_hospital(&net).await;
    net.reach(3, story.height, 30, "node 3 behind").await;

    // A doctor of the grantee hospital verifies the grant through node 3,
    // trusting only genesis.
    let doctor = Identity::practitioner(&testnet_key(&net, "practitioner:dr-second-1"));
    let light = light_client(&net, 3, Duration::from_secs(30));
    let verified = light.verify_grant(&story.grant, &doctor).await.unwrap();
    assert_eq!(verified.status, GrantStatus::Active);
    assert!(verified.height >= story.height);
    assert_eq!(verified.record.terms.patient, story.patient);

    let second = Grantee::Institution(institution("city-second-hospital"));
    let first = institution("city-first-hospital");
    match light
        .check_access(
            &story.patient,
            &second,
            Category::LabReports,
            &first,
            &doctor,
        )
        .await
        .unwrap()
    {
        AccessAnswer::Allowed(grant) => assert_eq!(grant.id, story.grant),
        other => panic!("expected allowed, got {other:?}"),
    }
    assert!(matches!(
        light
            .check_access(
                &story.patient,
                &second,
                Category::Prescriptions,
                &first,
                &doctor
            )
            .await
            .unwrap(),
        AccessAnswer::NotFound { .. }
    ));

    // Tampering: each altered part fails at its own check.
    let client = light.client().clone();
    let good = client
        .proved_grant(&story.grant, None, &doctor)
        .await
        .unwrap();
    let check = |p: ProvedValue| {
        let light = &light;
        let grant = story.grant;
        async move { light.verify_grant_proof(&grant, &p).await }
    };
    let mut value = good.clone();
    if let Some(v) = value.value.as_mut() {
        let last = v.len() - 1;
        v[last] ^= 1;
    }
    assert!(matches!(
        verify_error(check(value).await),
        LightError::Proof(_)
    ));

    let mut bytes = to_bytes(&good);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let proof: ProvedValue = from_bytes(&bytes, PROVED_VALUE_BYTES_MAX).unwrap();
    assert!(matches!(
        verify_error(check(proof).await),
        LightError::Proof(_)
    ));

    let mut header = good.clone();
    header.header.time = Timestamp(header.header.time.0 + 1);
    // A fresh light client: the first one remembers the genuine header.
    let fresh = light_client(&net, 3, Duration::from_secs(30));
    let e = verify_error(fresh.verify_grant_proof(&story.grant, &header).await);
    assert!(matches!(e, LightError::Certificate(_)), "{e}");
    assert!(e.to_string().contains("certificate check failed"), "{e}");

    let mut set_hash = good.clone();
    set_hash.header.validator_set_hash = Default::default();
    let e = verify_error(fresh.verify_grant_proof(&story.grant, &set_hash).await);
    assert!(matches!(e, LightError::ValidatorSet(_)), "{e}");

    let mut weak = good.clone();
    weak.certificate.signatures.retain(|_| false);
    let e = verify_error(fresh.verify_grant_proof(&story.grant, &weak).await);
    assert!(e.to_string().contains("voting power"), "{e}");

    let mut bad_signature = good.clone();
    let mut cert_bytes = to_bytes(&bad_signature.certificate);
    let last = cert_bytes.len() - 1;
    cert_bytes[last] ^= 1;
    bad_signature.certificate = from_bytes(&cert_bytes, 64 * 1024).unwrap();
    let e = verify_error(fresh.verify_grant_proof(&story.grant, &bad_signature).await);
    assert!(e.to_string().contains("does not verify"), "{e}");

    let mut other_key = good.clone();
    other_key.key = StateKey::Grant(TxHash(Default::default()));
    let e = verify_error(fresh.verify_grant_proof(&story.grant, &other_key).await);
    assert!(matches!(e, LightError::Value(_)), "{e}");

    // The patient revokes. The latest answer says so; a node lying with the
    // grant as it was before is caught: the old value under the new header
    // fails the proof, and the old proof itself is refused as stale.
    let as_patient = TxBuilder::new(chain_id(), Identity::patient(&story.patient_key));
    let revoked = client
        .submit_and_wait(&as_patient.revoke(story.grant), None)
        .await
        .unwrap();
    assert_eq!(revoked.outcome, TxOutcome::Applied);
    net.reach(3, revoked.height, 30, "node 3 behind").await;
    let now = light.verify_grant(&story.grant, &doctor).await.unwrap();
    assert_eq!(now.status, GrantStatus::Revoked);
    let latest = client
        .proved_grant(&story.grant, None, &doctor)
        .await
        .unwrap();
    let mut lie = latest.clone();
    lie.value = good.value.clone();
    assert!(matches!(
        verify_error(light.verify_grant_proof(&story.grant, &lie).await),
        LightError::Proof(_)
    ));
    let strict = light_client(&net, 3, Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(matches!(
        verify_error(strict.verify_grant_proof(&story.grant, &good).await),
        LightError::Stale { .. }
    ));
    assert!(matches!(
        light
            .check_access(
                &story.patient,
                &second,
                Category::LabReports,
                &first,
                &doctor
            )
            .await
            .unwrap(),
        AccessAnswer::NotFound { .. }
    ));
}

/// Sends a GET with an explicit Authorization header.
async fn get_with(
    net: &Testnet,
    i: usize,
    path: &str,
    authorization: Option<&str>,
) -> (u16, Value) {
    let mut request = net.http.get(net.url(i, path));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    assert!(
        answer.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_signed_and_shown_only_to_those_named() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let story = patient_grants_to_second_hospital(&net).await;
    let client = Client::new(&net.nodes()[0].http, chain_id()).unwrap();
    let grant_path = format!("/v1/grants/{}", story.grant.0.to_hex());
    let patient = Identity::patient(&story.patient_key);

    // The patient, the named hospital's doctor and the regulator may read.
    for who in [
        patient.clone(),
        Identity::practitioner(&testnet_key(&net, "practitioner:dr-second-1")),
        Identity::institution(
            institution("health-commission"),
            &testnet_key(&net, "admin:health-commission"),
        ),
    ] {
        let body = client.get_signed(&grant_path, &who).await.unwrap();
        assert_eq!(body["grant"]["status"], "active", "{body}");
    }
    // Another patient, and a hospital the grant does not name, get 403 and
    // the same answer as for a grant that does not exist.
    let stranger = KeyFile::generate().unwrap();
    let as_stranger = TxBuilder::new(chain_id(), Identity::patient(&stranger));
    client
        .submit_and_wait(&as_stranger.register_patient(), None)
        .await
        .unwrap();
    let unnamed = Identity::practitioner(&testnet_key(&net, "practitioner:dr-community-1"));
    for who in [Identity::patient(&stranger), unnamed.clone()] {
        let e = client.get_signed(&grant_path, &who).await.unwrap_err();
        assert_eq!(e.code(), Some("forbidden"), "{e}");
        let missing = client
            .get_signed(&format!("/v1/grants/{}", "ab".repeat(32)), &who)
            .await
            .unwrap_err();
        assert_eq!(missing.to_string(), e.to_string());
    }
    let e = client
        .patient_history(&story.patient, &Identity::patient(&stranger))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));
    // An institution not named sees none of the patient's items.
    assert!(
        client
            .patient_history(&story.patient, &unnamed)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        client
            .patient_history(&story.patient, &patient)
            .await
            .unwrap()
            .len(),
        1
    );
    // Once the patient appoints the stranger as proxy, the stranger reads
    // everything of the patient's, until the delegation ends.
    let as_patient = TxBuilder::new(chain_id(), patient.clone());
    let until = Timestamp(medledger_client_sdk::client::now().0 + 86_400_000);
    let delegated = client
        .submit_and_wait(
            &as_patient.delegate(stranger.patient_id(), DelegateRole::Proxy, until),
            None,
        )
        .await
        .unwrap();
    assert_eq!(delegated.outcome, TxOutcome::Applied, "{delegated:?}");
    let seen = client
        .patient_history(&story.patient, &Identity::patient(&stranger))
        .await
        .unwrap();
    assert_eq!(seen.len(), 2, "grant and delegation: {seen:?}");
    client
        .submit_and_wait(&as_patient.end_delegation(delegated.tx), None)
        .await
        .unwrap();
    let e = client
        .patient_history(&story.patient, &Identity::patient(&stranger))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));

    // Recovery contacts: the patient reads them; a contact who is not a
    // delegate does not (who the patient trusts is the patient's business).
    let recovery_path = format!("/v1/patients/{}/recovery", story.patient.0.to_hex());
    let before = client.get_signed(&recovery_path, &patient).await.unwrap();
    assert_eq!(before["policy"], Value::Null, "{before}");
    let policy = Payload::SetRecoveryPolicy {
        delegates: BoundedVec::new(vec![stranger.patient_id()]).unwrap(),
        threshold: 1,
    };
    let set = client
        .submit_and_wait(&as_patient.sign(policy), None)
        .await
        .unwrap();
    assert_eq!(set.outcome, TxOutcome::Applied, "{set:?}");
    // New contacts wait out the genesis delay (R4.2; 5 s on a testnet),
    // shown as pending until then.
    let contacts = json!([stranger.patient_id().0.to_hex()]);
    let pending = client.get_signed(&recovery_path, &patient).await.unwrap();
    assert_eq!(pending["policy"], Value::Null, "{pending}");
    assert_eq!(pending["pending_policy"]["contacts"], contacts, "{pending}");
    let effective_at = pending["pending_policy"]["effective_at"].as_u64().unwrap();
    let wait = effective_at.saturating_sub(medledger_client_sdk::client::now().0);
    assert!(wait <= 5_000, "testnet delay is 5 s: {wait} ms left");
    tokio::time::sleep(std::time::Duration::from_millis(wait + 200)).await;
    let after = client.get_signed(&recovery_path, &patient).await.unwrap();
    assert_eq!(
        after["policy"],
        json!({"contacts": contacts, "threshold": 1}),
        "{after}"
    );
    assert_eq!(after["pending_policy"], Value::Null, "{after}");
    let e = client
        .get_signed(&recovery_path, &Identity::patient(&stranger))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));

    // Unsigned, replayed, stale, and badly signed requests.
    assert_error(
        &get_with(&net, 0, &grant_path, None).await,
        401,
        "unauthenticated",
    );
    let header = client
        .authorization(&patient, "GET", &grant_path, b"")
        .await
        .unwrap();
    assert_eq!(get_with(&net, 0, &grant_path, Some(&header)).await.0, 200);
    assert_error(
        &get_with(&net, 0, &grant_path, Some(&header)).await,
        401,
        "replayed_request",
    );
    // Issue 16, item 9: the same signed read, captured, replayed at another
    // member's node inside its window. Each node remembers only its own
    // nonces, so on 8925727 node 1 answered it (200); now a read names the
    // node it is for.
    assert_error(
        &get_with(&net, 1, &grant_path, Some(&header)).await,
        401,
        "wrong_node",
    );
    let stale = RequestAuth::sign(
        &chain_id(),
        &institution("city-first-hospital"),
        "GET",
        &grant_path,
        b"",
        Timestamp(medledger_client_sdk::client::now().0 - 120_000),
        7,
        patient.signer.clone(),
        patient.key(),
    );
    let stale = format!("Medledger {}", hex::encode(to_bytes(&stale)));
    assert_error(
        &get_with(&net, 0, &grant_path, Some(&stale)).await,
        401,
        "stale_request",
    );
    let other_path = client
        .authorization(&patient, "GET", "/v1/grants/other", b"")
        .await
        .unwrap();
    assert_error(
        &get_with(&net, 0, &grant_path, Some(&other_path)).await,
        401,
        "bad_signature",
    );
    assert_error(
        &get_with(&net, 0, &grant_path, Some("Medledger zz")).await,
        401,
        "bad_authorization",
    );
    assert_error(
        &get_with(&net, 0, &grant_path, Some("Bearer x")).await,
        401,
        "bad_authorization",
    );
    let impostor = Identity::new(Signer::Patient(story.patient), stranger.secret().clone());
    let e = client.get_signed(&grant_path, &impostor).await.unwrap_err();
    assert_eq!(e.code(), Some("unknown_signer"), "{e}");

    // Bad input: a clear 4xx, and nothing enters the mempool.
    for (body, code) in [
        ("{not json".to_string(), "bad_json"),
        (json!({"transaction": 5}).to_string(), "bad_json"),
        (
            json!({"transaction": "00", "extra": 1}).to_string(),
            "bad_json",
        ),
        (json!({"transaction": "zz"}).to_string(), "bad_hex"),
    ] {
        assert_error(&net.submit_raw(0, body).await, 400, code);
    }
    let (status, body) = net
        .submit_raw(0, json!({"transaction": "00".repeat(200_000)}).to_string())
        .await;
    assert_eq!(status, 413, "{body}");
    assert_error(
        &get_with(&net, 0, "/v1/headers/1?color=red", None).await,
        400,
        "unknown_query_parameter",
    );
    assert_error(
        &get_with(&net, 0, "/v1/headers/x", None).await,
        400,
        "bad_height",
    );
    assert_error(
        &get_with(&net, 0, "/v1/nowhere", None).await,
        404,
        "not_found",
    );
    let (status, body) = net.get(0, "/v1/status").await.unwrap();
    assert_eq!((status, &body["mempool_size"]), (200, &json!(0)), "{body}");

    // Many at once: each admitted or refused on its own, in order.
    let fresh = KeyFile::generate().unwrap();
    let register = TxBuilder::new(chain_id(), Identity::patient(&fresh)).register_patient();
    let results = client
        .submit_many(&[register.clone(), register.clone()])
        .await
        .unwrap();
    assert_eq!(results[0].as_ref().ok(), Some(&register.id(&chain_id())));
    assert_eq!(
        results[1].as_ref().err().and_then(|e| e.code()),
        Some("duplicate")
    );
    // Each judged as it would be alone: a grant ahead of its patient's
    // registration is refused as the next block would refuse it (blocks
    // order by lane, not arrival); a bad signature is refused on its own
    // and the rest kept; a second copy of the same bytes is a duplicate.
    let newcomer = KeyFile::generate().unwrap();
    let as_newcomer = TxBuilder::new(chain_id(), Identity::patient(&newcomer));
    let terms = TermsBuilder::new(
        newcomer.patient_id(),
        Grantee::Institution(institution("city-second-hospital")),
    )
    .category(Category::LabReports)
    .holders([institution("city-first-hospital")])
    .purpose(Purpose::Referral)
    .days(30)
    .notice(chain_id().hash(), "batch notice")
    .build()
    .unwrap();
    let early_grant = as_newcomer.grant(terms);
    let mut forged = as_newcomer.register_patient();
    let Signature::Ed25519 { s, .. } = &mut forged.signature else {
        unreachable!("an Ed25519 signature")
    };
    s[0] ^= 1;
    let register = as_newcomer.register_patient();
    let batch = [early_grant, forged, register.clone(), register.clone()];
    let results = client.submit_many(&batch).await.unwrap();
    let codes: Vec<Option<&str>> = results
        .iter()
        .map(|r| r.as_ref().err().and_then(|e| e.code()))
        .collect();
    assert_eq!(
        codes,
        [
            Some("would_be_rejected"),
            Some("bad_signature"),
            None,
            Some("duplicate")
        ],
        "{results:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let receipt = loop {
        if let Some(receipt) = client.receipt(&register.id(&chain_id())).await.unwrap() {
            break receipt;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch's registration did not commit within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(receipt.outcome, TxOutcome::Applied, "{receipt:?}");
    let post_many = |body: String| {
        net.http
            .post(net.url(0, "/v1/txs"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post_many(json!({"transactions": ["zz", "00"]}).to_string())
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let codes: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(codes, ["bad_hex", "malformed"], "{body}");
    for (body, code) in [
        (json!({"transactions": []}).to_string(), "bad_batch"),
        (
            json!({"transactions": vec!["00"; 1_001]}).to_string(),
            "bad_batch",
        ),
        (
            json!({"transactions": ["00"], "wait": true}).to_string(),
            "bad_json",
        ),
    ] {
        let response = post_many(body).await.unwrap();
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
    }
    // Gossip is for member nodes only.
    let response = net
        .http
        .post(net.url(0, "/v1/gossip"))
        .body(vec![0u8])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);

    // FHIR R4 views under the same rules.
    let consent = client
        .get_signed(
            &format!("/fhir/Consent/{}", story.grant.0.to_hex()),
            &patient,
        )
        .await
        .unwrap();
    assert_eq!(consent["resourceType"], "Consent");
    assert_eq!(consent["status"], "active");
    for field in ["scope", "category", "patient", "policyRule", "provision"] {
        assert!(
            !consent[field].is_null(),
            "Consent lacks {field}: {consent}"
        );
    }
    assert_eq!(consent["provision"]["type"], "permit");
    // The record scope: the dates as dataPeriod, the classes left out as a
    // nested deny provision with their labels (genetic data was included).
    assert_eq!(
        consent["provision"]["dataPeriod"],
        serde_json::json!({"start": "2023-11-14T00:00:00.000Z"}),
        "{consent}"
    );
    let except = &consent["provision"]["provision"][0];
    assert_eq!(except["type"], "deny", "{consent}");
    let labels: Vec<&str> = except["securityLabel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["HIV", "PSY", "PSYTHPN", "BH", "SEX", "STD"],
        "{consent}"
    );
    let e = client
        .get_signed(
            &format!("/fhir/Consent/{}", story.grant.0.to_hex()),
            &unnamed,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));
    let bundle = client
        .get_signed(
            &format!("/fhir/AuditEvent?patient={}", story.patient.0.to_hex()),
            &patient,
        )
        .await
        .unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    let event = &bundle["entry"][0]["resource"];
    assert_eq!(event["resourceType"], "AuditEvent", "{bundle}");
    for field in ["type", "recorded", "agent", "source"] {
        assert!(!event[field].is_null(), "AuditEvent lacks {field}: {event}");
    }
    assert!(event["agent"][0]["requestor"].is_boolean());
    assert!(!event["source"]["observer"].is_null());

    // The patient's event stream shows the doctor's request as it commits.
    let events_path = format!("/v1/events/patients/{}", story.patient.0.to_hex());
    // A signature in the URL (where proxies log it) is refused.
    let auth = Client::new(&net.nodes()[1].http, chain_id())
        .unwrap()
        .authorization(&patient, "GET", &events_path, b"")
        .await
        .unwrap();
    let in_url = net
        .http
        .get(net.url(
            1,
            &format!(
                "{events_path}?auth={}",
                auth.trim_start_matches("Medledger ")
            ),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        in_url.status().as_u16(),
        401,
        "a token in the URL was taken"
    );
    let mut stream = net
        .http
        .get(net.url(1, &events_path))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let doctor = Identity::practitioner(&testnet_key(&net, "practitioner:dr-second-1"));
    let request = TxBuilder::new(chain_id(), doctor)
        .access_request(
            story.grant,
            institution("city-first-hospital"),
            vec![Category::LabReports],
            Purpose::Referral,
        )
        .unwrap();
    let receipt = client.submit_and_wait(&request, None).await.unwrap();
    assert_eq!(receipt.outcome, TxOutcome::Authorized);
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("access_decided") {
                return text;
            }
        }
        text
    })
    .await
    .expect("no event within 20 s");
    assert!(seen.contains("event:audit"), "{seen}");
    assert!(seen.contains(&receipt.tx.0.to_hex()), "{seen}");

    // Issue 16, item 9: the patient replaces their key (as after losing a
    // phone): the stream the old key opened ends at that block, with an
    // `ended` event, instead of going on delivering history (it did on
    // fdb9626: a stream was checked only when it opened).
    let new_key = KeyFile::generate().unwrap();
    let proof = new_key
        .secret()
        .sign(&medledger_contracts::transaction::key_possession_message(
            &chain_id(),
            &patient.signer,
            "rotate",
            &new_key.public_key(),
        ));
    let rotate = TxBuilder::new(chain_id(), patient.clone()).sign(Payload::RotateKey {
        role: medledger_contracts::transaction::KeyRole::Own,
        new_key: new_key.public_key(),
        new_key_proof: proof,
    });
    let rotated = client.submit_and_wait(&rotate, None).await.unwrap();
    assert_eq!(rotated.outcome, TxOutcome::Applied, "{rotated:?}");
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .expect("the stream did not end within 20 s of the key's replacement");
    assert!(ended.contains("event:ended"), "{ended}");
    let patient = Identity::patient_with_id(story.patient, &new_key);

    // Metrics and the OpenAPI document.
    let metrics = net.metrics(0).await;
    for name in [
        "medledger_height",
        "medledger_round",
        "medledger_mempool_transactions",
        "medledger_peers",
        "medledger_commit_latency_seconds",
        "medledger_api_requests_total{route=\"/v1/grants/{grant}\",status=\"403\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    // Transactions submitted to node 0 reached node 1 by signed gossip.
    let metrics = net.metrics(1).await;
    assert!(
        metrics.contains("medledger_api_requests_total{route=\"/v1/gossip\",status=\"200\"}"),
        "no accepted gossip on node 1:\n{metrics}"
    );
    let (status, doc) = net.get(0, "/v1/openapi.json").await.unwrap();
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/grants/{grant}"]["get"].is_object());

    // What the nodes answer is what the OpenAPI document describes, field by
    // field (no field missing, none undeclared), for the routes it details.
    let schema_of = |path: &str| {
        let content = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        let json = &content["application/json"]["schema"];
        if json.is_null() {
            content["application/fhir+json"]["schema"].clone()
        } else {
            json.clone()
        }
    };
    let patient_hex = story.patient.0.to_hex();
    let mut answers = vec![
        (
            "/v1/patients/{patient}/history",
            client
                .get_signed(&format!("/v1/patients/{patient_hex}/history"), &patient)
                .await
                .unwrap(),
        ),
        (
            "/v1/patients/{patient}/grants",
            client
                .get_signed(&format!("/v1/patients/{patient_hex}/grants"), &patient)
                .await
                .unwrap(),
        ),
        ("/v1/status", net.get(0, "/v1/status").await.unwrap().1),
        (
            "/v1/receipts/{tx}",
            net.get(0, &format!("/v1/receipts/{}", story.grant.0.to_hex()))
                .await
                .unwrap()
                .1,
        ),
    ];
    let public = [
        ("/v1/headers/{height}", "/v1/headers/1".to_string()),
        ("/v1/blocks/{height}", "/v1/blocks/1".to_string()),
        (
            "/v1/certificates/{height}",
            "/v1/certificates/1".to_string(),
        ),
        ("/v1/validators/{height}", "/v1/validators/2".to_string()),
        ("/v1/institutions", "/v1/institutions".to_string()),
    ];
    for (template, path) in public {
        answers.push((template, net.get(0, &path).await.unwrap().1));
    }
    let grant_hex = story.grant.0.to_hex();
    let signed = [
        ("/v1/grants/{grant}", format!("/v1/grants/{grant_hex}")),
        (
            "/v1/transactions/{tx}",
            format!("/v1/transactions/{grant_hex}"),
        ),
        (
            "/fhir/Consent/{grant}",
            format!("/fhir/Consent/{grant_hex}"),
        ),
        (
            "/fhir/AuditEvent",
            format!("/fhir/AuditEvent?patient={patient_hex}"),
        ),
    ];
    for (template, path) in signed {
        answers.push((template, client.get_signed(&path, &patient).await.unwrap()));
    }
    for (path, answer) in &answers {
        if let Err(why) = conforms(&doc, answer, &schema_of(path), "") {
            panic!("{path}: {why}\n{answer}");
        }
    }
    let history = &answers[0].1["items"];
    assert!(
        history.as_array().is_some_and(|h| h.len() >= 3),
        "{history}"
    );
    // Every status any node answered on any route during this test is one
    // the document declares for that path (the metrics count them by route).
    let mut checked = 0;
    for i in 0..net.nodes().len() {
        let metrics = net.metrics(i).await;
        for line in metrics.lines() {
            let Some(labels) = line
                .strip_prefix("medledger_api_requests_total{")
                .and_then(|rest| rest.rsplit_once('}'))
                .map(|(labels, _)| labels)
            else {
                continue;
            };
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            let (route, status) = (label("route"), label("status"));
            if route == "unmatched" {
                continue;
            }
            let declared = doc["paths"][&route]
                .as_object()
                .is_some_and(|ops| ops.values().any(|op| op["responses"][&status].is_object()));
            assert!(
                declared,
                "node {i} answered {status} on {route}, which docs/openapi.json does not declare"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} route and status pairs in the metrics"
    );
    // The check itself refuses an undeclared field and a missing one.
    let mut extra = answers[2].1.clone();
    extra["surprise"] = json!(1);
    assert!(conforms(&doc, &extra, &schema_of("/v1/status"), "").is_err());
    let mut missing = answers[3].1.clone();
    missing.as_object_mut().unwrap().remove("height");
    assert!(conforms(&doc, &missing, &schema_of("/v1/receipts/{tx}"), "").is_err());
}

/// Whether `value` is what the JSON Schema `schema` of the OpenAPI `doc`
/// describes, for the keywords the document uses ($ref, type, properties,
/// required, additionalProperties: false, items, enum, const, oneOf, anyOf,
/// the hex pattern); why not, with where.
fn conforms(doc: &Value, value: &Value, schema: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return conforms(doc, value, &doc["components"]["schemas"][name], at);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let matching = options
            .iter()
            .filter(|o| conforms(doc, value, o, at).is_ok())
            .count();
        return if matching == 1 {
            Ok(())
        } else {
            Err(format!(
                "{at}: {matching} of oneOf's {} match {value}",
                options.len()
            ))
        };
    }
    if let Some(options) = schema["anyOf"].as_array() {
        return if options.iter().any(|o| conforms(doc, value, o, at).is_ok()) {
            Ok(())
        } else {
            Err(format!(
                "{at}: none of anyOf's {} match {value}",
                options.len()
            ))
        };
    }
    if let Some(wanted) = schema.get("const")
        && wanted != value
    {
        return Err(format!("{at}: {value} is not {wanted}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    // `type` is a name or, for nullable values, a list of names.
    let wanted: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !wanted.is_empty() && !wanted.contains(&kind) {
        return Err(format!("{at}: a {kind}, not a {wanted:?}"));
    }
    if schema["pattern"] == "^[0-9a-f]{64}$"
        && !value.as_str().is_some_and(|s| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
    {
        return Err(format!("{at}: {value} is not 64 lowercase hex characters"));
    }
    if let Value::Object(fields) = value {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                return Err(format!("{at}: `{name}` is missing"));
            }
        }
        for (name, field) in fields {
            let declared = &schema["properties"][name];
            if declared.is_null() {
                if schema["additionalProperties"] == false {
                    return Err(format!("{at}: `{name}` is not in the document"));
                }
                continue;
            }
            conforms(doc, field, declared, &format!("{at}.{name}"))?;
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            conforms(doc, v, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Runs the `medledger` CLI; its stdout, or a panic with both streams.
fn cli(args: &[&str]) -> String {
    let output = std::process::Command::new(BIN).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "medledger {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_grants_checks_with_proofs_and_revokes() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks").await;
    let node = net.nodes()[1].http.clone();
    let genesis = net.dir().join("genesis.json");
    let genesis = genesis.to_str().unwrap();
    let patient_key = net.dir().join("patient.json");
    let patient_key = patient_key.to_str().unwrap();
    let doctor_key = net.dir().join("keys/practitioner.dr-second-1.json");
    let doctor_key = doctor_key.to_str().unwrap();
    let made = cli(&["keys", "new", "--role", "patient", "--out", patient_key]);
    assert!(made.contains("patient id"), "{made}");
    let patient = KeyFile::load(std::path::Path::new(patient_key))
        .unwrap()
        .patient_id();
    let patient = patient.0.to_hex();
    let as_patient = |rest: &[&str]| {
        let mut args = vec![
            "patient",
            "--node",
            &node,
            "--genesis",
            genesis,
            "--key",
            patient_key,
        ];
        args.extend_from_slice(rest);
        cli(&args)
    };
    assert!(as_patient(&["register"]).contains("applied"));
    let granted = as_patient(&[
        "--json",
        "grant",
        "--to-institution",
        "city-second-hospital",
        "--category",
        "lab-reports",
        "--holder",
        "city-first-hospital",
        "--notice",
        "referral",
    ]);
    let grant: Value = serde_json::from_str(granted.trim()).unwrap();
    let grant = grant["tx"].as_str().unwrap().to_string();
    let as_doctor = |rest: &[&str]| {
        let mut args = vec![
            "hospital",
            "--node",
            &node,
            "--genesis",
            genesis,
            "--key",
            doctor_key,
        ];
        args.extend_from_slice(rest);
        cli(&args)
    };
    let check = || {
        as_doctor(&[
            "check",
            "--patient",
            &patient,
            "--category",
            "lab-reports",
            "--holder",
            "city-first-hospital",
        ])
    };
    let allowed = check();
    assert!(allowed.contains("ALLOWED under grant"), "{allowed}");
    assert!(allowed.contains(&grant), "{allowed}");
    let asked = as_doctor(&[
        "request-access",
        "--grant",
        &grant,
        "--holder",
        "city-first-hospital",
        "--category",
        "lab-reports",
    ]);
    assert!(asked.contains("authorized"), "{asked}");
    let listed = as_patient(&["grants"]);
    assert!(listed.contains("active"), "{listed}");
    assert!(as_patient(&["revoke", &grant]).contains("applied"));
    let refused = check();
    assert!(refused.contains("NOT ALLOWED"), "{refused}");
    let history = as_patient(&["history"]);
    assert!(
        history.contains("granted (grant ") && history.contains("revoked grant "),
        "{history}"
    );
    assert!(
        history.contains("access request by practitioner")
            && history.contains("for records at city-first-hospital: authorised"),
        "{history}"
    );
    // A bad category is refused before anything is sent.
    let output = std::process::Command::new(BIN)
        .args([
            "patient",
            "--node",
            &node,
            "--genesis",
            genesis,
            "--key",
            patient_key,
        ])
        .args([
            "grant",
            "--to-institution",
            "city-second-hospital",
            "--category",
            "xrays",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown category"));
}
