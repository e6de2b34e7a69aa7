//! Replays every committed corpus input through its target on stable Rust,
//! so CI runs what the fuzzers found and kept; checks the seeds still
//! decode and are in the corpus, and that each target has its libFuzzer
//! binary.

use std::path::{Path, PathBuf};

use medledger_fuzz::{TARGETS, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn corpus(name: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(name)
}

#[test]
fn every_corpus_input_runs_without_a_panic() {
    for target in TARGETS {
        let dir = corpus(target.name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no corpus", target.name);
        let mut decoded = 0;
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            if (target.run)(&bytes) {
                decoded += 1;
            }
        }
        println!(
            "{}: {} inputs, {decoded} past decoding",
            target.name,
            files.len()
        );
    }
}

#[test]
fn the_seeds_get_past_decoding_and_are_in_the_corpus() {
    let update = std::env::var_os("MEDLEDGER_UPDATE_CORPUS").is_some();
    for target in TARGETS {
        let seeds = seeds(target.name).unwrap();
        assert!(!seeds.is_empty(), "{} has no seeds", target.name);
        for (n, seed) in seeds.iter().enumerate() {
            assert!(
                (target.run)(seed),
                "seed {n} of {} does not get past decoding",
                target.name
            );
            let file = corpus(target.name).join(format!("seed-{n}"));
            if update {
                std::fs::create_dir_all(corpus(target.name)).unwrap();
                std::fs::write(&file, seed).unwrap();
            } else {
                assert_eq!(
                    std::fs::read(&file).ok().as_ref(),
                    Some(seed),
                    "{} is not the current seed: run MEDLEDGER_UPDATE_CORPUS=1 cargo test -p medledger-fuzz",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn each_target_has_its_libfuzzer_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("libfuzzer/Cargo.toml")).unwrap();
    for target in TARGETS {
        let source = fuzz_dir()
            .join("libfuzzer/fuzz_targets")
            .join(format!("{}.rs", target.name));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(
            text.contains(&format!("target(\"{}\")", target.name)),
            "{} does not run its target",
            source.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "fuzz/libfuzzer/Cargo.toml has no binary {}",
            target.name
        );
    }
}
