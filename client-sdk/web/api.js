// The patient's key (in IndexedDB: on an Ed25519 chain a non-extractable
// WebCrypto key, on an SM2 chain its 32 secret bytes, see suite.js) and the
// node's API: signed reads, signed transactions, live events.
import * as bcs from "./bcs.js";
import { loadSuite } from "./suite.js";

const DB = "medledger";
const STORE = "keys";

function db() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function idb(mode, action) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, mode);
    const request = action(tx.objectStore(STORE));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * The stored key, if any: {suite, publicRaw, patient} with {keyPair} (Ed25519)
 * or {secret} (SM2). A record from before suites were stored is Ed25519.
 */
export async function loadKey() {
  const record = (await idb("readonly", (s) => s.get("patient"))) ?? null;
  if (record && !record.suite) record.suite = "ed25519-sha256";
  return record;
}

/** A new key of the chain's suite: {suite, publicRaw} and its private part. */
async function newKeyPair() {
  const suite = bcs.currentSuite();
  return { suite: suite.name, ...(await suite.newKey()) };
}

/** Deletes this device's key record (a recovery started for the wrong ID). */
export async function forgetKey() {
  await idb("readwrite", (s) => s.delete("patient"));
}

/** Stores the key record again (after its recovery completed). */
export async function storeKey(record) {
  await idb("readwrite", (s) => s.put(record, "patient"));
}

/** Makes the patient's key: the private half can never leave this browser. */
export async function createKey() {
  const made = await newKeyPair();
  const patient = bcs.toHex(await bcs.patientId(made.publicRaw));
  const record = { ...made, patient };
  await idb("readwrite", (s) => s.put(record, "patient"));
  return record;
}

/**
 * Makes a new key on a new device for a patient who lost theirs, and the
 * key's signature that proves this device holds it (what the patient's
 * recovery contacts submit with their approval). The patient id stays the
 * old one; the ledger moves it to the new key once enough contacts approve.
 */
export async function createRecoveryKey(patient, chain) {
  const made = await newKeyPair();
  const message = await bcs.keyPossessionMessage(chain, patient, "recover", made.publicRaw);
  const proof = await bcs.currentSuite().sign(made, message);
  const record = { ...made, patient, recoveryCode: bcs.toHex(recoveryCode(patient, made.publicRaw, proof)) };
  await idb("readwrite", (s) => s.put(record, "patient"));
  return record;
}

/** The code a recovering device shows: patient id, new key and proof (128 bytes; 129 with an SM2 key). */
function recoveryCode(patient, publicRaw, proof) {
  return new bcs.Writer().fixed32(patient).bytes(publicRaw).bytes(proof).finish();
}

/**
 * Reads a recovery code and checks the new key's proof, so that a mistyped
 * or altered code is caught before anything is signed. Throws with a reason.
 */
export async function readRecoveryCode(code, chain) {
  const bytes = bcs.fromHex(code.replace(/\s+/g, "").toLowerCase());
  const suite = bcs.currentSuite();
  const keyEnd = 32 + suite.keyLength;
  if (bytes.length !== keyEnd + 64) throw new Error("length");
  const patient = bcs.toHex(bytes.slice(0, 32));
  const newKey = bytes.slice(32, keyEnd);
  const proof = bytes.slice(keyEnd);
  const message = await bcs.keyPossessionMessage(chain, patient, "recover", newKey);
  if (!(await suite.verify(newKey, proof, message))) throw new Error("proof");
  return { patient, newKey, proof };
}

function nonce() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return new DataView(b.buffer).getBigUint64(0, true);
}

async function sign(key, digest) {
  const suite = bcs.currentSuite();
  // A key made for a chain of another suite cannot sign here (nor would the ledger take it).
  if (key.suite !== suite.name) throw new ApiError(0, "other_suite", `this key is ${key.suite}, the chain is ${suite.name}`);
  return suite.sign(key, digest);
}

/** An API error with the node's stable code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Node {
  constructor(base = "") {
    this.base = base;
    this.chain = null;
  }

  async status() {
    const r = await fetch(`${this.base}/v1/status`);
    const body = await r.json();
    this.chain = body.chain_id;
    // Every key, signature and hash from here on is of the chain's suite.
    this.suite = await loadSuite(body.crypto_suite ?? "ed25519-sha256", this.base);
    bcs.useSuite(this.suite);
    // A transaction is given half the chain's validity window (rule R1),
    // counted on the node's clock (its latest block's time), not this
    // device's, which may be off.
    if (!Number.isSafeInteger(body.tx_validity_window_ms)) {
      throw new ApiError(0, "old_node", "this node does not give the chain's transaction validity window");
    }
    this.txLifetimeMs = BigInt(Math.floor(body.tx_validity_window_ms / 2));
    this.clockOffsetMs = Number.isSafeInteger(body.latest_block_time_ms) ? body.latest_block_time_ms - Date.now() : 0;
    // Signed reads name this node's institution (request_auth rule 4).
    this.institution = body.institution;
    return body;
  }

  async authorization(key, method, pathAndQuery, body) {
    const time = BigInt(Date.now());
    const n = nonce();
    const signer = { kind: "patient", id: key.patient };
    if (!this.institution) await this.status();
    const node = this.institution;
    const digest = await bcs.requestDigest({
      chain: this.chain, node, method, pathAndQuery, body, time, nonce: n, signer, publicKeyRaw: key.publicRaw,
    });
    const signature = await sign(key, digest);
    return bcs.toHex(bcs.requestAuthBytes({ node, signer, publicKeyRaw: key.publicRaw, time, nonce: n, signature }));
  }

  async getSigned(key, pathAndQuery) {
    const auth = await this.authorization(key, "GET", pathAndQuery);
    const r = await fetch(`${this.base}${pathAndQuery}`, { headers: { authorization: `Medledger ${auth}` } });
    const body = await r.json();
    if (!r.ok) throw new ApiError(r.status, body.code, body.message);
    return body;
  }

  /** The patient's signature over a 32-byte digest (a signed fetch's, records.js). */
  async signDigest(key, digest) {
    if (!this.chain) await this.status();
    return sign(key, digest);
  }

  /**
   * POSTs `bodyText` (JSON) to `path` as a request signed by the patient,
   * resolving to the streaming Response; an error answer becomes an ApiError.
   */
  async postSigned(key, path, bodyText) {
    const body = new TextEncoder().encode(bodyText);
    const auth = await this.authorization(key, "POST", path, body);
    const r = await fetch(`${this.base}${path}`, {
      method: "POST",
      headers: { authorization: `Medledger ${auth}`, "content-type": "application/json" },
      body,
    });
    if (!r.ok) {
      const answer = await r.json().catch(() => ({}));
      throw new ApiError(r.status, answer.code, answer.message ?? `${path} answered ${r.status}`);
    }
    return r;
  }

  async get(path) {
    const r = await fetch(`${this.base}${path}`);
    const body = await r.json();
    if (!r.ok) throw new ApiError(r.status, body.code, body.message);
    return body;
  }

  /** The patient's signature accepting `recordNumber` at `hospital` as theirs (hex, for the desk). */
  async signRecordLink(key, hospital, recordNumber) {
    if (!this.chain) await this.status();
    const message = await bcs.recordLinkMessage(this.chain, hospital, key.patient, recordNumber);
    return bcs.toHex(await sign(key, message));
  }

  /** Signs a transaction with the patient's key, submits it, waits for its commit. */
  async submit(key, payload) {
    if (this.txLifetimeMs === undefined) await this.status();
    const validUntil = BigInt(Date.now() + this.clockOffsetMs) + this.txLifetimeMs;
    const tx = { signer: { kind: "patient", id: key.patient }, nonce: nonce(), validUntil, payload };
    const { signingMessage, id, body } = await bcs.transactionDigests(this.chain, tx, key.publicRaw);
    const signature = await sign(key, signingMessage);
    const signed = bcs.signedTransactionBytes(body, key.publicRaw, signature);
    const r = await fetch(`${this.base}/v1/tx`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ transaction: bcs.toHex(signed), wait: true }),
    });
    const answer = await r.json();
    if (!r.ok) throw new ApiError(r.status, answer.code, answer.message);
    // The receipt names the transaction we signed: check it.
    if (answer.tx !== bcs.toHex(id)) throw new ApiError(0, "mismatch", "the node answered for another transaction");
    return answer;
  }

  /**
   * Live audit entries for the patient: server-sent events read with
   * fetch, so the signature travels in the Authorization header and never
   * in a URL (EventSource cannot set headers, and proxies log URLs).
   * `on.entry(entry)` gets each entry; `on.ended(reason)` is called when the
   * node ends the stream because this key may no longer follow it (the key
   * was replaced, a delegation ended); `on.error()` when the connection
   * fails otherwise. Returns a handle whose close() stops it.
   */
  async events(key, on) {
    const path = `/v1/events/patients/${key.patient}`;
    const auth = await this.authorization(key, "GET", path);
    const controller = new AbortController();
    const handle = { close: () => controller.abort() };
    const r = await fetch(`${this.base}${path}`, {
      headers: { authorization: `Medledger ${auth}`, accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new ApiError(r.status, body.code, body.message);
    }
    const follow = async () => {
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let ended = null;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let event = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) event = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (event === "audit") on.entry(JSON.parse(data.join("\n")));
            else if (event === "ended") ended = JSON.parse(data.join("\n"));
          }
        }
      } catch {
        // A failed read is reported below like a closed connection.
      }
      if (controller.signal.aborted) return;
      if (ended) on.ended?.(ended.reason);
      else on.error?.();
    };
    follow();
    return handle;
  }
}

export { bcs };
