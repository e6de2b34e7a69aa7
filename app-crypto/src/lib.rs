//! SM2 signing and SM3 hashing for the patient app on an `sm2-sm3` chain,
//! and the opening of a records transfer on either suite ([`opener`]),
//! compiled to WebAssembly and served by every node at `/app/app-crypto.wasm`.
//!
//! Browsers' WebCrypto has no SM2 or SM3, so on such a chain the app signs
//! with this module: the same RustCrypto `sm2` and `sm3` crates the nodes
//! verify with, and the same rules as `contracts::crypto` (user id
//! `1234567812345678` in `Z`; a secret `d` only in `[1, n - 2]`; RFC 6979
//! nonces, so signing needs no entropy inside WebAssembly). The host tests
//! below check both against `contracts`.
//!
//! The interface is plain WebAssembly exports around one shared buffer, so
//! the app needs no generated glue: the page writes inputs into the buffer,
//! calls, and reads the output back; each function returns 0 on success
//! (`client-sdk/web/suite.js` is the other side).

pub mod opener;

use sm2::dsa::signature::{Signer as _, Verifier as _};
use sm2::elliptic_curve::sec1::ToEncodedPoint as _;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// The signer-identity user id in SM2's `Z` (GB/T 32918.2's default, as
/// `contracts::crypto::SM2_USER_ID`).
pub const SM2_USER_ID: &str = "1234567812345678";

/// Why an operation failed (the exports return its code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Failure {
    /// The 32 bytes are not a usable SM2 secret (`d` outside `[1, n - 2]`).
    BadSecret = 1,
    /// The public key is not a compressed point of the curve.
    BadPublicKey = 2,
    /// The signature does not verify (or is not two scalars in range).
    BadSignature = 3,
}

fn signing_key(secret: &[u8; 32]) -> Result<sm2::dsa::SigningKey, Failure> {
    let d = sm2::NonZeroScalar::try_from(secret.as_slice()).map_err(|_| Failure::BadSecret)?;
    // d = n - 1 has no inverse of 1 + d, which SM2 signing needs.
    if bool::from((*d + sm2::Scalar::ONE).is_zero()) {
        return Err(Failure::BadSecret);
    }
    sm2::dsa::SigningKey::from_nonzero_scalar(SM2_USER_ID, d).map_err(|_| Failure::BadSecret)
}

/// The compressed public key (33 bytes) of the secret `d`.
pub fn public_key(secret: &[u8; 32]) -> Result<[u8; 33], Failure> {
    let key = signing_key(secret)?;
    let point = key.verifying_key().as_affine().to_encoded_point(true);
    let mut out = [0u8; 33];
    out.copy_from_slice(point.as_bytes());
    Ok(out)
}

/// The SM2 signature `r ‖ s` of `message` (for the ledger, always a 32-byte digest).
pub fn sign(secret: &[u8; 32], message: &[u8]) -> Result<[u8; 64], Failure> {
    let key = signing_key(secret)?;
    // Fails only if RFC 6979's nonce gives r = 0, r + k = n or s = 0.
    let signature: sm2::dsa::Signature = key.try_sign(message).map_err(|_| Failure::BadSecret)?;
    Ok(signature.to_bytes())
}

/// Whether `signature` (`r ‖ s`) is `public`'s over `message`.
pub fn verify(public: &[u8; 33], message: &[u8], signature: &[u8; 64]) -> Result<(), Failure> {
    let key = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_USER_ID, public)
        .map_err(|_| Failure::BadPublicKey)?;
    let signature =
        sm2::dsa::Signature::from_bytes(signature).map_err(|_| Failure::BadSignature)?;
    key.verify(message, &signature)
        .map_err(|_| Failure::BadSignature)
}

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    use sm3::Digest as _;
    sm3::Sm3::digest(data).into()
}

// --- WebAssembly exports ---------------------------------------------------
//
// The module and the page share one buffer, `IO` (its address from
// `medledger_io`, its length from `medledger_io_bytes`): the page writes a
// call's inputs there, calls, and reads the output from its start. So the
// only unsafe code here is the attribute that exports each function under its
// own name; nothing dereferences a pointer the page chose.

/// Bytes in the shared buffer: a chunk of SM3 input, a call's inputs, or a
/// sealed records chunk (256 KiB and its tag; `transfer::CHUNK_BYTES`)
/// with room to spare.
pub const IO_BYTES: usize = 320 * 1024;

static IO: Mutex<[u8; IO_BYTES]> = Mutex::new([0; IO_BYTES]);
static HASHER: Mutex<Option<sm3::Sm3>> = Mutex::new(None);
static OPENER: Mutex<Option<opener::Opener>> = Mutex::new(None);

/// A code for "the one-time secret or the encapsulated key is not usable".
const BAD_TRANSFER_KEY: i32 = 6;
/// A code for "the chunk does not open" (altered, moved, replayed).
const BAD_CHUNK: i32 = 7;
/// A code for "no transfer was started".
const NO_TRANSFER: i32 = 8;

/// A code for "the length given does not fit the buffer".
const TOO_LONG: i32 = 4;
/// A code for "no SM3 digest was started".
const NOT_STARTED: i32 = 5;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing here panics while holding a lock (in WebAssembly a panic
    // aborts the module anyway); on the host the data is plain bytes and
    // still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `f` on the shared buffer (the exports, and the tests in place of the page).
pub fn with_io<R>(f: impl FnOnce(&mut [u8; IO_BYTES]) -> R) -> R {
    f(&mut lock(&IO))
}

fn code(result: Result<(), Failure>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(failure) => failure as i32,
    }
}

/// The shared buffer's address in the module's memory.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_io() -> *mut u8 {
    lock(&IO).as_mut_ptr()
}

/// The shared buffer's length.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_io_bytes() -> usize {
    IO_BYTES
}

/// Starts an SM3 digest.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_sm3_start() {
    use sm3::Digest as _;
    *lock(&HASHER) = Some(sm3::Sm3::new());
}

/// Adds the buffer's first `len` bytes to the digest started.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_sm3_update(len: usize) -> i32 {
    use sm3::Digest as _;
    if len > IO_BYTES {
        return TOO_LONG;
    }
    let mut hasher = lock(&HASHER);
    let Some(hasher) = hasher.as_mut() else {
        return NOT_STARTED;
    };
    with_io(|io| hasher.update(&io[..len]));
    0
}

/// Finishes the digest, writing its 32 bytes to the buffer's start.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_sm3_finish() -> i32 {
    use sm3::Digest as _;
    let Some(hasher) = lock(&HASHER).take() else {
        return NOT_STARTED;
    };
    let digest: [u8; 32] = hasher.finalize().into();
    with_io(|io| io[..32].copy_from_slice(&digest));
    0
}

/// The public key (33 bytes, compressed) of the secret in the buffer's
/// first 32 bytes, written over it; 1 if those bytes are not a usable secret.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_sm2_public_key() -> i32 {
    with_io(|io| {
        let secret = Zeroizing::new(io[..32].try_into().unwrap_or([0; 32]));
        io[..32].fill(0);
        code(public_key(&secret).map(|key| io[..33].copy_from_slice(&key)))
    })
}

/// Signs the `len` bytes after the secret (buffer bytes 32..32 + len) with
/// the secret (bytes 0..32), writing `r ‖ s` to bytes 0..64; the secret
/// and the message are wiped from the buffer.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_sm2_sign(len: usize) -> i32 {
    if len > IO_BYTES - 32 {
        return TOO_LONG;
    }
    with_io(|io| {
        let secret = Zeroizing::new(io[..32].try_into().unwrap_or([0; 32]));
        let result = sign(&secret, &io[32..32 + len]);
        io[..32 + len].fill(0);
        code(result.map(|signature| io[..64].copy_from_slice(&signature)))
    })
}

/// 0 if the signature in buffer bytes 33..97 is the key's in bytes 0..33
/// (compressed) over the `len` bytes from 97; 2 for a key off the curve, 3
/// for a signature that does not verify.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_sm2_verify(len: usize) -> i32 {
    if len > IO_BYTES - 97 {
        return TOO_LONG;
    }
    with_io(|io| {
        let public: [u8; 33] = io[..33].try_into().unwrap_or([0; 33]);
        let signature: [u8; 64] = io[33..97].try_into().unwrap_or([0; 64]);
        code(verify(&public, &io[97..97 + len], &signature))
    })
}

/// The X25519 public key of the one-time secret in the buffer's first 32
/// bytes, written over it.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_x25519_public() -> i32 {
    with_io(|io| {
        let secret = Zeroizing::new(io[..32].try_into().unwrap_or([0; 32]));
        io[..32].copy_from_slice(&opener::x25519_public(&secret));
        0
    })
}

/// Starts opening a transfer: buffer bytes 0..32 the one-time secret
/// (wiped), 32..64 the transfer id, then `enc_len` bytes of the encapsulated
/// key; `sm` 0 for HPKE (`ed25519-sha256`), 1 for the SM schedule.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_open_start(sm: u32, enc_len: usize) -> i32 {
    if enc_len > IO_BYTES - 64 {
        return TOO_LONG;
    }
    let started = with_io(|io| {
        let secret = Zeroizing::new(io[..32].try_into().unwrap_or([0; 32]));
        io[..32].fill(0);
        let transfer: [u8; 32] = io[32..64].try_into().unwrap_or([0; 32]);
        let enc = &io[64..64 + enc_len];
        if sm == 0 {
            opener::Opener::hpke_transfer(&secret, enc, &transfer)
        } else {
            opener::Opener::sm_transfer(&secret, enc, &transfer)
        }
    });
    match started {
        Ok(opener) => {
            *lock(&OPENER) = Some(opener);
            0
        }
        Err(_) => BAD_TRANSFER_KEY,
    }
}

/// Opens the started transfer's next chunk, its `len` sealed bytes at the
/// buffer's start, numbered `seq`, of item `item`, `last` 1 if it ends the
/// item: the plaintext (`len` - 16 bytes) replaces it.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_open_chunk(seq: u64, item: u32, last: u32, len: usize) -> i32 {
    if len > IO_BYTES {
        return TOO_LONG;
    }
    let mut opener = lock(&OPENER);
    let Some(opener) = opener.as_mut() else {
        return NO_TRANSFER;
    };
    with_io(
        |io| match opener.open_chunk(seq, item, last == 1, &io[..len]) {
            Ok(plain) => {
                io[..plain.len()].copy_from_slice(&plain);
                0
            }
            Err(_) => BAD_CHUNK,
        },
    )
}

/// Ends the started transfer: its keys are dropped (and wiped) and the
/// buffer, which held its last plaintext, is zeroed.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_open_end() {
    lock(&OPENER).take();
    with_io(|io| io.fill(0));
}

/// The started transfer's content salt (records rule 4), to the buffer's
/// first 32 bytes.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn medledger_open_salt() -> i32 {
    let opener = lock(&OPENER);
    let Some(opener) = opener.as_ref() else {
        return NO_TRANSFER;
    };
    match opener.content_salt() {
        Ok(salt) => with_io(|io| {
            io[..32].copy_from_slice(&salt);
            0
        }),
        Err(_) => BAD_TRANSFER_KEY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medledger_contracts::crypto::{CryptoSuite, PublicKey, SecretKey, Signature};
    use medledger_contracts::encoding::Hash32;

    fn bytes<const N: usize>(text: &str) -> [u8; N] {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    #[test]
    fn sm3_matches_the_standards_examples() {
        // GB/T 32905 appendix A.
        assert_eq!(
            hex::encode(sm3(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(sm3("abcd".repeat(16).as_bytes())),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn keys_and_signatures_agree_with_the_ledgers_both_ways() {
        for seed in 1u8..=20 {
            let secret = [seed; 32];
            let ledger = SecretKey::sm2_from_bytes(secret).unwrap();
            let PublicKey::Sm2(ledger_public) = ledger.public_key() else {
                panic!("an SM2 key")
            };
            assert_eq!(public_key(&secret).unwrap(), ledger_public);
            let digest: Hash32 = CryptoSuite::Sm2Sm3.hash_function().digest(&[seed]);
            // Made here, verified by the ledger's code.
            let made_here = sign(&secret, &digest.0).unwrap();
            let as_ledger = Signature::of_scheme(&ledger.public_key(), made_here);
            assert!(ledger.public_key().verify(&digest, &as_ledger).is_ok());
            // Made by the ledger's code, verified here.
            let Signature::Sm2 { r, s } = ledger.sign(&digest) else {
                panic!("an SM2 signature")
            };
            let mut theirs = [0u8; 64];
            theirs[..32].copy_from_slice(&r);
            theirs[32..].copy_from_slice(&s);
            assert_eq!(verify(&ledger_public, &digest.0, &theirs), Ok(()));
            let mut altered = theirs;
            altered[63] ^= 1;
            assert_eq!(
                verify(&ledger_public, &digest.0, &altered),
                Err(Failure::BadSignature)
            );
        }
    }

    #[test]
    fn unusable_secrets_and_keys_are_refused() {
        // 0, n - 1 and n (the group order of GB/T 32918.5's curve).
        let n = bytes::<32>("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123");
        let mut n_minus_1 = n;
        n_minus_1[31] -= 1;
        for bad in [[0u8; 32], n_minus_1, n, [0xff; 32]] {
            assert_eq!(public_key(&bad), Err(Failure::BadSecret));
            assert!(SecretKey::sm2_from_bytes(bad).is_err());
        }
        let mut off_curve = [0u8; 33];
        off_curve[0] = 2;
        off_curve[32] = 5; // x = 5 is not on the curve (checked below)
        let result = verify(&off_curve, b"m", &[1; 64]);
        assert!(matches!(
            result,
            Err(Failure::BadPublicKey | Failure::BadSignature)
        ));
    }

    #[test]
    fn the_exports_work_through_the_shared_buffer() {
        // (The page's side, done here through `with_io`.)
        with_io(|io| io[..32].fill(7));
        assert_eq!(medledger_sm2_public_key(), 0);
        let public: [u8; 33] = with_io(|io| io[..33].try_into().unwrap());
        assert_eq!(public, public_key(&[7; 32]).unwrap());
        with_io(|io| {
            io[..32].fill(7);
            io[32..72].fill(9);
        });
        assert_eq!(medledger_sm2_sign(40), 0);
        let signature: [u8; 64] = with_io(|io| {
            // The signature is written over the secret; the message is wiped.
            assert!(io[64..72].iter().all(|b| *b == 0));
            io[..64].try_into().unwrap()
        });
        assert_eq!(verify(&public, &[9; 40], &signature), Ok(()));
        let load = |message: u8| {
            with_io(|io| {
                io[..33].copy_from_slice(&public);
                io[33..97].copy_from_slice(&signature);
                io[97..137].fill(message);
            })
        };
        load(9);
        assert_eq!(medledger_sm2_verify(40), 0);
        load(8);
        assert_eq!(medledger_sm2_verify(40), 3);
        assert_eq!(medledger_sm2_sign(IO_BYTES), TOO_LONG);
        // SM3 in pieces equals SM3 at once; without a start, update refuses.
        assert_eq!(medledger_sm3_finish(), NOT_STARTED);
        medledger_sm3_start();
        for piece in [&b"ab"[..], b"c"] {
            with_io(|io| io[..piece.len()].copy_from_slice(piece));
            assert_eq!(medledger_sm3_update(piece.len()), 0);
        }
        assert_eq!(medledger_sm3_update(IO_BYTES + 1), TOO_LONG);
        assert_eq!(medledger_sm3_finish(), 0);
        assert_eq!(with_io(|io| io[..32].to_vec()), sm3(b"abc"));

        // A records transfer, sealed as the node seals it (a full 256 KiB
        // chunk, then a short one), opened through the buffer; the secret
        // is wiped, and a chunk opened again does not open.
        use medledger_transfer::{CHUNK_BYTES, RecipientKey, TransferSealer};
        assert_eq!(medledger_open_chunk(0, 0, 0, 16), NO_TRANSFER);
        with_io(|io| io[..32].fill(0x33));
        assert_eq!(medledger_x25519_public(), 0);
        let x25519: [u8; 32] = with_io(|io| io[..32].try_into().unwrap());
        let transfer = Hash32([4; 32]);
        let (mut sealer, enc) =
            TransferSealer::new(&RecipientKey::X25519(x25519), transfer).unwrap();
        let big = vec![5u8; CHUNK_BYTES];
        let chunks = [
            sealer.seal(0, 0, false, &big).unwrap(),
            sealer.seal(1, 0, true, b"end").unwrap(),
        ];
        with_io(|io| {
            io[..32].fill(0x33);
            io[32..64].copy_from_slice(&transfer.0);
            io[64..64 + enc.len()].copy_from_slice(&enc);
        });
        assert_eq!(medledger_open_start(0, enc.len()), 0);
        assert!(with_io(|io| io[..32].iter().all(|b| *b == 0)));
        for (chunk, plain) in chunks.iter().zip([&big[..], b"end"]) {
            with_io(|io| io[..chunk.sealed.len()].copy_from_slice(&chunk.sealed));
            let last = u32::from(chunk.last_of_item);
            assert_eq!(
                medledger_open_chunk(chunk.seq, chunk.item, last, chunk.sealed.len()),
                0
            );
            assert!(with_io(|io| &io[..plain.len()] == plain));
        }
        assert_eq!(medledger_open_salt(), 0);
        let salt: [u8; 32] = with_io(|io| io[..32].try_into().unwrap());
        assert_eq!(salt, sealer.content_salt().unwrap());
        with_io(|io| io[..chunks[1].sealed.len()].copy_from_slice(&chunks[1].sealed));
        assert_eq!(
            medledger_open_chunk(1, 0, 1, chunks[1].sealed.len()),
            BAD_CHUNK
        );
        medledger_open_end();
        assert_eq!(medledger_open_salt(), NO_TRANSFER);
        assert!(with_io(|io| io.iter().all(|b| *b == 0)));
    }
}
