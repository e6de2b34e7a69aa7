//! The `medledger` binary as a person uses it: files in, messages out.

#![allow(missing_docs, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn medledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medledger"))
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn genesis_new_check_show_and_a_bad_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("consortium");
    let made = medledger(&["genesis", "new", "--out", out.to_str().unwrap()]);
    assert!(made.status.success(), "{}", text(&made));
    let genesis = out.join("genesis.json");
    let key = out.join("keys/admin.city-first-hospital.json");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key_dir_mode = std::fs::metadata(out.join("keys"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_dir_mode & 0o777, 0o700);
    let checked = medledger(&["genesis", "check", genesis.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(text(&checked).contains("4 validators (tolerates 1 faulty)"));
    let shown = medledger(&["genesis", "show", genesis.to_str().unwrap()]);
    assert!(text(&shown).contains("health-commission"));
    // Making a second consortium over the first is refused.
    let again = medledger(&["genesis", "new", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));

    let bad = std::fs::read_to_string(&genesis)
        .unwrap()
        .replacen("\"330100\"", "\"3301\"", 1);
    let bad_path = dir.path().join("bad.json");
    std::fs::write(&bad_path, bad).unwrap();
    let refused = medledger(&["genesis", "check", bad_path.to_str().unwrap()]);
    assert!(!refused.status.success());
    let message = text(&refused);
    assert!(
        message.contains("bad.json") && message.contains("institutions[0].region_code"),
        "{message}"
    );
}

/// A consortium on the national-cryptography suite: SM2 key files, an
/// Ed25519 transport key per institution (its node's libp2p identity), a
/// genesis that checks and names its suite.
#[test]
fn genesis_new_on_sm2_sm3_writes_sm2_keys_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sm");
    let made = medledger(&[
        "genesis",
        "new",
        "--out",
        out.to_str().unwrap(),
        "--crypto-suite",
        "sm2-sm3",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    let key = std::fs::read_to_string(out.join("keys/node.city-first-hospital.json")).unwrap();
    assert!(key.contains("\"scheme\": \"sm2\""), "{key}");
    let transport =
        std::fs::read_to_string(out.join("keys/transport.city-first-hospital.json")).unwrap();
    assert!(transport.contains("\"scheme\": \"ed25519\""), "{transport}");
    let genesis = std::fs::read_to_string(out.join("genesis.json")).unwrap();
    assert!(genesis.contains("\"sm2-sm3\"") && genesis.contains("\"sm2:"));
    let checked = medledger(&[
        "genesis",
        "check",
        out.join("genesis.json").to_str().unwrap(),
    ]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains("crypto suite:   sm2-sm3"),
        "{}",
        text(&checked)
    );
    let unknown = medledger(&[
        "genesis",
        "new",
        "--out",
        dir.path().join("x").to_str().unwrap(),
        "--crypto-suite",
        "rsa",
    ]);
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("unknown crypto suite"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn the_committed_example_checks() {
    // Resolved at run time: the target directory may have been built from another checkout.
    let example = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../genesis/examples/city.json");
    let checked = medledger(&["genesis", "check", &example.to_string_lossy()]);
    assert!(checked.status.success(), "{}", text(&checked));
}

#[test]
fn keys_new_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("me.json");
    let made = medledger(&["keys", "new", "--out", path.to_str().unwrap()]);
    assert!(made.status.success(), "{}", text(&made));
    let shown = medledger(&["keys", "show", path.to_str().unwrap()]);
    assert!(
        text(&shown).contains("public key:               ed25519:"),
        "{}",
        text(&shown)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = medledger(&["keys", "show", path.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("chmod 600"), "{}", text(&refused));
}

#[test]
fn keys_new_on_sm2_sm3_makes_an_sm2_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("me.json");
    let made = medledger(&[
        "keys",
        "new",
        "--out",
        path.to_str().unwrap(),
        "--crypto-suite",
        "sm2-sm3",
    ]);
    assert!(made.status.success(), "{}", text(&made));
    let shown = medledger(&["keys", "show", path.to_str().unwrap()]);
    assert!(
        text(&shown).contains("public key:               sm2:"),
        "{}",
        text(&shown)
    );
}

#[test]
fn demo_tells_the_story_and_refuses_after_revocation() {
    let story = demo_story(&[]);
    assert!(story.contains("crypto suite ed25519-sha256"), "{story}");
    assert!(story.contains(" bytes  sha256 "), "{story}");
}

/// The same story on the national-cryptography suite: SM2 signatures and
/// votes, SM3 hashes and proofs, records sealed with SM2 key agreement,
/// HKDF-SM3 and SM4-GCM, their content hashes SM3.
#[test]
fn demo_tells_the_story_on_sm2_sm3() {
    let story = demo_story(&["--crypto-suite", "sm2-sm3"]);
    assert!(story.contains("crypto suite sm2-sm3"), "{story}");
    assert!(story.contains(" bytes  sm3 "), "{story}");
}

/// Runs `medledger demo` with `args` and checks every step of the story.
fn demo_story(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let consortium = dir.path().join("consortium");
    let mut all = vec!["demo", "--dir", consortium.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = medledger(&all);
    let story = text(&output);
    assert!(output.status.success(), "{story}");
    for step in [
        "all four validators are committing blocks",
        "trusting only genesis: Active",
        "→ authorized",
        "doctor fetches them from the first hospital",
        "→ 2 resources, sealed end to end, hashes match the release",
        "already served",
        "the light client now proves it Revoked",
        "→ denied",
        "commission attests second hospital's licence",
        "patient asks for their own lab reports",
        "patient downloads them",
        "observation-hiv-test.json comes too",
        "every node holds the same ledger",
        "inclusion proof ✓",
        "Revoked (JMT proof",
    ] {
        assert!(story.contains(step), "missing {step:?} in:\n{story}");
    }
    story
}

/// `bench-replay` on the national-cryptography suite: an archive of SM2-
/// signed transactions, certified with SM2 votes, replayed in full.
#[test]
fn bench_replay_runs_on_sm2_sm3() {
    let output = medledger(&[
        "bench-replay",
        "--transactions",
        "200",
        "--block-size",
        "50",
        "--patients",
        "50",
        "--crypto-suite",
        "sm2-sm3",
    ]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("\"crypto_suite\":\"sm2-sm3\""),
        "{printed}"
    );
    assert!(printed.contains("\"transactions\":200"), "{printed}");
}

/// `bench-crypto` runs every primitive of both suites through the ledger's
/// and the gateway's code and prints one row each, the SM rows with their
/// ratio (the figures themselves are not checked: this machine is shared).
/// `bench-records` at its smallest runs end to end and prints its table:
/// its figures are real fetches through the gateways, so a broken
/// benchmark shows here, not when someone next measures.
#[test]
fn bench_records_runs_and_prints_its_figures() {
    let output = medledger(&[
        "bench-records",
        "--small",
        "3",
        "--small-kib",
        "1",
        "--rounds",
        "1",
        "--large-mib",
        "1",
    ]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    let row = |name: &str| {
        printed
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row {name:?} in\n{printed}"))
            .to_string()
    };
    for rate in [
        "small (1 KiB) resources per second",
        "large (1 MiB) study: MB/s",
    ] {
        let line = row(rate);
        let value: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert!(value > 0.0, "{line}");
    }
    assert!(row("small: fetches × resources").ends_with("1 × 3"));
    row("holder node: peak RSS growth");
}

#[test]
fn bench_crypto_prints_a_row_for_each_primitive_of_both_suites() {
    let output = medledger(&["bench-crypto", "--rounds", "1", "--mib", "1"]);
    let printed = text(&output);
    assert!(output.status.success(), "{printed}");
    for row in [
        "Ed25519 sign",
        "SM2 sign",
        "Ed25519 verify, key prepared",
        "SM2 verify, key prepared",
        "Ed25519 verify, key from bytes",
        "SM2 verify, key from bytes",
        "Ed25519 verify, batch of 64",
        "SM2 verify, batch of 64",
        "SHA-256",
        "SM3",
        "HPKE ChaCha20-Poly1305",
        "SM2 + HKDF-SM3 + SM4-GCM",
    ] {
        let line = printed
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{printed}"));
        let numbers: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.replace(',', "").parse().ok())
            .filter(|n: &f64| *n > 0.0)
            .collect();
        let expected = if row.starts_with("SM") || row.contains("SM4") {
            2
        } else {
            1
        };
        assert!(numbers.len() >= expected, "{line}");
    }
}
