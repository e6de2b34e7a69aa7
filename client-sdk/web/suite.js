// The chain's crypto suite, as the app uses it: how keys and signatures are
// tagged and sized in BCS, the hash of every ledger digest, and how the
// patient's key is made, signs and verifies. A chain chooses its suite in
// genesis (GET /v1/status names it) and the app takes the matching one:
//
// - ed25519-sha256: WebCrypto's Ed25519 and SHA-256; the private key is a
//   non-extractable CryptoKey, so no script can read it out.
// - sm2-sm3: WebCrypto has neither SM2 nor SM3, so the app loads
//   app-crypto.wasm, which every node serves: the RustCrypto `sm2` and `sm3`
//   code the nodes themselves verify with, compiled to WebAssembly
//   (app-crypto/). The private key is then 32 bytes this page holds and
//   keeps in IndexedDB; docs/app.md says what that changes.

/** Ed25519 (tag 0, 32-byte keys) and SHA-256, through WebCrypto. */
export const ed25519Sha256 = {
  name: "ed25519-sha256",
  tag: 0,
  keyLength: 32,
  async digest(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  },
  /** A non-extractable key pair: `{keyPair, publicRaw}`. */
  async newKey() {
    const keyPair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    return { keyPair, publicRaw: new Uint8Array(await crypto.subtle.exportKey("raw", keyPair.publicKey)) };
  },
  async sign(key, message) {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.keyPair.privateKey, message));
  },
  async verify(publicRaw, signature, message) {
    try {
      const key = await crypto.subtle.importKey("raw", publicRaw, { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
    } catch {
      return false; // not a key WebCrypto takes
    }
  },
};

/**
 * SM2 (tag 1, 33-byte compressed keys, user id 1234567812345678) and SM3,
 * through the app-crypto module's exports (`instance.exports` of a
 * WebAssembly instance of app-crypto.wasm). The module and the page share
 * one buffer: the page writes a call's inputs there and reads its output
 * from the start (app-crypto/src/lib.rs).
 */
export function sm2Sm3(exports) {
  const x = exports;
  const size = x.medledger_io_bytes();
  const io = () => new Uint8Array(x.memory.buffer, x.medledger_io(), size);
  /** Writes `parts` one after another at the buffer's start. */
  function put(...parts) {
    const buffer = io();
    let at = 0;
    for (const part of parts) {
      buffer.set(part, at);
      at += part.length;
    }
  }
  const suite = {
    name: "sm2-sm3",
    tag: 1,
    keyLength: 33,
    async digest(bytes) {
      x.medledger_sm3_start();
      for (let at = 0; at < bytes.length; at += size) {
        const piece = bytes.subarray(at, at + size);
        put(piece);
        x.medledger_sm3_update(piece.length);
      }
      if (x.medledger_sm3_finish() !== 0) throw new Error("SM3 failed");
      return io().slice(0, 32);
    },
    /** Public key of a 32-byte secret, or null when the bytes are not a usable secret (d outside [1, n − 2]). */
    publicKeyOf(secret) {
      put(secret);
      return x.medledger_sm2_public_key() === 0 ? io().slice(0, 33) : null;
    },
    /** A new key: `{secret, publicRaw}`, the secret drawn from crypto.getRandomValues. */
    async newKey() {
      for (;;) {
        const secret = crypto.getRandomValues(new Uint8Array(32));
        const publicRaw = suite.publicKeyOf(secret);
        if (publicRaw) return { secret, publicRaw };
        // About one draw in 2^32 falls outside [1, n − 2]: draw again.
      }
    },
    async sign(key, message) {
      put(key.secret, message);
      // The module wipes the secret and the message from the buffer.
      if (x.medledger_sm2_sign(message.length) !== 0) throw new Error("this device's SM2 key cannot sign");
      return io().slice(0, 64);
    },
    async verify(publicRaw, signature, message) {
      if (publicRaw.length !== 33 || signature.length !== 64) return false;
      put(publicRaw, signature, message);
      return x.medledger_sm2_verify(message.length) === 0;
    },
  };
  return suite;
}

/**
 * Opening a records transfer sealed to a one-time key of this page, on
 * either suite (app-crypto/src/opener.rs: HPKE with ChaCha20-Poly1305,
 * which WebCrypto lacks, or the SM schedule), through the module's exports.
 * One transfer is open at a time; `start` replaces the one before.
 */
export function transferOpener(exports) {
  const x = exports;
  const size = x.medledger_io_bytes();
  const io = () => new Uint8Array(x.memory.buffer, x.medledger_io(), size);
  return {
    /** The X25519 public key of a 32-byte one-time secret. */
    x25519Public(secret) {
      io().set(secret);
      x.medledger_x25519_public();
      return io().slice(0, 32);
    },
    /** Starts opening transfer `transfer` (32 bytes) to `secret`, `enc` its encapsulated key; `sm` on an sm2-sm3 chain. */
    start(sm, secret, transfer, enc) {
      if (64 + enc.length > size) throw new Error("the encapsulated key is too long");
      const buffer = io();
      buffer.set(secret, 0);
      buffer.set(transfer, 32);
      buffer.set(enc, 64);
      // The module wipes the secret from the buffer.
      if (x.medledger_open_start(sm ? 1 : 0, enc.length) !== 0) throw new Error("the transfer's key is not usable");
    },
    /** The next chunk's plaintext, or an error when it does not open (altered, moved, replayed). */
    open(seq, item, last, sealed) {
      if (sealed.length < 16 || sealed.length > size) throw new Error("a chunk of an impossible size");
      io().set(sealed);
      if (x.medledger_open_chunk(BigInt(seq), item, last ? 1 : 0, sealed.length) !== 0) {
        throw new Error(`chunk ${seq} does not open: altered, moved or replayed`);
      }
      return io().slice(0, sealed.length - 16);
    },
    /** The started transfer's content salt (records rule 4). */
    salt() {
      if (x.medledger_open_salt() !== 0) throw new Error("no transfer is open");
      return io().slice(0, 32);
    },
    /** Drops the transfer's keys and wipes the buffer. */
    end() {
      x.medledger_open_end();
    },
  };
}

const modules = new Map();

/** The app-crypto module's exports, loaded from `base` once (a failed load is not kept: the next call tries again). */
export function loadAppCrypto(base = "") {
  if (!modules.has(base)) {
    const loading = WebAssembly.instantiateStreaming(fetch(`${base}/app/app-crypto.wasm`)).then(({ instance }) => instance.exports);
    loading.catch(() => modules.delete(base));
    modules.set(base, loading);
  }
  return modules.get(base);
}

const loaded = new Map();

/** The suite named `name` (from GET /v1/status), loading the SM module from `base` once when needed. */
export async function loadSuite(name, base = "") {
  if (name === "ed25519-sha256") return ed25519Sha256;
  if (name === "sm2-sm3") {
    if (!loaded.has(base)) {
      const loading = loadAppCrypto(base).then(sm2Sm3);
      loading.catch(() => loaded.delete(base));
      loaded.set(base, loading);
    }
    return loaded.get(base);
  }
  throw new Error(`this app does not know the crypto suite ${name}`);
}
