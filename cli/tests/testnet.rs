//! A real consortium: `medledger node` processes on 127.0.0.1 ports chosen
//! free, driven over HTTP (harness in `common/`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use medledger_client_sdk::KeyFile;
use medledger_contracts::transaction::{Payload, Signer, Transaction};
use medledger_contracts::types::{Chain, ChainId};
use serde_json::{Value, json};

/// [R1] A committed transaction's id leaves the state of every node once
/// the first block past its `valid_until` commits (an exclusion proof
/// against each node's newest root says so), the auditor's replay
/// reproduces every root on the way, and the same bytes sent again are
/// refused as expired: within the window they were a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_ids_leave_every_nodes_state_after_their_window() {
    use medledger_contracts::state::{StateKey, verify_state_proof};
    use medledger_contracts::types::Timestamp;
    const WINDOW_MS: u64 = 6_000;
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::with_window(4, 0, 0, WINDOW_MS);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let key = KeyFile::generate().unwrap();
    let valid_until = Timestamp(medledger_node::clock::now().0 + WINDOW_MS / 2);
    let tx = Transaction {
        signer: Signer::Patient(key.patient_id()),
        nonce: 1,
        valid_until,
        payload: Payload::RegisterPatient,
    }
    .sign(&chain(), key.secret());
    let id = tx.id(&chain());
    let (status, receipt) = net.submit(0, &tx, true).await;
    assert_eq!(
        (status, receipt["outcome"]["status"].as_str()),
        (200, Some("applied")),
        "{receipt}"
    );
    // (To the node that answered: another may not have its block yet.)
    let (status, body) = net.submit(0, &tx, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_committed")),
        "{body}"
    );
    // Idle blocks keep coming: wait for one past valid_until at every node.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..4 {
        loop {
            let (_, status) = net.get(i, "/v1/status").await.unwrap();
            if status["latest_block_time_ms"]
                .as_u64()
                .is_some_and(|t| t > valid_until.0)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no block past valid_until at node {i}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (status, body) = net.submit(2, &tx, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("expired")),
        "{body}"
    );
    // The receipt stays answerable: blocks keep their history.
    let (status, _) = net
        .get(3, &format!("/v1/receipts/{}", id.0.to_hex()))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_replay_over_api_passes(&net, 3);
    for i in 0..4 {
        net.kill(i);
    }
    for node in net.nodes() {
        let store = medledger_store::Store::open(
            &node.home.join("data").join("ledger"),
            common::chain().hash(),
        )
        .unwrap();
        let height = store.height().unwrap().unwrap();
        let root = store.header(height).unwrap().unwrap().state_root;
        let marker = StateKey::CommittedTransaction(id);
        let (value, proof) = store.get_with_proof(&marker, height).unwrap();
        assert_eq!(
            value, None,
            "{}: the id is still in state",
            node.institution
        );
        verify_state_proof(common::chain().hash(), root, &marker, None, &proof).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_the_same_blocks() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 2, 60, "no blocks within 60 s").await;
    // Transactions submitted to different nodes all commit.
    let mut last_height = 0;
    for n in 0..8u64 {
        let tx = register_patient(n);
        let (status, receipt) = net.submit(usize::try_from(n % 4).unwrap(), &tx, true).await;
        assert_eq!(status, 200, "{receipt}\n{}", net.logs());
        assert_eq!(receipt["outcome"]["status"], "applied", "{receipt}");
        last_height = last_height.max(receipt["height"].as_u64().unwrap());
    }
    for i in 0..4 {
        net.reach(i, last_height, 30, "no progress").await;
    }
    assert_agree(&net, &[0, 1, 2, 3], last_height).await;
    let header = net.header(0, last_height).await;
    assert_eq!(header["audit_size"], 0, "registrations are not audited");
    // Status names the chain and, once sampled, the three peers.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, status) = net.get(2, "/v1/status").await.unwrap();
        assert_eq!(status["chain_id"], CHAIN);
        if status["peers"].as_u64() == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "peers not reported: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_validator_catches_up_and_two_down_halts() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 3, 60, "no blocks").await;
    // One of four down: the rest keep committing.
    net.kill(3);
    let before = min_height(&net, &[0, 1, 2]).await;
    for n in 0..4u64 {
        let (status, body) = net.submit(0, &register_patient(100 + n), true).await;
        assert_eq!(status, 200, "{body}\n{}", net.logs());
    }
    net.reach(1, before + 5, 60, "three validators stopped committing")
        .await;
    // Back up: it replays its WAL, syncs what it missed and matches.
    net.start(3);
    let target = min_height(&net, &[0, 1, 2]).await;
    net.reach(
        3,
        target,
        90,
        &format!("restarted node did not catch up to {target}"),
    )
    .await;
    assert_agree(&net, &[0, 1, 2, 3], target).await;

    // Two of four down: nothing can commit.
    net.kill(2);
    net.kill(3);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = min_height(&net, &[0, 1]).await;
    let tx = register_patient(999);
    let (status, _) = net.submit(0, &tx, false).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = net
        .height(0)
        .await
        .unwrap()
        .max(net.height(1).await.unwrap());
    assert!(
        after <= stalled + 1,
        "blocks committed with half the validators down ({stalled} → {after})"
    );
    // One returns: commits resume, the waiting transaction commits, and
    // nothing committed before changed.
    net.start(2);
    net.reach(0, after + 3, 90, "commits did not resume").await;
    let id = tx.id(&chain()).0.to_hex();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = net.get(0, &format!("/v1/receipts/{id}")).await.unwrap();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waiting transaction never committed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_agree(&net, &[0, 1, 2], after).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactions_are_refused_with_reasons() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no progress").await;

    let (status, body) = net.submit_raw(0, "not json".into()).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_json")));
    let (status, body) = net
        .submit_raw(0, json!({"transaction": "zz"}).to_string())
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_hex")));
    let (status, body) = net
        .submit_raw(0, json!({"transaction": "00ff00"}).to_string())
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("malformed")),
        "{body}"
    );
    let (status, body) = net
        .submit_raw(0, json!({"transaction": "00".repeat(40_000)}).to_string())
        .await;
    assert_eq!(status, 413, "{body}");

    // Signed for another chain.
    let key = KeyFile::generate().unwrap();
    let other = Transaction {
        signer: Signer::Patient(key.patient_id()),
        nonce: 1,
        valid_until: valid_until(),
        payload: Payload::RegisterPatient,
    }
    .sign(
        &Chain::new(
            ChainId::new("another-chain").unwrap(),
            common::chain().suite,
        ),
        key.secret(),
    );
    let (status, body) = net.submit(0, &other, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("bad_signature")),
        "{body}"
    );

    // A flipped signature byte.
    let mut tampered = register_patient(7);
    let medledger_contracts::crypto::Signature::Ed25519 { s, .. } = &mut tampered.signature else {
        unreachable!("an Ed25519 signature")
    };
    s[0] ^= 1;
    let (status, body) = net.submit(0, &tampered, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("bad_signature")),
        "{body}"
    );

    // The ledger would reject it: a grant from a patient nobody registered.
    let unknown = KeyFile::generate().unwrap();
    let revoke = Transaction {
        signer: Signer::Patient(unknown.patient_id()),
        nonce: 1,
        valid_until: valid_until(),
        payload: Payload::Revoke {
            grant: medledger_contracts::types::TxHash(medledger_contracts::Hash32([7; 32])),
        },
    }
    .sign(&chain(), unknown.secret());
    let (status, body) = net.submit(0, &revoke, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("would_be_rejected")),
        "{body}"
    );

    // Duplicates: while waiting, and once committed.
    let tx = register_patient(8);
    let (status, _) = net.submit(1, &tx, false).await;
    assert_eq!(status, 200);
    let (status, body) = net.submit(1, &tx, false).await;
    assert!(
        matches!(
            body["code"].as_str(),
            Some("duplicate" | "already_committed")
        ) && status == 409,
        "{status} {body}"
    );
    let (status, body) = net.submit(1, &register_patient(9), true).await;
    assert_eq!(status, 200, "{body}");
    // The first may be in a later block than the second (gossip order):
    // wait until node 2 has committed it.
    let id = tx.id(&chain()).0.to_hex();
    let deadline = Instant::now() + Duration::from_secs(30);
    while net.get(2, &format!("/v1/receipts/{id}")).await.map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not committed on node 2\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = net.submit(2, &tx, false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("already_committed")),
        "{body}"
    );

    // Unknown routes and wrong methods get JSON errors too; the node still runs.
    let (status, body) = net.get(0, "/v1/nothing-here").await.unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let before = net.height(0).await.unwrap();
    net.reach(0, before + 1, 30, "no progress").await;
    assert!(net.dir().join("testnet.json").exists());
}

/// No block up to `height` (as node 1 has them) was proposed by node 0, the
/// faulty one.
async fn assert_nothing_committed_from_node_0(net: &Testnet, height: u64, fault: &str) {
    let faulty = &net.nodes()[0].institution;
    for h in 1..=height {
        let header = net.header(1, h).await;
        assert_ne!(
            header["proposer"].as_str(),
            Some(faulty.as_str()),
            "{fault}: a block proposed by the faulty node was committed at height {h}"
        );
    }
}

fn node_log(net: &Testnet, i: usize) -> String {
    std::fs::read_to_string(net.nodes()[i].home.join("node.log")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_with_wrong_roots_are_never_committed() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    for fault in ["bad-state-root", "bad-transaction-root"] {
        let mut net = Testnet::new(4);
        net.start_with(0, &[("MEDLEDGER_FAULT", fault)]);
        for i in 1..4 {
            net.start(i);
        }
        net.reach(1, 1, 60, "no progress").await;
        // The honest three keep going past several of the faulty node's turns.
        for n in 0..6u64 {
            let (status, body) = net
                .submit(
                    1 + usize::try_from(n % 3).unwrap(),
                    &register_patient(n),
                    true,
                )
                .await;
            assert_eq!(status, 200, "{fault}: {body}\n{}", net.logs());
        }
        net.reach(1, 12, 60, &format!("{fault}: stalled")).await;
        let height = min_height(&net, &[0, 1, 2, 3]).await;
        assert_agree(&net, &[0, 1, 2, 3], height).await;
        assert_nothing_committed_from_node_0(&net, height, fault).await;
        assert!(
            node_log(&net, 1).contains("differs from this node's re-execution"),
            "{fault}: honest nodes never saw the bad block"
        );
    }
}

/// Issue 16, item 11: a proposer dates its blocks as early as the parent
/// allows (1 ms after it), e.g. back to when a grant was still active. With
/// blocks 6 s apart (an idle chain), such a block is over the 5 s tolerance
/// behind the others' clocks: they vote nil, and the next proposer's block
/// commits instead. (Before, any time after the parent was accepted, and
/// the faulty node's blocks committed at its turns.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_block_is_never_committed() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    // An idle chain: a proposer waits 6 s for transactions before proposing
    // an empty block (its wait is capped at half the propose timeout, so
    // that is raised in every node's copy of genesis before any start).
    for path in std::iter::once(net.dir().join("genesis.json"))
        .chain(net.nodes().iter().map(|n| n.home.join("genesis.json")))
    {
        let mut genesis: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        genesis["consensus"]["propose_timeout_ms"] = 20_000.into();
        std::fs::write(&path, serde_json::to_string_pretty(&genesis).unwrap()).unwrap();
    }
    for i in 0..4 {
        net.configure(i, "consensus", "empty_block_wait_ms", "6000");
    }
    net.start_with(0, &[("MEDLEDGER_FAULT", "backdated-block-time")]);
    for i in 1..4 {
        net.start(i);
    }
    // Past at least one of the faulty node's turns (one height in four).
    net.reach(1, 6, 120, "stalled").await;
    let height = min_height(&net, &[1, 2, 3]).await;
    assert_agree(&net, &[1, 2, 3], height).await;
    assert_nothing_committed_from_node_0(&net, height, "backdated-block-time").await;
    assert!(
        node_log(&net, 1).contains("behind this node's clock"),
        "honest nodes never saw a backdated block\n{}",
        net.logs()
    );
}

/// Issue 21, bound to the block: a proposer that alters the signature of a
/// transaction the other validators already hold, keeping the header they
/// compute from their own verified copies. On 57fba40 the others executed
/// their copies, the roots matched, and the block was committed with a
/// signature that does not verify — which a node syncing from genesis and
/// the auditor's replay then refuse forever. Now the roots cover the signed
/// bytes and a copy is reused only if it is the block's own: the block is
/// never voted for, and everything committed syncs and replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_signature_does_not_verify_is_never_committed() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::with_observers(4, 1);
    net.start_with(0, &[("MEDLEDGER_FAULT", "swap-signature")]);
    for i in 1..4 {
        net.start(i);
    }
    net.reach(1, 1, 60, "no progress").await;
    // One transaction at a time, each gossiped to every pool before a
    // proposer takes it, over several of the faulty node's turns.
    for n in 0..12u64 {
        let (status, body) = net
            .submit(
                1 + usize::try_from(n % 3).unwrap(),
                &register_patient(300 + n),
                true,
            )
            .await;
        assert_eq!(status, 200, "{body}\n{}", net.logs());
    }
    // Every node up to the highest height a receipt came from, so the
    // twelve blocks with transactions are all in 1..=height.
    let mut height = 0;
    for i in 1..4 {
        height = height.max(net.height(i).await.unwrap_or(0));
    }
    for i in 0..4 {
        net.reach(i, height, 60, "a node stayed behind").await;
    }
    assert_agree(&net, &[0, 1, 2, 3], height).await;
    let faulty = net.nodes()[0].institution.clone();
    let mut with_transactions = 0;
    for h in 1..=height {
        let header = net.header(1, h).await;
        // The signed hashes a node lists are the leaves of the certified root.
        let (_, block) = net.get(1, &format!("/v1/blocks/{h}")).await.unwrap();
        let leaves: Vec<medledger_contracts::encoding::Hash32> = block["signed_hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| medledger_contracts::encoding::Hash32::from_hex(h.as_str().unwrap()).unwrap())
            .collect();
        with_transactions += usize::from(!leaves.is_empty());
        assert_eq!(
            Some(
                medledger_contracts::state_machine::transaction_root(
                    common::chain().hash(),
                    &leaves
                )
                .to_hex()
                .as_str()
            ),
            header["transaction_root"].as_str(),
            "height {h}"
        );
        if header["proposer"].as_str() == Some(faulty.as_str()) {
            let (_, block) = net.get(1, &format!("/v1/blocks/{h}")).await.unwrap();
            assert_eq!(
                block["transactions"].as_array().map(Vec::len),
                Some(0),
                "height {h}: the faulty node's block with an altered signature was committed"
            );
        }
    }
    assert!(
        with_transactions >= 12,
        "{with_transactions} blocks with transactions"
    );
    assert!(
        node_log(&net, 1).contains("signature check failed"),
        "the honest nodes never saw an altered signature (did the faulty node propose with transactions?)\n{}",
        net.logs()
    );
    // A node syncing from genesis verifies and re-executes every block.
    net.start(4);
    net.reach(4, height, 120, "the observer did not sync").await;
    assert_agree(&net, &[1, 4], height).await;
    // And the auditor's replay passes.
    assert_replay_over_api_passes(&net, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_a_thousand_blocks_behind_syncs_and_verifies_them() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::with_observers(4, 1);
    for i in 0..5 {
        // Blocks as fast as consensus goes, so a thousand come quickly.
        net.configure(i, "consensus", "empty_block_wait_ms", "0");
    }
    for i in 0..4 {
        net.start(i);
    }
    let behind = 1_000;
    net.reach(
        0,
        behind,
        400,
        &format!("validators did not reach {behind}"),
    )
    .await;
    // The observer starts from genesis and syncs every block, checking each
    // certificate against the validator set of its height and re-executing it.
    let started = Instant::now();
    net.start(4);
    net.reach(4, behind, 300, "observer did not catch up").await;
    eprintln!(
        "synced {behind} blocks in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for h in (1..=behind).step_by(97).chain([behind]) {
        let expected = net.header_hash(0, h).await;
        assert!(expected.is_some());
        assert_eq!(net.header_hash(4, h).await, expected, "height {h}");
    }
    let (_, status) = net.get(4, "/v1/status").await.unwrap();
    assert_eq!(status["validator"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_made_a_validator_by_votes_signs_certificates() {
    use medledger_contracts::certificate::ConsensusAddress;

    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::with_observers(4, 1);
    net.start_all();
    net.reach(4, 1, 60, "no progress").await;
    let (_, status) = net.get(4, "/v1/status").await.unwrap();
    assert_eq!(status["validator"], false, "{status}");

    let observer = net.nodes()[4].institution.clone();
    let carried_at = carry(&net, &["set-voting-power", &observer, "1"]).await;
    // The change takes effect a few heights later; then the new validator's
    // precommits are in certificates.
    let address = ConsensusAddress::of_key(
        common::chain().hash(),
        &KeyFile::load(&net.nodes()[4].home.join("node-key.json"))
            .unwrap()
            .public_key(),
    )
    .to_string();
    net.reach(0, carried_at + 8, 60, "no progress").await;
    let mut signed = 0;
    for h in carried_at + 4..=carried_at + 8 {
        let (status, cert) = net.get(0, &format!("/v1/certificates/{h}")).await.unwrap();
        assert_eq!(status, 200);
        let signers: Vec<&str> = cert["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["validator"].as_str().unwrap())
            .collect();
        if signers.contains(&address.as_str()) {
            signed += 1;
        }
    }
    assert!(
        signed >= 1,
        "the new validator signed none of five certificates\n{}",
        net.logs()
    );
    let (_, status) = net.get(4, "/v1/status").await.unwrap();
    assert_eq!(status["validator"], true, "{status}");
    assert_agree(&net, &[0, 1, 2, 3, 4], carried_at + 8).await;

    // A light client that knows only genesis follows the change through
    // certified headers: the set it verifies for a later height has five.
    let light = light_client(&net, 0, Duration::from_secs(60));
    let set = light.validator_set(carried_at + 8).await.unwrap();
    assert_eq!(set.validators.len(), 5, "{set:?}");
    let before = light.validator_set(carried_at).await.unwrap();
    assert_eq!(before.validators.len(), 4, "{before:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_by_votes_is_disconnected_and_refused() {
    use medledger_contracts::transaction::{key_possession_message, licence_hash};
    use medledger_contracts::types::{InstitutionId, PractitionerRole};

    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::with_observers(4, 1);
    net.start_all();
    net.reach(4, 1, 60, "no progress").await;
    let keys = net.dir().join("keys");
    let admin = |i: usize| {
        KeyFile::load(&keys.join(format!("admin.{}.json", net.nodes()[i].institution))).unwrap()
    };
    let member = InstitutionId::new(&net.nodes()[4].institution).unwrap();
    let register_practitioner = |nonce: u64| {
        let new_key = KeyFile::generate().unwrap();
        let signer = Signer::Institution(member.clone());
        let key_proof = new_key.secret().sign(&key_possession_message(
            &chain(),
            &signer,
            "register-practitioner",
            &new_key.public_key(),
        ));
        Transaction {
            signer,
            nonce,
            valid_until: valid_until(),
            payload: Payload::RegisterPractitioner {
                key: new_key.public_key(),
                role: PractitionerRole::Physician,
                licence_hash: licence_hash(common::chain().hash(), &[1; 16], "110000000000001"),
                key_proof,
            },
        }
        .sign(&chain(), admin(4).secret())
    };
    // A member acts normally, and every node counts four peers.
    let (status, body) = net.submit(0, &register_practitioner(1), true).await;
    assert_eq!(
        (status, body["outcome"]["status"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    let peers = |status: &Value| status["peers"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while peers(&net.get(0, "/v1/status").await.unwrap().1) < 4 {
        assert!(Instant::now() < deadline, "node 0 never saw four peers");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    carry(&net, &["remove", member.as_str()]).await;
    // Removed: the validators drop its node, and what it signs is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<u64> = {
            let mut v = Vec::new();
            for i in 0..4 {
                v.push(peers(&net.get(i, "/v1/status").await.unwrap().1));
            }
            v
        };
        if counts.iter().all(|&c| c == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removed member still connected: {counts:?}\n{}",
            net.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = net.submit(1, &register_practitioner(3), false).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("would_be_rejected")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("not active"),
        "{body}"
    );
    // The four validators go on without it.
    let height = net.height(0).await.unwrap();
    net.reach(3, height + 2, 30, "no progress").await;
}

/// `medledger keys rotate` (R4.4; the command of docs/operations.md's drill
/// C, for the admin key): once it commits, the old key no longer signs for
/// the institution and the new one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_institution_rotates_its_admin_key_with_the_cli() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let institution = net.nodes()[0].institution.clone();
    let old = net
        .dir()
        .join("keys")
        .join(format!("admin.{institution}.json"));
    let new = net.dir().join("new-admin.json");
    let newer = net.dir().join("newer-admin.json");
    KeyFile::generate().unwrap().save(&new).unwrap();
    KeyFile::generate().unwrap().save(&newer).unwrap();
    let rotate = |key: &std::path::Path, new_key: &std::path::Path| {
        let new_key = new_key.to_str().unwrap();
        let args = ["--as-institution", &institution, "--new-key", new_key];
        run_cli(&net, 0, &["keys", "rotate"], key, &args)
    };
    let applied = |output: &std::process::Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let receipt: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(receipt["outcome"]["status"], "applied", "{receipt}");
    };
    applied(&rotate(&old, &new));
    // The old key is refused before anything is committed.
    let refused = rotate(&old, &newer);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not the signer's current key"), "{stderr}");
    // The new key signs (here, its own replacement).
    applied(&rotate(&new, &newer));
    let (_, record) = net
        .get(0, &format!("/v1/institutions/{institution}"))
        .await
        .unwrap();
    assert_eq!(
        record["admin_key"].as_str(),
        Some(
            KeyFile::load(&newer)
                .unwrap()
                .public_key()
                .to_text()
                .as_str()
        ),
        "{record}"
    );
}

/// Drill C of docs/operations.md, run: a validator's institution rotates
/// its node key with `medledger keys rotate --node-key` (signed by its
/// admin key, sent to another member's node); the node is stopped, started
/// with the new key, and from the change's height its precommits in the
/// certificates are the new key's, never the old one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_rotates_its_node_key_and_votes_with_the_new_one() {
    use medledger_contracts::certificate::ConsensusAddress;

    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let i = 3;
    let institution = net.nodes()[i].institution.clone();
    let home = net.nodes()[i].home.clone();
    let admin = net
        .dir()
        .join("keys")
        .join(format!("admin.{institution}.json"));
    let address = |key: &KeyFile| {
        ConsensusAddress::of_key(common::chain().hash(), &key.public_key()).to_string()
    };
    let old = address(&KeyFile::load(&home.join("node-key.json")).unwrap());
    let new_file = net.dir().join("new-node-key.json");
    let new_key = KeyFile::generate().unwrap();
    new_key.save(&new_file).unwrap();
    let new = address(&new_key);
    let args = [
        "--as-institution",
        &institution,
        "--node-key",
        "--new-key",
        new_file.to_str().unwrap(),
    ];
    let output = run_cli(&net, 0, &["keys", "rotate"], &admin, &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let receipt: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(receipt["outcome"]["status"], "applied", "{receipt}");
    let rotated_at = receipt["height"].as_u64().unwrap();
    // The drill: stop the node, put the new key in its place, start it;
    // the other members put its new peer id in `p2p.peers` (as `keys show`
    // prints it) and restart, one at a time.
    net.kill(i);
    std::fs::copy(&new_file, home.join("node-key.json")).unwrap();
    let shown = std::process::Command::new(BIN)
        .args(["keys", "show"])
        .arg(&new_file)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let new_peer = shown
        .lines()
        .find_map(|l| l.strip_prefix("as a node's identity, peer id:"))
        .map(|p| p.trim().to_string())
        .unwrap_or_else(|| panic!("keys show printed no peer id: {shown}"));
    let old_peer = net.nodes()[i].p2p.rsplit('/').next().unwrap().to_string();
    net.start(i);
    for j in (0..4).filter(|j| *j != i) {
        let config = net.nodes()[j].home.join("config.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(&old_peer), "node {j} does not list node {i}");
        let (_, status) = net.get(j, "/v1/status").await.unwrap();
        let before = status["height"].as_u64().unwrap();
        net.kill(j);
        std::fs::write(&config, text.replace(&old_peer, &new_peer)).unwrap();
        net.start(j);
        // Back and committing with the others before the next one goes.
        net.reach(
            j,
            before + 2,
            90,
            "a member did not come back after its restart",
        )
        .await;
    }
    // The new key is in the validator set from `validator_change_delay_heights`
    // (2) after the rotation; a few heights on, certificates show it.
    let until = rotated_at + 12;
    net.reach(i, until, 120, "the node did not catch up with its new key")
        .await;
    net.reach(0, until, 60, "no progress after the rotation")
        .await;
    let mut signed_new = 0;
    for h in rotated_at + 3..=until {
        let (status, cert) = net.get(0, &format!("/v1/certificates/{h}")).await.unwrap();
        assert_eq!(status, 200, "{cert}");
        let signers: Vec<&str> = cert["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["validator"].as_str().unwrap())
            .collect();
        assert!(
            !signers.contains(&old.as_str()),
            "the old node key signed the certificate at {h}"
        );
        if signers.contains(&new.as_str()) {
            signed_new += 1;
        }
    }
    assert!(
        signed_new >= 1,
        "the rotated node's new key signed none of the certificates\n{}",
        net.logs()
    );
    let (_, status) = net.get(i, "/v1/status").await.unwrap();
    assert_eq!(status["validator"], true, "{status}");
    assert_agree(&net, &[0, 1, 2, 3], until).await;
    // Drill B after C: the rotated node loses its disk. From an empty data
    // directory its store says genesis's key, not its own: it starts all
    // the same (with a warning), syncs past the rotation, and votes again.
    net.kill(i);
    std::fs::rename(home.join("data"), home.join("data-lost")).unwrap();
    let logged_before = node_log(&net, i).len();
    net.start(i);
    let later = until + 10;
    net.reach(
        i,
        later,
        120,
        "the node did not resync with its rotated key",
    )
    .await;
    assert!(
        node_log(&net, i)[logged_before..].contains("not the node key the ledger names"),
        "no warning about the key while behind the rotation"
    );
    net.reach(0, later + 6, 60, "no progress after the resync")
        .await;
    let mut signed_again = 0;
    for h in later + 1..=later + 6 {
        let (_, cert) = net.get(0, &format!("/v1/certificates/{h}")).await.unwrap();
        let signed = cert["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["validator"] == new.as_str());
        signed_again += usize::from(signed);
    }
    assert!(
        signed_again >= 1,
        "the resynced node signed none of the certificates\n{}",
        net.logs()
    );
}

/// Break-glass access, its review by the regulator and a public-health
/// access, each with its command (R7.3–R7.5): `hospital emergency-access`,
/// `review`, `hospital public-health-access`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_access_its_review_and_public_health_access_have_commands() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let keys = net.dir().join("keys");
    let patient = net.dir().join("patient.json");
    let key = KeyFile::generate().unwrap();
    key.save(&patient).unwrap();
    let patient_id = key.patient_id().0.to_hex();
    // One node for all: each command waits for its commit there.
    let run = |key: &std::path::Path, args: &[&str]| -> Value {
        let output = run_cli(&net, 0, &args[..1], key, &args[1..]);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let registered = run(&patient, &["patient", "register"]);
    assert_eq!(registered["outcome"]["status"], "applied", "{registered}");
    let doctor = keys.join("practitioner.dr-second-1.json");
    let access = run(
        &doctor,
        &[
            "hospital",
            "emergency-access",
            "--patient",
            &patient_id,
            "--holder",
            "city-first-hospital",
            "--category",
            "lab-reports",
            "--category",
            "allergies",
            "--reason",
            "life-threatening",
        ],
    );
    assert_eq!(access["outcome"]["status"], "authorized", "{access}");
    let record = net.dir().join("review.txt");
    std::fs::write(&record, "reviewed: the patient arrived unconscious").unwrap();
    let reviewed = run(
        &keys.join("admin.health-commission.json"),
        &[
            "review",
            "--as-institution",
            "health-commission",
            "--access",
            access["tx"].as_str().unwrap(),
            "--finding",
            "justified",
            "--record",
            record.to_str().unwrap(),
        ],
    );
    assert_eq!(reviewed["outcome"]["status"], "applied", "{reviewed}");
    let public_health = run(
        &keys.join("practitioner.cdc-officer-1.json"),
        &[
            "hospital",
            "public-health-access",
            "--patient",
            &patient_id,
            "--holder",
            "city-first-hospital",
            "--category",
            "lab-reports",
            "--legal-basis",
            "infectious-disease-reporting",
            "--case-reference",
            "CDC-2026-0042",
            "--case-salt",
            "000102030405060708090a0b0c0d0e0f",
        ],
    );
    assert_eq!(
        public_health["outcome"]["status"], "authorized",
        "{public_health}"
    );
}

/// A regulator's licence commands against a live testnet (R4.12–R4.14,
/// the example genesis asks for attested licences): the health commission
/// attests a new nurse's licence, a hospital registers the nurse with the
/// salt issued with it, the nurse acts; suspended, the nurse is refused at
/// admission; reinstated, acts again. Then the hospital's own licence is
/// attested, suspended (the nurse stops) and reinstated (R4.16, R4.17).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_attests_suspends_and_reinstates_a_licence_with_the_cli() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let keys = net.dir().join("keys");
    let commission = keys.join("admin.health-commission.json");
    let run = |key: &std::path::Path, args: &[&str]| cli(&net, key, args);
    let json = |key: &std::path::Path, args: &[&str]| cli_json(&net, key, args);
    let as_commission = ["licence", "--as-institution", "health-commission"];
    let licence_cmd = |rest: &[&str]| -> Vec<String> {
        as_commission
            .iter()
            .chain(rest)
            .map(|s| s.to_string())
            .collect()
    };
    let args = licence_cmd(&[
        "attest",
        "--number",
        "330100202612001",
        "--kind",
        "nurse",
        "--institution",
        "city-first-hospital",
        "--scope",
        "nursing",
        "--years",
        "1",
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let attested = json(&commission, &args);
    assert_eq!(attested["outcome"]["status"], "applied", "{attested}");
    let licence = attested["licence_hash"].as_str().unwrap().to_string();
    let salt = attested["salt"].as_str().unwrap().to_string();
    // A hospital cannot attest its own staff's licences.
    let mut hospital_args = args.clone();
    hospital_args[2] = "city-first-hospital";
    let refused = run(&keys.join("admin.city-first-hospital.json"), &hospital_args);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("only a regulator"), "{stderr}");
    // The hospital registers the nurse under the same number and salt.
    let nurse_key = net.dir().join("nurse.json");
    let nurse = KeyFile::generate().unwrap();
    nurse.save(&nurse_key).unwrap();
    let registered = json(
        &keys.join("admin.city-first-hospital.json"),
        &[
            "hospital",
            "--as-institution",
            "city-first-hospital",
            "register-practitioner",
            "--practitioner-key",
            nurse_key.to_str().unwrap(),
            "--role",
            "nurse",
            "--licence",
            "330100202612001",
            "--licence-salt",
            &salt,
        ],
    );
    assert_eq!(registered["outcome"]["status"], "applied", "{registered}");
    // Registered, but not yet bound to the licence by the regulator.
    let nurse_id = nurse.practitioner_id().0.to_hex();
    let (_, record) = net
        .get(0, &format!("/v1/practitioners/{nurse_id}"))
        .await
        .unwrap();
    assert_eq!(
        record["licence_problem"],
        "the regulator has not bound this registration to the practitioner's licence",
        "{record}"
    );
    let shown_before = json(&nurse_key, &["licence", "show", &licence]);
    let bind = licence_cmd(&["bind", &licence, "--practitioner", &nurse_id]);
    let bind: Vec<&str> = bind.iter().map(String::as_str).collect();
    let bound = json(&commission, &bind);
    assert_eq!(bound["outcome"]["status"], "applied", "{bound}");
    // Binding keeps the terms: the same validity and places, one more registration.
    let shown_after = json(&nurse_key, &["licence", "show", &licence]);
    for field in [
        "valid_from_ms",
        "valid_until_ms",
        "institutions",
        "scopes",
        "kind",
    ] {
        assert_eq!(shown_before[field], shown_after[field], "{field}");
    }
    assert_eq!(
        shown_after["practitioners"][0],
        nurse_id.as_str(),
        "{shown_after}"
    );
    let (_, record) = net
        .get(
            0,
            &format!("/v1/practitioners/{}", nurse.practitioner_id().0.to_hex()),
        )
        .await
        .unwrap();
    assert_eq!(
        record["licence_hash"].as_str(),
        Some(licence.as_str()),
        "{record}"
    );
    assert_eq!(
        record["licence"]["attested_by"], "health-commission",
        "{record}"
    );
    assert_eq!(record["licence_problem"], Value::Null, "{record}");
    // The nurse asks a patient for consent: admitted and applied.
    let patient = net.dir().join("patient.json");
    let patient_key = KeyFile::generate().unwrap();
    patient_key.save(&patient).unwrap();
    let patient_id = patient_key.patient_id().0.to_hex();
    let ok = json(&patient, &["patient", "register"]);
    assert_eq!(ok["outcome"]["status"], "applied", "{ok}");
    let ask = [
        "hospital",
        "request-consent",
        "--patient",
        &patient_id,
        "--category",
        "allergies",
    ];
    let asked = json(&nurse_key, &ask);
    assert_eq!(asked["outcome"]["status"], "applied", "{asked}");
    // The hospital registers another key under the same licence: that key
    // is refused, as the regulator bound only the nurse's.
    let ghost_key = net.dir().join("ghost.json");
    KeyFile::generate().unwrap().save(&ghost_key).unwrap();
    let ghost = json(
        &keys.join("admin.city-first-hospital.json"),
        &[
            "hospital",
            "--as-institution",
            "city-first-hospital",
            "register-practitioner",
            "--practitioner-key",
            ghost_key.to_str().unwrap(),
            "--role",
            "nurse",
            "--licence",
            "330100202612001",
            "--licence-salt",
            &salt,
        ],
    );
    assert_eq!(ghost["outcome"]["status"], "applied", "{ghost}");
    let refused = run(&ghost_key, &ask);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("has not bound this registration"),
        "{stderr}"
    );
    // The patient grants the nurse's hospital allergies held at the second
    // hospital; the nurse's request is authorised before the suspension.
    let granted = json(
        &patient,
        &[
            "patient",
            "grant",
            "--to-institution",
            "city-first-hospital",
            "--category",
            "allergies",
            "--holder",
            "city-second-hospital",
        ],
    );
    assert_eq!(granted["outcome"]["status"], "applied", "{granted}");
    let grant = granted["tx"].as_str().unwrap().to_string();
    let authorised = json(
        &nurse_key,
        &[
            "hospital",
            "request-access",
            "--grant",
            &grant,
            "--holder",
            "city-second-hospital",
            "--category",
            "allergies",
        ],
    );
    assert_eq!(
        authorised["outcome"]["status"], "authorized",
        "{authorised}"
    );
    // Suspended: the node refuses the nurse's next request, saying why.
    let suspend = licence_cmd(&["suspend", &licence]);
    let suspend: Vec<&str> = suspend.iter().map(String::as_str).collect();
    let suspended = json(&commission, &suspend);
    assert_eq!(suspended["outcome"]["status"], "applied", "{suspended}");
    // And the holder no longer serves what was authorised before.
    let out = net.dir().join("fetched-after-suspension");
    let fetch = run(
        &nurse_key,
        &[
            "hospital",
            "fetch",
            "--request",
            authorised["tx"].as_str().unwrap(),
            "--holder",
            "city-second-hospital",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(!fetch.status.success());
    let stderr = String::from_utf8_lossy(&fetch.stderr);
    assert!(stderr.contains("licence_not_in_force"), "{stderr}");
    let refused = run(&nurse_key, &ask);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("licence is suspended"), "{stderr}");
    let shown = json(&nurse_key, &["licence", "show", &licence]);
    assert_eq!(shown["status"], "suspended", "{shown}");
    assert_eq!(shown["institutions"][0], "city-first-hospital", "{shown}");
    let (_, record) = net
        .get(
            0,
            &format!("/v1/practitioners/{}", nurse.practitioner_id().0.to_hex()),
        )
        .await
        .unwrap();
    assert_eq!(
        record["licence_problem"], "the practitioner's licence is suspended",
        "{record}"
    );
    // Reinstated: the nurse acts again.
    let reinstate = licence_cmd(&["reinstate", &licence]);
    let reinstate: Vec<&str> = reinstate.iter().map(String::as_str).collect();
    let reinstated = json(&commission, &reinstate);
    assert_eq!(reinstated["outcome"]["status"], "applied", "{reinstated}");
    let asked = json(&nurse_key, &ask);
    assert_eq!(asked["outcome"]["status"], "applied", "{asked}");

    // The nurse's hospital's own licence (R4.16, R4.17): the commission
    // attests the codes the hospital was admitted with (another code is
    // refused), then suspends it, which stops the nurse, and lifts it.
    let (_, member) = net
        .get(0, "/v1/institutions/city-first-hospital")
        .await
        .unwrap();
    assert_eq!(member["licence"], Value::Null, "{member}");
    let legal_code = member["legal_code"].as_str().unwrap().to_string();
    let licence_ref = member["licence_ref"].as_str().unwrap().to_string();
    let attest = |code: &str| {
        let args = licence_cmd(&[
            "attest-institution",
            "city-first-hospital",
            "--legal-code",
            code,
            "--licence-ref",
            &licence_ref,
            "--scope",
            "nursing",
        ]);
        run(
            &commission,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    let wrong = attest("91330100MA2AAAAA0X");
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("admitted with"), "{stderr}");
    let attested = attest(&legal_code);
    assert!(
        attested.status.success(),
        "{}",
        String::from_utf8_lossy(&attested.stderr)
    );
    let shown = json(
        &nurse_key,
        &["licence", "show-institution", "city-first-hospital"],
    );
    assert_eq!(
        shown["licence"]["attested_by"], "health-commission",
        "{shown}"
    );
    assert_eq!(shown["licence"]["status"], "active", "{shown}");
    assert_eq!(shown["licence"]["scopes"][0], "nursing", "{shown}");
    assert_eq!(shown["licence_problem"], Value::Null, "{shown}");
    let suspend = licence_cmd(&["suspend-institution", "city-first-hospital"]);
    let suspended = json(
        &commission,
        &suspend.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(suspended["outcome"]["status"], "applied", "{suspended}");
    let refused = run(&nurse_key, &ask);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("licence of the practitioner's institution is suspended"),
        "{stderr}"
    );
    let (_, member) = net
        .get(0, "/v1/institutions/city-first-hospital")
        .await
        .unwrap();
    assert_eq!(member["licence"]["status"], "suspended", "{member}");
    assert_eq!(
        member["licence_problem"], "its licence, or its physical hospital's, is suspended",
        "{member}"
    );
    let reinstate = licence_cmd(&["reinstate-institution", "city-first-hospital"]);
    let reinstated = json(
        &commission,
        &reinstate.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(reinstated["outcome"]["status"], "applied", "{reinstated}");
    let asked = json(&nurse_key, &ask);
    assert_eq!(asked["outcome"]["status"], "applied", "{asked}");

    // The consortium corrects the hospital's licence reference by vote
    // (R4.18): the attestation no longer vouches for its codes, so the
    // nurse stops until the commission attests the new ones.
    carry(
        &net,
        &[
            "set-codes",
            "city-first-hospital",
            "--legal-code",
            &legal_code,
            "--licence-ref",
            "PDY-330100-0001A",
        ],
    )
    .await;
    let refused = run(&nurse_key, &ask);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("changed since a regulator attested"),
        "{stderr}"
    );
    let old_ref = attest(&legal_code);
    assert!(
        !old_ref.status.success(),
        "the old reference is no longer the member's"
    );
    let args = licence_cmd(&[
        "attest-institution",
        "city-first-hospital",
        "--legal-code",
        &legal_code,
        "--licence-ref",
        "PDY-330100-0001A",
    ]);
    let renewed = json(
        &commission,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(renewed["outcome"]["status"], "applied", "{renewed}");
    // Without --scope, the scopes attested before are kept.
    let shown = json(
        &nurse_key,
        &["licence", "show-institution", "city-first-hospital"],
    );
    assert_eq!(shown["licence"]["scopes"][0], "nursing", "{shown}");
    assert_eq!(shown["licence_ref"], "PDY-330100-0001A", "{shown}");
    let asked = json(&nurse_key, &ask);
    assert_eq!(asked["outcome"]["status"], "applied", "{asked}");
}

/// A hospital records a guardianship with the CLI (R4.7), the child's key
/// consenting and the evidence's salted hash on the ledger; the guardian
/// lists it with `patient delegations --of`, and the child can no longer
/// grant alone (R5.6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_records_a_guardianship_and_the_guardian_sees_it() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let run = |key: &std::path::Path, args: &[&str]| cli(&net, key, args);
    let json = |key: &std::path::Path, args: &[&str]| cli_json(&net, key, args);
    let mut ids = Vec::new();
    for name in ["child", "guardian"] {
        let file = net.dir().join(format!("{name}.json"));
        let key = KeyFile::generate().unwrap();
        key.save(&file).unwrap();
        let registered = json(&file, &["patient", "register"]);
        assert_eq!(registered["outcome"]["status"], "applied", "{registered}");
        ids.push((file, key.patient_id().0.to_hex()));
    }
    let (child, child_id) = &ids[0];
    let (guardian, guardian_id) = &ids[1];
    // Ten years from now, as a date.
    let until = std::time::SystemTime::now() + Duration::from_secs(10 * 365 * 86_400);
    let until = humantime::format_rfc3339_seconds(until).to_string()[..10].to_string();
    let salt = "00112233445566778899aabbccddeeff";
    let recorded = json(
        &net.dir()
            .join("keys")
            .join("admin.city-first-hospital.json"),
        &[
            "hospital",
            "--as-institution",
            "city-first-hospital",
            "record-guardianship",
            "--patient-key",
            child.to_str().unwrap(),
            "--guardian",
            guardian_id,
            "--minor-until",
            &until,
            "--evidence",
            "O330100202600123",
            "--evidence-salt",
            salt,
        ],
    );
    assert_eq!(recorded["outcome"]["status"], "applied", "{recorded}");
    let mut salt_bytes = [0u8; 16];
    salt_bytes.copy_from_slice(&hex::decode(salt).unwrap());
    let evidence = medledger_client_sdk::tx::guardianship_evidence_hash(
        common::chain().hash(),
        &salt_bytes,
        "O330100202600123",
    )
    .to_hex();
    assert_eq!(recorded["evidence_hash"], evidence.as_str(), "{recorded}");
    // The guardian sees it, with the hospital and the evidence's hash.
    let listed = json(guardian, &["patient", "delegations", "--of", child_id]);
    let guardianship = &listed[0];
    assert_eq!(guardianship["role"], "guardian", "{listed}");
    assert_eq!(guardianship["delegate"], guardian_id.as_str(), "{listed}");
    assert_eq!(
        guardianship["recorded_by"], "city-first-hospital",
        "{listed}"
    );
    assert_eq!(guardianship["evidence_hash"], evidence.as_str(), "{listed}");
    assert_eq!(guardianship["active"], true, "{listed}");
    // The child, now a recorded minor, cannot grant alone.
    let refused = run(
        child,
        &[
            "patient",
            "grant",
            "--to-institution",
            "city-second-hospital",
            "--category",
            "allergies",
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("guardian must sign"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_set_by_votes_takes_a_grant_its_members_use() {
    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::new(4);
    net.start_all();
    net.reach(0, 1, 60, "no blocks within 60 s").await;
    let keys = net.dir().join("keys");
    let json = |key: &std::path::Path, args: &[&str]| cli_json(&net, key, args);
    // The first hospital and its internet hospital, as one alliance (R4.15).
    carry(
        &net,
        &[
            "set-group",
            "first-alliance",
            "--member",
            "first-online",
            "--member",
            "city-first-hospital",
        ],
    )
    .await;
    let groups = gov(&net, 3, &["groups"]);
    assert_eq!(
        groups[0]["items"][0]["members"],
        serde_json::json!(["city-first-hospital", "first-online"]),
        "{groups:?}"
    );
    let patient = net.dir().join("alliance-patient.json");
    let patient_key = KeyFile::generate().unwrap();
    patient_key.save(&patient).unwrap();
    let patient_id = patient_key.patient_id().0.to_hex();
    let registered = json(&patient, &["patient", "register"]);
    assert_eq!(registered["outcome"]["status"], "applied", "{registered}");
    let granted = json(
        &patient,
        &[
            "patient",
            "grant",
            "--to-group",
            "first-alliance",
            "--category",
            "allergies",
            "--holder",
            "city-second-hospital",
        ],
    );
    assert_eq!(granted["outcome"]["status"], "applied", "{granted}");
    let grant = granted["tx"].as_str().unwrap();
    let listed = json(&patient, &["patient", "grants"]);
    assert_eq!(
        listed[0]["terms"]["grantee"],
        serde_json::json!({"group": "first-alliance"}),
        "{listed}"
    );
    // Each member's doctor reaches it (R5.11), and the first hospital's
    // checks it with proofs as the group's grantee; another hospital's
    // doctor is not a grantee.
    let ask = [
        "hospital",
        "request-access",
        "--grant",
        grant,
        "--holder",
        "city-second-hospital",
        "--category",
        "allergies",
    ];
    for doctor in ["dr-online-1", "dr-first-1"] {
        let asked = json(&keys.join(format!("practitioner.{doctor}.json")), &ask);
        assert_eq!(
            asked["outcome"]["status"], "authorized",
            "{doctor}: {asked}"
        );
    }
    let checked = json(
        &keys.join("practitioner.dr-first-1.json"),
        &[
            "hospital",
            "check",
            "--patient",
            &patient_id,
            "--grantee-group",
            "first-alliance",
            "--category",
            "allergies",
            "--holder",
            "city-second-hospital",
        ],
    );
    assert_eq!(checked["allowed"], true, "{checked}");
    let outsider = json(&keys.join("practitioner.dr-second-1.json"), &ask);
    assert_eq!(outsider["outcome"]["status"], "denied", "{outsider}");
    assert_eq!(outsider["outcome"]["code"], "not_grantee", "{outsider}");
}

/// Runs `medledger gov … --json` as node `i`'s institution (its admin key)
/// against node `i`: the JSON documents it prints.
fn gov(net: &Testnet, i: usize, args: &[&str]) -> Vec<Value> {
    let institution = &net.nodes()[i].institution;
    let admin = net
        .dir()
        .join("keys")
        .join(format!("admin.{institution}.json"));
    let mut all = vec!["--as-institution", institution.as_str()];
    all.extend_from_slice(args);
    let output = run_cli(net, i, &["gov"], &admin, &all);
    assert!(
        output.status.success(),
        "medledger gov {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Carries a change with the governance commands: node 0's institution
/// proposes `action` (the words after `medledger gov propose`), nodes 1 and
/// 2's vote for it, and `gov status` says it carried. Returns the height
/// that carried it.
async fn carry(net: &Testnet, action: &[&str]) -> u64 {
    let mut propose = vec!["propose"];
    propose.extend_from_slice(action);
    let proposed = gov(net, 0, &propose);
    assert_eq!(proposed[0]["outcome"]["status"], "applied", "{proposed:?}");
    let proposal = proposed[0]["tx"].as_str().unwrap().to_string();
    let mut height = proposed[0]["height"].as_u64().unwrap();
    let listed = |i: usize, args: &[&str]| -> Vec<Value> {
        let mut all = vec!["list"];
        all.extend_from_slice(args);
        gov(net, i, &all)[0]["items"].as_array().unwrap().clone()
    };
    let has = |items: &[Value]| items.iter().any(|p| p["id"] == proposal.as_str());
    assert!(
        has(&listed(0, &["--open"])),
        "the new proposal is not listed open"
    );
    let mut last = Value::Null;
    for i in 1..3 {
        // The voter's node must know the proposal before it takes the vote.
        net.reach(i, height, 30, "the proposal did not reach the voter's node")
            .await;
        let voted = gov(net, i, &["vote", &proposal, "--approve"]);
        assert_eq!(voted[0]["outcome"]["status"], "applied", "{voted:?}");
        height = voted[0]["height"].as_u64().unwrap();
        last = voted[1].clone();
    }
    assert_eq!(last["status"], "carried", "{last}");
    assert_eq!(last["votes"].as_array().unwrap().len(), 3, "{last}");
    let status = gov(net, 2, &["status", &proposal]);
    assert_eq!(status[0], last, "status and the last vote's answer differ");
    assert!(
        !has(&listed(2, &["--open"])),
        "a carried proposal is listed open"
    );
    let all = listed(2, &[]);
    let carried = all.iter().find(|p| p["id"] == proposal.as_str());
    assert_eq!(
        carried.map(|p| &p["status"]),
        Some(&Value::from("carried")),
        "{all:?}"
    );
    last["carried_at"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_institution_admitted_by_votes_syncs_then_becomes_a_validator() {
    use medledger_contracts::certificate::ConsensusAddress;

    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::layout(4, 0, 1);
    net.start_all();
    net.reach(0, 3, 60, "no progress").await;
    // Not a member yet: no one talks to its node.
    assert_eq!(net.height(4).await, Some(0));

    let id = net.nodes()[4].institution.clone();
    let key = |role: &str| {
        KeyFile::load(&net.dir().join("keys").join(format!("{role}.{id}.json"))).unwrap()
    };
    // Its entry, as in genesis's institutions list.
    let entry = net.dir().join("new-member.json");
    let text = json!({
        "id": id,
        "name": "市新区医院 New District Hospital",
        "kind": "hospital",
        "legal_code": "12330100470000009A",
        "region_code": "330100",
        "licence_ref": "PDY-330100-0009",
        "admin_key": key("admin").public_key().to_text(),
        "node_key": key("node").public_key().to_text(),
        "voting_power": 0,
    });
    std::fs::write(&entry, text.to_string()).unwrap();
    let admitted_at = carry(&net, &["admit", entry.to_str().unwrap()]).await;
    // Admitted: the members connect to its node and it syncs the ledger.
    let target = net.height(0).await.unwrap().max(admitted_at + 2);
    net.reach(4, target, 60, "admitted node did not sync").await;
    assert_agree(&net, &[0, 4], target).await;

    // Made a validator: its precommits appear in certificates.
    let carried_at = carry(&net, &["set-voting-power", &id, "1"]).await;
    let address =
        ConsensusAddress::of_key(common::chain().hash(), &key("node").public_key()).to_string();
    net.reach(0, carried_at + 8, 60, "no progress").await;
    let mut signed = 0;
    for h in carried_at + 4..=carried_at + 8 {
        let (_, cert) = net.get(0, &format!("/v1/certificates/{h}")).await.unwrap();
        if cert["signatures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["validator"].as_str() == Some(address.as_str()))
        {
            signed += 1;
        }
    }
    assert!(
        signed >= 1,
        "the admitted validator signed no certificate\n{}",
        net.logs()
    );
}

/// A consortium on the national-cryptography suite runs: four nodes whose
/// node keys are SM2 (votes, proposals, commit certificates) and whose
/// network identities are Ed25519 transport keys commit the same blocks;
/// a patient with an SM2 key registers and grants; a doctor's light client
/// trusting only the SM genesis verifies the grant (SM2 certificate, SM3
/// proof); a transaction signed for the Ed25519 suite is refused by name;
/// the auditor's replay over the API passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_on_sm2_sm3_commit_and_prove_a_grant() {
    use medledger_client_sdk::{Client, Identity, TermsBuilder, TxBuilder, TxOutcome};
    use medledger_contracts::crypto::CryptoSuite;
    use medledger_contracts::records::GrantStatus;
    use medledger_contracts::types::{Category, Grantee, InstitutionId, Purpose};

    let _turn = ONE_TESTNET_AT_A_TIME.lock().await;
    let mut net = Testnet::on(CryptoSuite::Sm2Sm3, 4);
    let chain = genesis(&net).chain();
    assert_eq!(chain.suite, CryptoSuite::Sm2Sm3);
    net.start_all();
    net.reach(0, 2, 90, "no blocks on sm2-sm3 within 90 s")
        .await;
    let (_, status) = net.get(1, "/v1/status").await.unwrap();
    assert_eq!(status["crypto_suite"], "sm2-sm3", "{status}");

    let client = Client::new(&net.nodes()[1].http, chain.clone()).unwrap();
    let patient_key = KeyFile::generate_for(CryptoSuite::Sm2Sm3).unwrap();
    let patient = patient_key.patient_id();
    let as_patient = TxBuilder::new(chain.clone(), Identity::patient(&patient_key));
    let registered = client
        .submit_and_wait(&as_patient.register_patient(), None)
        .await
        .unwrap();
    assert_eq!(registered.outcome, TxOutcome::Applied);
    let second = InstitutionId::new("city-second-hospital").unwrap();
    let terms = TermsBuilder::new(patient, Grantee::Institution(second))
        .category(Category::LabReports)
        .holders([InstitutionId::new("city-first-hospital").unwrap()])
        .purpose(Purpose::Referral)
        .days(30)
        .notice(chain.hash(), "referral notice")
        .build()
        .unwrap();
    let granted = client
        .submit_and_wait(&as_patient.grant(terms), Some(registered.height))
        .await
        .unwrap();
    assert_eq!(granted.outcome, TxOutcome::Applied, "{granted:?}");
    for i in 0..4 {
        net.reach(i, granted.height, 30, "a node behind on sm2-sm3")
            .await;
    }
    assert_agree(&net, &[0, 1, 2, 3], granted.height).await;

    let doctor = Identity::practitioner(&testnet_key(&net, "practitioner:dr-second-1"));
    let light = light_client(&net, 3, Duration::from_secs(30));
    let verified = light.verify_grant(&granted.tx, &doctor).await.unwrap();
    assert_eq!(verified.status, GrantStatus::Active);
    assert_eq!(verified.record.terms.patient, patient);

    // Signed for the Ed25519 suite (same chain name): refused, saying why.
    let (status, body) = net.submit(0, &register_patient(9), false).await;
    assert!(
        status == 422
            && body["code"] == "bad_signature"
            && body.to_string().contains(
                "ed25519 keys and signatures are not accepted on a chain of suite sm2-sm3"
            ),
        "{status} {body}"
    );
    assert_replay_over_api_passes(&net, 2);

    // The fourth validator's institution replaces its node's transport key
    // (`keys rotate --transport-key`, admin-signed); an SM2 key is refused
    // as one before anything is sent.
    let institution = net.nodes()[3].institution.clone();
    let admin = net
        .dir()
        .join("keys")
        .join(format!("admin.{institution}.json"));
    let rotate = |new_key: &std::path::Path| {
        let new_key = new_key.to_str().unwrap();
        let args = [
            "--as-institution",
            &institution,
            "--transport-key",
            "--new-key",
            new_key,
        ];
        run_cli(&net, 0, &["keys", "rotate"], &admin, &args)
    };
    let sm2 = net.dir().join("sm2-transport.json");
    KeyFile::generate_for(CryptoSuite::Sm2Sm3)
        .unwrap()
        .save(&sm2)
        .unwrap();
    let refused = rotate(&sm2);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("must be an Ed25519 key"),
        "{stderr}"
    );
    let new = net.dir().join("new-transport.json");
    let new_key = KeyFile::generate().unwrap();
    new_key.save(&new).unwrap();
    let rotated = rotate(&new);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let (_, record) = net
        .get(0, &format!("/v1/institutions/{institution}"))
        .await
        .unwrap();
    assert_eq!(
        record["transport_key"].as_str(),
        Some(new_key.public_key().to_text().as_str()),
        "{record}"
    );

    // The auditor's way from a stopped node: `export` its data directory
    // (SM3 roots, SM2 certificates) to an archive, and replay it.
    let (_, status) = net.get(0, "/v1/status").await.unwrap();
    let rotated_by = status["height"].as_u64().unwrap();
    net.reach(2, rotated_by, 30, "the rotation on node 2").await;
    net.kill(2);
    let genesis_file = net.dir().join("genesis.json");
    let archive = net.dir().join("sm.archive");
    let export = std::process::Command::new(BIN)
        .args(["export", "--data"])
        .arg(net.nodes()[2].home.join("data"))
        .arg("--genesis")
        .arg(&genesis_file)
        .arg("--to")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let replayed = std::process::Command::new(BIN)
        .args(["audit", "replay", "--genesis"])
        .arg(&genesis_file)
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&replayed.stdout).to_string()
        + &String::from_utf8_lossy(&replayed.stderr);
    assert!(
        replayed.status.success() && text.contains("replay passed"),
        "{text}"
    );
}
