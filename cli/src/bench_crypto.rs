//! `medledger bench-crypto`: the two crypto suites' primitives side by side
//! on one core — signing and verifying 32-byte digests through the ledger's
//! code (`contracts::crypto`), hashing, and sealing 256 KiB record chunks
//! through the `transfer` crate's sealers (HPKE with ChaCha20-Poly1305, the
//! gateway's; and the SM2/HKDF-SM3/SM4-GCM one, not used yet). Each row is the median of
//! `--rounds` timed rounds; the last column is the SM figure over its
//! Ed25519/SHA-256/ChaCha20 counterpart.

use std::time::Instant;

use anyhow::Context as _;
use medledger_contracts::crypto::{PublicKey, SecretKey, Signature, verify_batch};
use medledger_contracts::encoding::{Hash32, HashFunction};
use medledger_transfer::sm::{SmOneTimeKey, SmSealer};
use medledger_transfer::{CHUNK_BYTES, OneTimeKey, Sealer};

use super::bench::percentile;

/// Settings from the command line.
pub struct CryptoBenchOptions {
    /// Timed rounds per row.
    pub rounds: usize,
    /// MiB hashed or sealed per round.
    pub mib: usize,
}

const SIGNATURES_PER_ROUND: usize = 256;
const BATCH: usize = 64;

/// Runs the bench and prints its table.
pub fn run(options: CryptoBenchOptions) -> anyhow::Result<()> {
    let rounds = options.rounds.max(1);
    let bytes = options.mib.max(1) * 1024 * 1024;
    let messages: Vec<Hash32> = (0..SIGNATURES_PER_ROUND)
        .map(|i| HashFunction::Sha256.tagged_hash(b"bench", &[&(i as u64).to_le_bytes()]))
        .collect();
    let ed = SecretKey::from_seed([7; 32]);
    let sm2 = SecretKey::sm2_from_bytes([7; 32]).context("an SM2 key")?;

    let mut rows: Vec<(&str, f64, &str, Option<f64>)> = Vec::new();
    let mut pair = |name_ed: &'static str,
                    name_sm: &'static str,
                    unit: &'static str,
                    ed_rate: f64,
                    sm_rate: f64| {
        rows.push((name_ed, ed_rate, unit, None));
        rows.push((name_sm, sm_rate, unit, Some(sm_rate / ed_rate)));
    };

    let sign_rate = |key: &SecretKey| {
        median_rate(rounds, SIGNATURES_PER_ROUND as f64, || {
            for message in &messages {
                std::hint::black_box(key.sign(message));
            }
            Ok(())
        })
    };
    pair(
        "Ed25519 sign",
        "SM2 sign",
        "/s",
        sign_rate(&ed)?,
        sign_rate(&sm2)?,
    );

    let signed = |key: &SecretKey| -> Vec<(Hash32, Signature)> {
        messages.iter().map(|m| (*m, key.sign(m))).collect()
    };
    let (ed_signed, sm_signed) = (signed(&ed), signed(&sm2));
    let verify_prepared = |key: &PublicKey, signed: &[(Hash32, Signature)]| {
        let prepared = key.prepare().context("a valid key")?;
        median_rate(rounds, signed.len() as f64, || {
            for (message, signature) in signed {
                prepared.verify(message, signature)?;
            }
            Ok(())
        })
    };
    pair(
        "Ed25519 verify, key prepared",
        "SM2 verify, key prepared",
        "/s",
        verify_prepared(&ed.public_key(), &ed_signed)?,
        verify_prepared(&sm2.public_key(), &sm_signed)?,
    );
    let verify_cold = |key: &PublicKey, signed: &[(Hash32, Signature)]| {
        median_rate(rounds, signed.len() as f64, || {
            for (message, signature) in signed {
                key.verify(message, signature)?;
            }
            Ok(())
        })
    };
    pair(
        "Ed25519 verify, key from bytes",
        "SM2 verify, key from bytes (incl. Z)",
        "/s",
        verify_cold(&ed.public_key(), &ed_signed)?,
        verify_cold(&sm2.public_key(), &sm_signed)?,
    );
    let batch_rate = |key: &PublicKey, signed: &[(Hash32, Signature)]| {
        let prepared = key.prepare().context("a valid key")?;
        let items: Vec<_> = signed
            .iter()
            .take(BATCH)
            .map(|(m, s)| (prepared.clone(), *m, *s))
            .collect();
        median_rate(rounds, (BATCH * 4) as f64, || {
            for _ in 0..4 {
                anyhow::ensure!(verify_batch(&items), "a batch of good signatures failed");
            }
            Ok(())
        })
    };
    pair(
        "Ed25519 verify, batch of 64",
        "SM2 verify, batch of 64 (one by one)",
        "/s",
        batch_rate(&ed.public_key(), &ed_signed)?,
        batch_rate(&sm2.public_key(), &sm_signed)?,
    );

    let data = vec![0x5au8; bytes];
    let megabytes = bytes as f64 / 1e6;
    let hash_rate = |function: HashFunction| {
        median_rate(rounds, megabytes, || {
            std::hint::black_box(function.tagged_hash(b"bench", &[&data]));
            Ok(())
        })
    };
    pair(
        "SHA-256",
        "SM3",
        "MB/s",
        hash_rate(HashFunction::Sha256)?,
        hash_rate(HashFunction::Sm3)?,
    );

    let transfer = Hash32([1; 32]);
    let chunks = bytes.div_ceil(CHUNK_BYTES);
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let hpke_key = OneTimeKey::generate().context("a one-time key")?;
    let hpke_rate = median_rate(rounds, megabytes, || {
        let (mut sealer, _) = Sealer::new(&hpke_key.public(), transfer)?;
        for seq in 0..chunks {
            std::hint::black_box(sealer.seal(seq as u64, 0, seq + 1 == chunks, &chunk)?);
        }
        Ok(())
    })?;
    let sm_key = SmOneTimeKey::generate().context("a one-time key")?;
    let sm_rate = median_rate(rounds, megabytes, || {
        let (mut sealer, _) = SmSealer::new(&sm_key.public(), transfer)?;
        for seq in 0..chunks {
            std::hint::black_box(sealer.seal(seq as u64, 0, seq + 1 == chunks, &chunk)?);
        }
        Ok(())
    })?;
    pair(
        "seal 256 KiB chunks: HPKE ChaCha20-Poly1305",
        "seal 256 KiB chunks: SM2 + HKDF-SM3 + SM4-GCM",
        "MB/s",
        hpke_rate,
        sm_rate,
    );

    println!(
        "crypto primitives, one core, median of {rounds} rounds ({SIGNATURES_PER_ROUND} signatures or {} MiB per round{})",
        options.mib.max(1),
        if cfg!(debug_assertions) {
            "; DEBUG BUILD: use --release for figures"
        } else {
            ""
        }
    );
    println!(
        "{:<48} {:>14} {:>6} {:>10}",
        "primitive", "median", "unit", "SM / other"
    );
    for (name, rate, unit, ratio) in rows {
        let ratio = ratio.map_or(String::new(), |r| format!("{r:.2}"));
        println!("{name:<48} {:>14} {unit:>6} {ratio:>10}", group(rate));
    }
    Ok(())
}

/// The median over `rounds` of `work / seconds` for one call of `round`.
fn median_rate(
    rounds: usize,
    work: f64,
    mut round: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    // One untimed round warms caches and lazily built tables.
    round()?;
    let mut rates = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        round()?;
        rates.push(work / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(percentile(&rates, 50.0))
}

/// A rate with thousands separated, one decimal below 100.
fn group(rate: f64) -> String {
    if rate < 100.0 {
        return format!("{rate:.1}");
    }
    let digits = format!("{:.0}", rate);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
