// The app's BCS and digests against the ledger's golden vectors, byte for
// byte, on each crypto suite: contracts/tests/fixtures/golden-vectors.json
// (Ed25519, SHA-256, signed with WebCrypto) and golden-vectors-sm2-sm3.json
// (SM2, SM3, signed with the app's own SM module, app-crypto.wasm, whose
// RFC 6979 signatures must equal the ledger's bit for bit).
import { describe, test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { webcrypto } from "node:crypto";

if (!globalThis.crypto) globalThis.crypto = webcrypto;

const bcs = await import("../bcs.js");
const { ed25519Sha256, sm2Sm3 } = await import("../suite.js");

const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME, ".cache/medledger-target");
// Built by node/build.rs with every build of the node.
const WASM = join(target, "app-crypto/wasm32-unknown-unknown/app-wasm/medledger_app_crypto.wasm");
const smSuite = existsSync(WASM)
  ? sm2Sm3((await WebAssembly.instantiate(readFileSync(WASM))).instance.exports)
  : null;

async function importSeed(seedHex) {
  const pkcs8 = bcs.fromHex("302e020100300506032b657004220420" + seedHex);
  return crypto.subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
}

const SUITES = [
  {
    file: "golden-vectors.json",
    suite: ed25519Sha256,
    skip: false,
    sign: async (seedHex, message) =>
      new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, await importSeed(seedHex), message)),
  },
  {
    file: "golden-vectors-sm2-sm3.json",
    suite: smSuite,
    // Skipped only where nothing was built: a build of the node builds the module.
    skip: smSuite || existsSync(join(target, "debug/medledger")) ? false : `no app-crypto.wasm at ${WASM} (cargo build builds it)`,
    sign: (seedHex, message) => smSuite.sign({ suite: "sm2-sm3", secret: bcs.fromHex(seedHex) }, message),
  },
];

for (const { file, suite, skip, sign } of SUITES) {
  const vectors = JSON.parse(readFileSync(new URL(`../../../contracts/tests/fixtures/${file}`, import.meta.url)));
  const chain = vectors.chain_id;
  const byName = Object.fromEntries(vectors.transactions.map((t) => [t.name, t]));
  const rawKey = (text) => bcs.fromHex(text.replace(/^(ed25519|sm2):/, ""));

  describe(`the app's bytes on ${file}`, { skip }, () => {
  before(() => {
    if (!suite) throw new Error(`the node was built but ${WASM} is missing`);
    bcs.useSuite(suite);
  });

  test("chain id and patient id", async () => {
    assert.equal(bcs.toHex(new bcs.Writer().string(chain).finish()), vectors.chain_id_bcs);
    const id = await bcs.patientId(rawKey(vectors.patient_id.public_key));
    assert.equal(bcs.toHex(id), vectors.patient_id.id);
  });

  /** Every vector's valid_until (golden.rs's VALID_UNTIL). */
  const VALID_UNTIL = 1790003600000n;

  async function check(name, tx) {
    const v = byName[name];
    const { signingMessage, id, body } = await bcs.transactionDigests(chain, tx, rawKey(v.public_key));
    assert.equal(bcs.toHex(body), v.transaction_bcs, `${name}: transaction bytes`);
    assert.equal(bcs.toHex(signingMessage), v.signing_message, `${name}: signing message`);
    assert.equal(bcs.toHex(id), v.transaction_id, `${name}: id`);
    const signature = await sign(v.secret_seed, signingMessage);
    assert.equal(bcs.toHex(signature), v.signature, `${name}: signature`);
    const signed = bcs.signedTransactionBytes(body, rawKey(v.public_key), signature);
    assert.equal(bcs.toHex(signed), v.signed_transaction_bcs, `${name}: signed bytes`);
  }

  test("a patient's transactions match the ledger's bytes, digests and signatures", async () => {
    const patient = vectors.patient_id.id;
    const signer = { kind: "patient", id: patient };
    await check("register-patient", { signer, nonce: 1, validUntil: VALID_UNTIL, payload: { kind: "registerPatient" } });
    const grant = {
      signer,
      nonce: 2, validUntil: VALID_UNTIL,
      payload: {
        kind: "grant",
        terms: {
          patient,
          grantee: { institution: "city-second-hospital" },
          categories: ["imaging", "lab-reports"],
          recordsFrom: 1700000000000,
          // Given unsorted: the encoder sorts.
          sensitiveIncluded: ["genetic", "hiv"],
          holders: ["city-first-hospital"],
          purpose: "referral",
          notBefore: 1790000000000,
          expiresAt: 1792592000000,
          noticeHash: await bcs.hash("notice", "v1"),
        },
      },
    };
    await check("grant", grant);
    // To a group (a medical alliance), records dated before a day, no
    // sensitive class.
    await check("grant-to-group", {
      signer,
      nonce: 20, validUntil: VALID_UNTIL,
      payload: {
        kind: "grant",
        terms: {
          ...grant.payload.terms,
          grantee: { group: "first-alliance" },
          holders: [],
          recordsFrom: null,
          recordsUntil: 1800000000000,
          sensitiveIncluded: [],
        },
      },
    });
    const grantId = bcs.toHex((await bcs.transactionDigests(chain, grant, rawKey(byName.grant.public_key))).id);
    await check("revoke", { signer, nonce: 3, validUntil: VALID_UNTIL, payload: { kind: "revoke", grant: grantId } });
    await check("answer-consent-request", {
      signer,
      nonce: 4, validUntil: VALID_UNTIL,
      payload: { kind: "answerConsentRequest", request: "11".repeat(32), approve: true },
    });
    await check("end-delegation", { signer, nonce: 6, validUntil: VALID_UNTIL, payload: { kind: "endDelegation", delegation: "22".repeat(32) } });
    await check("cancel-control-change", { signer, nonce: 11, validUntil: VALID_UNTIL, payload: { kind: "cancelControlChange", key: true, contacts: true } });
    await check("own-records-request", {
      signer,
      nonce: 12, validUntil: VALID_UNTIL,
      payload: { kind: "ownRecordsRequest", holder: "city-first-hospital", categories: ["imaging", "lab-reports"] },
    });
  });

  test("recovery transactions and the new key's proof match the ledger's bytes", async () => {
    const kp = vectors.key_possession;
    const alice = vectors.patient_id.id;
    const newKey = rawKey(kp.new_key);
    const message = await bcs.keyPossessionMessage(chain, alice, kp.purpose, newKey);
    assert.equal(bcs.toHex(message), kp.message, "possession message");
    const proof = await sign(kp.secret_seed, message);
    assert.equal(bcs.toHex(proof), kp.proof, "possession proof");
    await check("set-recovery-policy", {
      signer: { kind: "patient", id: alice },
      nonce: 9, validUntil: VALID_UNTIL,
      // Given unsorted: the encoder sorts.
      payload: { kind: "setRecoveryPolicy", delegates: [kp.carol, kp.bob].sort().reverse(), threshold: 2 },
    });
    await check("approve-recovery", {
      signer: { kind: "patient", id: kp.bob },
      nonce: 10, validUntil: VALID_UNTIL,
      payload: { kind: "approveRecovery", patient: alice, newKey, newKeyProof: proof },
    });
  });

  test("a signed read names its node and matches the ledger's bytes", async () => {
    const v = vectors.signed_read;
    const alice = vectors.patient_id.id;
    const signer = { kind: "patient", id: alice };
    const publicKeyRaw = rawKey(vectors.patient_id.public_key);
    const fields = {
      chain, node: v.node, method: v.method, pathAndQuery: v.path_and_query,
      time: BigInt(v.time), nonce: BigInt(v.nonce), signer, publicKeyRaw,
    };
    const digest = await bcs.requestDigest(fields);
    assert.equal(bcs.toHex(digest), v.digest, "digest");
    const signature = await sign(v.secret_seed, digest);
    const auth = bcs.requestAuthBytes({ node: v.node, signer, publicKeyRaw, time: fields.time, nonce: fields.nonce, signature });
    assert.equal(bcs.toHex(auth), v.request_auth_bcs, "RequestAuth bytes");
    // Signed for another node, the digest differs: it cannot be replayed there.
    const elsewhere = await bcs.requestDigest({ ...fields, node: "city-second-hospital" });
    assert.notEqual(bcs.toHex(elsewhere), v.digest);
  });

  test("a record-number link the patient signs matches the ledger's digest and signature", async () => {
    const v = vectors.record_link;
    const message = await bcs.recordLinkMessage(chain, v.hospital, vectors.patient_id.id, v.record_number);
    assert.equal(bcs.toHex(message), v.message);
    const signature = await sign(v.secret_seed, message);
    assert.equal(bcs.toHex(signature), v.signature);
    // Another hospital or number gives another digest: the desk cannot reuse it.
    assert.notEqual(bcs.toHex(await bcs.recordLinkMessage(chain, "city-second-hospital", vectors.patient_id.id, v.record_number)), v.message);
    assert.notEqual(bcs.toHex(await bcs.recordLinkMessage(chain, v.hospital, vectors.patient_id.id, "MRN-0002")), v.message);
  });

  test("uleb128 lengths and u64 little-endian", () => {
    assert.equal(bcs.toHex(new bcs.Writer().uleb(300).finish()), "ac02");
    assert.equal(bcs.toHex(new bcs.Writer().u64(1).finish()), "0100000000000000");
    assert.throws(() => bcs.fromHex("zz"));
  });

  /** The terms of the golden grant, as a node lists them. */
  async function goldenTerms() {
    return {
      patient: vectors.patient_id.id,
      grantee: { institution: "city-second-hospital" },
      categories: ["lab-reports", "imaging"],
      records_from_ms: 1700000000000,
      records_until_ms: null,
      sensitive_included: ["hiv", "genetic"],
      holders: ["city-first-hospital"],
      purpose: "referral",
      not_before_ms: 1790000000000,
      expires_at_ms: 1792592000000,
      notice_hash: bcs.toHex(await bcs.hash("notice", "v1")),
    };
  }

  test("a listed grant is checked against the transaction the patient signed", async () => {
    const v = byName.grant;
    const listed = {
      id: v.transaction_id,
      terms: await goldenTerms(),
    };
    const key = rawKey(v.public_key);
    assert.equal(await bcs.checkOwnGrant(chain, listed, v.signed_transaction_bcs, key), null);
    // A node that shows wider terms than were signed, or a later expiry.
    const wider = { ...listed, terms: { ...listed.terms, categories: ["full-record"] } };
    assert.equal(await bcs.checkOwnGrant(chain, wider, v.signed_transaction_bcs, key), "terms differ from what was signed");
    // A node that shows a narrower record scope than was signed: an earlier
    // start, or a sensitive class hidden from the patient's view.
    const earlier = { ...listed, terms: { ...listed.terms, records_from_ms: null } };
    assert.equal(await bcs.checkOwnGrant(chain, earlier, v.signed_transaction_bcs, key), "terms differ from what was signed");
    const hidden = { ...listed, terms: { ...listed.terms, sensitive_included: ["hiv"] } };
    assert.equal(await bcs.checkOwnGrant(chain, hidden, v.signed_transaction_bcs, key), "terms differ from what was signed");
    const longer = { ...listed, terms: { ...listed.terms, expires_at_ms: 1892592000000 } };
    assert.equal(await bcs.checkOwnGrant(chain, longer, v.signed_transaction_bcs, key), "terms differ from what was signed");
    // Another transaction passed off as the grant's, and a forged signature.
    const other = byName.revoke.signed_transaction_bcs;
    assert.equal(await bcs.checkOwnGrant(chain, listed, other, key), "is not the transaction named");
    const forged = v.signed_transaction_bcs.slice(0, -2) + (v.signed_transaction_bcs.endsWith("00") ? "01" : "00");
    assert.equal(await bcs.checkOwnGrant(chain, listed, forged, key), "signature does not verify");
    // Signed by a key this device does not hold: nothing to check it against.
    const otherKey = new Uint8Array(suite.keyLength).fill(7);
    assert.equal(await bcs.checkOwnGrant(chain, listed, v.signed_transaction_bcs, otherKey), "other-key");
    assert.match(await bcs.checkOwnGrant(chain, listed, "zz", key), /does not decode/);
  });

  test("a consent request is checked against the requester's signed terms before the patient approves", async () => {
    const v = byName["request-consent"];
    const listed = {
      id: v.transaction_id,
      requested_by: { practitioner: bcs.toHex(await bcs.hash("medledger/practitioner/v1", bcs.fromHex(v.public_key_bcs))) },
      terms: await goldenTerms(),
    };
    assert.equal(await bcs.checkConsentRequest(chain, listed, v.signed_transaction_bcs), null);
    // A node that shows narrower terms than the doctor asked for (fewer
    // categories, only one holder, a shorter period) is caught before the
    // patient approves what they were not shown.
    for (const terms of [
      { ...listed.terms, categories: ["imaging"] },
      { ...listed.terms, holders: "any" },
      { ...listed.terms, expires_at_ms: 1790100000000 },
      { ...listed.terms, grantee: { institution: "city-first-hospital" } },
    ]) {
      assert.equal(await bcs.checkConsentRequest(chain, { ...listed, terms }, v.signed_transaction_bcs), "terms differ from what was signed");
    }
    // Another requester named, or another transaction passed off as the request.
    const otherDoctor = { ...listed, requested_by: { practitioner: "00".repeat(32) } };
    assert.equal(await bcs.checkConsentRequest(chain, otherDoctor, v.signed_transaction_bcs), "terms differ from what was signed");
    assert.equal(await bcs.checkConsentRequest(chain, listed, byName.grant.signed_transaction_bcs), "is not the transaction named");
  });
  });
}

test("the SM module hashes input longer than its shared buffer, as an independent SM3 does", { skip: smSuite ? false : "no app-crypto.wasm" }, async () => {
  const { sm3 } = await import("sm-crypto-v2");
  const long = new Uint8Array(200_000).map((_, i) => (i * 7) % 251);
  assert.equal(bcs.toHex(await smSuite.digest(long)), sm3(long));
  assert.equal(bcs.toHex(await smSuite.digest(new Uint8Array())), sm3(new Uint8Array()));
  // A signature made here verifies there, and an altered one does not.
  const key = await smSuite.newKey();
  const message = await smSuite.digest(long);
  const signature = await smSuite.sign({ suite: "sm2-sm3", ...key }, message);
  assert.ok(await smSuite.verify(key.publicRaw, signature, message));
  signature[0] ^= 1;
  assert.equal(await smSuite.verify(key.publicRaw, signature, message), false);
});
