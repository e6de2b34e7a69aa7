// Canonical bytes (BCS) and digests of the medledger ledger, in the browser.
// Mirrors contracts/src (encoding.rs, types.rs, transaction.rs,
// request_auth.rs); test/bcs.test.mjs checks it against the ledger's golden
// vectors (both suites), byte for byte.
import { ed25519Sha256 } from "./suite.js";

const enc = new TextEncoder();

/**
 * The chain's crypto suite (suite.js): its key and signature tag, key
 * length and hash. Ed25519 and SHA-256 until the app learns the chain's
 * (`useSuite`, from GET /v1/status); one chain, one suite.
 */
let suite = ed25519Sha256;

/** Encodes and hashes for a chain of `chosen` (from suite.js) from now on. */
export function useSuite(chosen) {
  suite = chosen;
}

/** The suite in use. */
export function currentSuite() {
  return suite;
}

/** Bytes from hex. */
export function fromHex(hex) {
  if (!/^([0-9a-f]{2})*$/.test(hex)) throw new Error("not lowercase hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Hex of bytes. */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A BCS writer. */
export class Writer {
  constructor() {
    this.parts = [];
  }
  bytes(b) {
    this.parts.push(Uint8Array.from(b));
    return this;
  }
  u8(n) {
    return this.bytes([n]);
  }
  uleb(n) {
    const out = [];
    let v = BigInt(n);
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      out.push(byte);
    } while (v > 0n);
    return this.bytes(out);
  }
  u64(n) {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
    return this.bytes(out);
  }
  bool(b) {
    return this.u8(b ? 1 : 0);
  }
  string(s) {
    const b = enc.encode(s);
    return this.uleb(b.length).bytes(b);
  }
  fixed32(hexOrBytes) {
    const b = typeof hexOrBytes === "string" ? fromHex(hexOrBytes) : hexOrBytes;
    if (b.length !== 32) throw new Error("expected 32 bytes");
    return this.bytes(b);
  }
  vec(items, write) {
    this.uleb(items.length);
    for (const item of items) write(this, item);
    return this;
  }
  finish() {
    const length = this.parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Categories in the ledger's order (types.rs `Category`). */
export const CATEGORIES = [
  "lab-reports", "imaging", "prescriptions", "discharge-summaries", "diagnoses",
  "procedures", "allergies", "immunizations", "clinical-notes", "full-record",
];
/** Sensitive classes in the ledger's order (types.rs `SensitiveClass`): left out of a grant unless included one by one. */
export const SENSITIVE_CLASSES = ["hiv", "mental-health", "reproductive-health", "genetic"];
/** Purposes in the ledger's order (types.rs `Purpose`). */
export const PURPOSES = ["treatment", "referral", "continuity-of-care", "consultation", "insurance-claim", "research"];

const SIGNER = { patient: 0, delegate: 1, practitioner: 2, institution: 3, institutionNode: 4 };
const PAYLOAD = {
  registerPatient: 0, setRecoveryPolicy: 1, approveRecovery: 2, grant: 9, revoke: 10, answerConsentRequest: 13, delegate: 14, endDelegation: 15,
  requestConsent: 12, cancelControlChange: 22, ownRecordsRequest: 25,
};

/** An institution id: 1-64 of a-z, 0-9, '-'. */
export function isInstitutionId(s) {
  return typeof s === "string" && /^[a-z0-9-]{1,64}$/.test(s);
}

function writeSigner(w, signer) {
  // signer: {kind: "patient", id: hex} | {kind: "delegate", id: hex} | …
  w.uleb(SIGNER[signer.kind]);
  if (signer.kind === "institution" || signer.kind === "institutionNode") w.string(signer.id);
  else w.fixed32(signer.id);
}

function writePublicKey(w, raw) {
  if (raw.length !== suite.keyLength) throw new Error(`expected a ${suite.keyLength}-byte ${suite.name} key`);
  w.u8(suite.tag).bytes(raw); // PublicKey::Ed25519 (0) or ::Sm2 (1)
}

function writeSignature(w, signature) {
  if (signature.length !== 64) throw new Error("expected a 64-byte signature");
  w.u8(suite.tag).bytes(signature); // Signature::Ed25519 (0) or ::Sm2 (1)
}

/** Categories by name, as the ledger's sorted list of their indexes. */
function writeCategories(w, names) {
  const categories = [...names].map((c) => CATEGORIES.indexOf(c));
  if (categories.some((c) => c < 0)) throw new Error("unknown category");
  categories.sort((a, b) => a - b);
  w.vec(categories, (w, c) => w.uleb(c));
}

function writeTerms(w, t) {
  w.fixed32(t.patient);
  if (t.grantee.institution !== undefined) w.uleb(0).string(t.grantee.institution);
  else if (t.grantee.group !== undefined) w.uleb(2).string(t.grantee.group);
  else w.uleb(1).fixed32(t.grantee.practitioner);
  writeCategories(w, t.categories);
  // Record scope (R5.10): optional dates, then the included sensitive classes.
  for (const at of [t.recordsFrom, t.recordsUntil]) {
    if (at === undefined || at === null) w.u8(0);
    else w.u8(1).u64(at);
  }
  const sensitive = [...(t.sensitiveIncluded || [])].map((c) => SENSITIVE_CLASSES.indexOf(c));
  if (sensitive.some((c) => c < 0)) throw new Error("unknown sensitive class");
  sensitive.sort((a, b) => a - b);
  w.vec(sensitive, (w, c) => w.uleb(c));
  if (!t.holders || t.holders.length === 0) w.uleb(0);
  else w.uleb(1).vec([...t.holders].sort(), (w, h) => w.string(h));
  const purpose = PURPOSES.indexOf(t.purpose);
  if (purpose < 0) throw new Error("unknown purpose");
  w.uleb(purpose).u64(t.notBefore).u64(t.expiresAt).fixed32(t.noticeHash);
}

/** BCS of a transaction {signer, nonce, validUntil (ms), payload: {kind, …}}. */
export function transactionBytes(tx) {
  const w = new Writer();
  writeSigner(w, tx.signer);
  w.u64(tx.nonce).u64(tx.validUntil);
  const p = tx.payload;
  w.uleb(PAYLOAD[p.kind]);
  switch (p.kind) {
    case "registerPatient":
      break;
    case "cancelControlChange":
      w.bool(Boolean(p.key)).bool(Boolean(p.contacts));
      break;
    case "grant":
      writeTerms(w, p.terms);
      break;
    case "revoke":
      w.fixed32(p.grant);
      break;
    case "answerConsentRequest":
      w.fixed32(p.request).bool(p.approve);
      break;
    case "delegate":
      w.fixed32(p.delegate).uleb(p.role === "guardian" ? 0 : 1).u64(p.expiresAt);
      break;
    case "endDelegation":
      w.fixed32(p.delegation);
      break;
    case "ownRecordsRequest":
      // R7.8: the patient asks a holder for their own records.
      w.string(p.holder);
      writeCategories(w, p.categories);
      break;
    case "setRecoveryPolicy":
      // Strictly increasing ids (lowercase hex sorts as the bytes do).
      w.vec([...p.delegates].sort(), (w, d) => w.fixed32(d)).u8(p.threshold);
      break;
    case "approveRecovery":
      w.fixed32(p.patient);
      writePublicKey(w, p.newKey);
      writeSignature(w, p.newKeyProof);
      break;
    default:
      throw new Error(`no encoder for ${p.kind}`);
  }
  return w.finish();
}

/** The chain's hash (SHA-256 or SM3) of the concatenation of parts. */
export async function hash(...parts) {
  const w = new Writer();
  for (const p of parts) w.bytes(typeof p === "string" ? enc.encode(p) : p);
  return suite.digest(w.finish());
}

/** A transaction's id: over the chain, its bytes and the key that signs it. */
async function transactionId(chainBytes, body, publicKeyRaw) {
  const key = new Writer();
  writePublicKey(key, publicKeyRaw);
  return hash("medledger/txid/v2", chainBytes, body, key.finish());
}

/** The digest a transaction's signer signs, and its id when the key `publicKeyRaw` signs it. */
export async function transactionDigests(chain, tx, publicKeyRaw) {
  const chainBytes = new Writer().string(chain).finish();
  const body = transactionBytes(tx);
  return {
    signingMessage: await hash("medledger/tx/v2", chainBytes, body),
    id: await transactionId(chainBytes, body, publicKeyRaw),
    body,
  };
}

/** BCS of a signed transaction. */
export function signedTransactionBytes(body, publicKeyRaw, signature) {
  const w = new Writer().bytes(body);
  writePublicKey(w, publicKeyRaw);
  writeSignature(w, signature);
  return w.finish();
}

/** Splits BCS of a signed transaction into its body, public key and signature (of the chain's suite). */
export function splitSignedTransaction(bytes) {
  const n = bytes.length;
  // Trailing bytes: key (tag + key) and signature (tag + 64).
  const keyAndSignature = 1 + suite.keyLength + 1 + 64;
  if (n < keyAndSignature + 1 + 16 + 1) throw new Error("too short for a signed transaction");
  if (bytes[n - keyAndSignature] !== suite.tag || bytes[n - 65] !== suite.tag) {
    throw new Error(`not a ${suite.name} key and signature`);
  }
  return {
    body: bytes.slice(0, n - keyAndSignature),
    publicKeyRaw: bytes.slice(n - keyAndSignature + 1, n - 65),
    signature: bytes.slice(n - 64),
  };
}

/** Grant terms as the node's JSON lists them, in the form `transactionBytes` takes. */
export function termsFromJson(j) {
  return {
    patient: j.patient,
    grantee: j.grantee,
    categories: j.categories,
    recordsFrom: j.records_from_ms === null ? null : BigInt(j.records_from_ms),
    recordsUntil: j.records_until_ms === null ? null : BigInt(j.records_until_ms),
    sensitiveIncluded: j.sensitive_included,
    holders: Array.isArray(j.holders) ? j.holders : [],
    purpose: j.purpose,
    notBefore: BigInt(j.not_before_ms),
    expiresAt: BigInt(j.expires_at_ms),
    noticeHash: j.notice_hash,
  };
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Checks a signed transaction the node gives (hex BCS) against what the app
 * expects of it: it hashes to `id` on `chain`, its signature verifies under
 * its own key, it is signed as `signer`, and its payload is exactly
 * `payload` (encoded). With `publicKeyRaw`, the key must be that one
 * ("other-key" when it is not). Returns null when all of it holds, or what
 * failed.
 */
async function checkSigned(chain, id, signedHex, signer, payload, publicKeyRaw) {
  let parts;
  let head;
  try {
    parts = splitSignedTransaction(fromHex(signedHex));
    const w = new Writer();
    writeSigner(w, signer);
    head = w.finish();
  } catch (e) {
    return `does not decode: ${e.message}`;
  }
  if (publicKeyRaw && !equalBytes(parts.publicKeyRaw, publicKeyRaw)) return "other-key";
  const chainBytes = new Writer().string(chain).finish();
  if (toHex(await transactionId(chainBytes, parts.body, parts.publicKeyRaw)) !== id) return "is not the transaction named";
  const message = await hash("medledger/tx/v2", chainBytes, parts.body);
  if (!(await suite.verify(parts.publicKeyRaw, parts.signature, message))) return "signature does not verify";
  const body = parts.body;
  // The signer, then the nonce and valid_until (8 bytes each), then the payload.
  if (body.length !== head.length + 16 + payload.length
    || !equalBytes(body.slice(0, head.length), head)
    || !equalBytes(body.slice(head.length + 16), payload)) {
    return "terms differ from what was signed";
  }
  return null;
}

function termsPayload(kind, terms) {
  const w = new Writer();
  w.uleb(PAYLOAD[kind]);
  writeTerms(w, termsFromJson(terms));
  return w.finish();
}

/**
 * Checks a grant the node lists against the signed transaction it gives for
 * it: signed with `publicKeyRaw` by the patient as a `Grant`, hashing to the
 * grant's id, carrying exactly the listed terms. Returns null when all of it
 * holds, "other-key" when another key signed it (an earlier key, before a
 * recovery: nothing to check it against here), or what failed.
 */
export async function checkOwnGrant(chain, grant, signedHex, publicKeyRaw) {
  let payload;
  try {
    payload = termsPayload("grant", grant.terms);
  } catch (e) {
    return `does not decode: ${e.message}`;
  }
  return checkSigned(chain, grant.id, signedHex, { kind: "patient", id: grant.terms.patient }, payload, publicKeyRaw);
}

/** The signer as the node lists it (`{practitioner}` or `{institution}`). */
function listedSigner(by) {
  if (by?.practitioner) return { kind: "practitioner", id: by.practitioner };
  if (by?.institution) return { kind: "institution", id: by.institution };
  throw new Error("a consent request is made by a practitioner or an institution");
}

/**
 * Checks a consent request the node lists against the signed transaction it
 * gives for it: a `RequestConsent` by the listed requester, hashing to the
 * request's id, with exactly the listed terms. Approving signs that id, so
 * once this holds the terms the patient is shown are the terms they agree
 * to. Returns null when all of it holds, or what failed.
 */
export async function checkConsentRequest(chain, request, signedHex) {
  let payload;
  let signer;
  try {
    payload = termsPayload("requestConsent", request.terms);
    signer = listedSigner(request.requested_by);
  } catch (e) {
    return `does not decode: ${e.message}`;
  }
  return checkSigned(chain, request.id, signedHex, signer, payload);
}

/**
 * Checks a grant made by answering a consent request (`grant.answers`):
 * its terms are exactly those of the request's signed transaction
 * (`requestHex`, by `request.requested_by`), and the answer (`answerHex`,
 * whose id is the grant's) is this key's approval of that request. Returns
 * null when all of it holds, "other-key", or what failed.
 */
export async function checkAnsweredGrant(chain, grant, request, requestHex, answerHex, publicKeyRaw) {
  const terms = await checkConsentRequest(chain, { id: grant.answers, terms: grant.terms, requested_by: request.requested_by }, requestHex);
  if (terms !== null) return `the request: ${terms}`;
  const answer = new Writer().uleb(PAYLOAD.answerConsentRequest).fixed32(grant.answers).bool(true).finish();
  return checkSigned(chain, grant.id, answerHex, { kind: "patient", id: grant.terms.patient }, answer, publicKeyRaw);
}

/**
 * What a new key signs to show it is held (transaction.rs
 * `key_possession_message`): for recovery, `patient` is the patient being
 * recovered and `purpose` is "recover".
 */
export async function keyPossessionMessage(chain, patient, purpose, newKeyRaw) {
  const w = new Writer().string(chain);
  writeSigner(w, { kind: "patient", id: patient });
  w.string(purpose);
  writePublicKey(w, newKeyRaw);
  return hash("medledger/key-possession/v1", w.finish());
}

/**
 * What a patient's key signs to accept a hospital's record number as theirs
 * (contracts `record_link_message`): the hospital's gateway serves their
 * records only under a link their current key signed.
 */
export async function recordLinkMessage(chain, hospital, patient, recordNumber) {
  const w = new Writer().string(chain).string(hospital).fixed32(patient).string(recordNumber);
  return hash("medledger/record-link/v1", w.finish());
}

/** A patient's id: the hash of the first key they register. */
export async function patientId(publicKeyRaw) {
  const w = new Writer();
  writePublicKey(w, publicKeyRaw);
  return hash("medledger/patient/v1", w.finish());
}

/**
 * What a signed API read covers (request_auth.rs `RequestToSign`): `node` is
 * the institution whose node is asked, so the read cannot be replayed at
 * another member's node.
 */
export async function requestDigest({ chain, node, method, pathAndQuery, body, time, nonce, signer, publicKeyRaw }) {
  const w = new Writer().string(chain).string(node).string(method).string(pathAndQuery);
  w.fixed32(await hash(body ?? new Uint8Array()));
  w.u64(time).u64(nonce);
  writeSigner(w, signer);
  writePublicKey(w, publicKeyRaw);
  return hash("medledger/http-request/v2", w.finish());
}

/** BCS of `RequestAuth`. */
export function requestAuthBytes({ node, signer, publicKeyRaw, time, nonce, signature }) {
  const w = new Writer().string(node);
  writeSigner(w, signer);
  writePublicKey(w, publicKeyRaw);
  w.u64(time).u64(nonce);
  return w.u8(suite.tag).bytes(signature.slice(0, 32)).bytes(signature.slice(32, 64)).finish();
}
