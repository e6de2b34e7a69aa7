//! The CI-sized simulation: two seeds keep every promise under every fault
//! profile (a validator SIGKILLed, one cut off, a slow node, a skewed clock,
//! a full disk, a lying proposer, a tampering holder, replays, duplicates
//! and races, a hostile member's attacks, then a minority split off and a
//! split into halves); seven validators, two of them lying and two at a
//! time down or cut off, keep the same promises; a holder built to skip the
//! grant check is caught by the invariants.

use std::path::PathBuf;
use std::time::Duration;

use medledger_simulation::{Faults, SimConfig, simulate};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(seed: u64) -> SimConfig {
    // The node binary sits next to this package's binary in the target directory
    // (`cargo test --workspace` builds both).
    let sim = PathBuf::from(env!("CARGO_BIN_EXE_medledger-sim"));
    let binary = sim.with_file_name("medledger");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p medledger --features fault-injection` (cargo test --workspace does)",
        binary.display()
    );
    SimConfig {
        seed,
        patients: 6,
        steps: 36,
        faults: Faults::ALL,
        holder_fault: None,
        soak: None,
        load: 5,
        interval: Duration::from_secs(10),
        binary,
        validators: 4,
        suite: medledger_contracts::crypto::CryptoSuite::Ed25519Sha256,
    }
}

/// The promises every run with all faults must report as checked.
fn assert_invariants(report: &medledger_simulation::Report, text: &str) {
    for invariant in [
        "all nodes agree on every committed header, during the run and at the end",
        "nothing acknowledged as committed was lost",
        "the auditor's replay from genesis passes",
        "no block from a validator that lies about state roots was committed",
        "no block commits while split into halves; after healing, blocks come again within the bound",
        "with f validators split off, the rest go on committing and the f commit nothing",
    ] {
        assert!(
            report.invariants.contains(invariant),
            "{invariant}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seeds_keep_every_promise_under_every_fault() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for seed in [1, 2] {
        let report = match simulate(&config(seed)).await {
            Ok(report) => report,
            Err(failure) => panic!("{failure}"),
        };
        let text = medledger_simulation::summary::render(&config(seed), &report);
        println!("{text}");
        assert!(report.committed() > 40, "{text}");
        let injected = |what: &str| report.faults.iter().any(|(_, f)| f.contains(what));
        for fault in [
            "SIGKILL",
            "cut off",
            "slowed",
            "clock of",
            "wrong state root",
            "alters records",
            "split off",
            "split into halves",
        ] {
            assert!(injected(fault), "{fault} was not injected:\n{text}");
        }
        // The full disk needs permission to mount a tmpfs; when refused, the report says so.
        assert!(
            injected("stopped itself") || injected("full disk NOT injected"),
            "{text}"
        );
        assert_invariants(&report, &text);
        assert!(
            report
                .invariants
                .contains("every fetch under an active grant delivered its manifest"),
            "{text}"
        );
        assert!(report.bytes.values().all(|b| *b > 0), "{text}");
        // The hostile member tried each of its attacks at least once, and
        // none succeeded (a success fails the run above).
        assert!(report.hostile.len() >= 6, "{text}");
        for attack in [
            "guardianship over an adult",
            "review it itself",
            "replay a patient's signed read",
            "download whole blocks",
            "leave no release",
            "flood new keys",
        ] {
            assert!(
                report
                    .hostile
                    .iter()
                    .any(|(_, a, outcome)| a.contains(attack) && !outcome.starts_with("not tried")),
                "{attack} was not attempted:\n{text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_validators_keep_every_promise_with_two_of_them_faulty() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut seven = config(1);
    seven.validators = 7;
    seven.steps = 30;
    let report = match simulate(&seven).await {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    };
    let text = medledger_simulation::summary::render(&seven, &report);
    println!("{text}");
    // f = 2: two validators lie about state roots for the whole run, and
    // the minority split off at the end is two.
    let liars = report
        .faults
        .iter()
        .filter(|(_, f)| f.contains("wrong state root"))
        .count();
    assert_eq!(liars, 2, "{text}");
    assert!(
        report
            .faults
            .iter()
            .any(|(_, f)| f.contains("(a minority of 2)")),
        "{text}"
    );
    assert_invariants(&report, &text);
}

/// A seed on the national-cryptography suite (SM2 keys and votes, SM3,
/// records sealed with SM4-GCM) keeps every promise under every fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_on_sm2_sm3_keeps_every_promise_under_every_fault() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut sm = config(3);
    sm.suite = medledger_contracts::crypto::CryptoSuite::Sm2Sm3;
    let report = match simulate(&sm).await {
        Ok(report) => report,
        Err(failure) => panic!("{failure}"),
    };
    let text = medledger_simulation::summary::render(&sm, &report);
    println!("{text}");
    assert!(report.committed() > 40, "{text}");
    assert_invariants(&report, &text);
    assert!(
        report
            .invariants
            .contains("every fetch under an active grant delivered its manifest"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_skips_the_grant_check_is_caught() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut broken = config(1);
    broken.steps = 40;
    broken.patients = 8;
    broken.faults = Faults::parse("kill").unwrap();
    broken.load = 0;
    broken.holder_fault = Some("skip-grant-check".into());
    let failure = simulate(&broken)
        .await
        .expect_err("the broken holder was not caught");
    assert!(
        failure.invariant == "a revocation stops every later release"
            || failure.invariant == "revocation stops access",
        "{failure}"
    );
    let block = failure.to_string();
    assert!(
        block.contains("seed:         1") && block.contains("--holder-fault skip-grant-check"),
        "{block}"
    );
}
