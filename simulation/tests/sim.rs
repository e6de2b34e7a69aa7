//! The CI-sized simulation: two seeds keep every promise under a validator
//! SIGKILLed and restarted; a holder built to skip the grant check is caught
//! by the invariants.

use std::path::PathBuf;

use medledger_simulation::{SimConfig, simulate};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(seed: u64) -> SimConfig {
    // The node binary sits next to this package's binary in the target directory
    // (`cargo test --workspace` builds both).
    let sim = PathBuf::from(env!("CARGO_BIN_EXE_medledger-sim"));
    let binary = sim.with_file_name("medledger");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p medledger-node` (cargo test --workspace does)",
        binary.display()
    );
    SimConfig {
        seed,
        patients: 6,
        steps: 30,
        kill_faults: true,
        partitions: true,
        holder_fault: None,
        binary,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seeds_keep_every_promise_through_a_killed_validator() {
    let _turn = ONE_AT_A_TIME.lock().await;
    for seed in [1, 2] {
        match simulate(&config(seed)).await {
            Ok(report) => {
                assert!(report.committed > 20, "{report:?}");
                assert!(
                    report.faults.iter().any(|f| f.contains("SIGKILL")),
                    "{report:?}"
                );
                assert!(
                    report.faults.iter().any(|f| f.contains("cut")),
                    "{report:?}"
                );
                assert_eq!(report.invariants.len(), 8, "{report:?}");
            }
            Err(failure) => panic!("{failure}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_skips_the_grant_check_is_caught() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut broken = config(1);
    broken.steps = 40;
    broken.patients = 8;
    broken.holder_fault = Some("skip-grant-check".into());
    let failure = simulate(&broken)
        .await
        .expect_err("the broken holder was not caught");
    assert_eq!(
        failure.invariant, "a revocation stops every later release",
        "{failure}"
    );
    let block = failure.to_string();
    assert!(
        block.contains("seed:       1") && block.contains("--holder-fault skip-grant-check"),
        "{block}"
    );
}
