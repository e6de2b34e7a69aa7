// The ledger's golden vectors on the sm2-sm3 suite
// (contracts/tests/fixtures/golden-vectors-sm2-sm3.json, made and pinned by
// contracts/tests/it/golden.rs) checked with an independent GM/T library
// (sm-crypto-v2): every SM3 digest recomputed from the vectors' BCS bytes,
// every SM2 signature verified under the key derived from its secret. The
// app itself does not sign on an SM chain yet; this is the agreement it
// will rest on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { sm2, sm3 } from "sm-crypto-v2";

const vectors = JSON.parse(
  readFileSync(
    new URL("../../../contracts/tests/fixtures/golden-vectors-sm2-sm3.json", import.meta.url),
  ),
);
const hexToBytes = (hex) => Uint8Array.from((hex.match(/../g) ?? []).map((b) => parseInt(b, 16)));
const utf8 = (text) => new TextEncoder().encode(text);
const options = { hash: true, der: false }; // e = SM3(Z ‖ message), Z from 1234567812345678

/** SM3 over the concatenation of byte arrays, as hex. */
function h(...parts) {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return sm3(all);
}

/** An `sm2:` key's BCS: variant 1, then the 33 compressed bytes. */
const keyBcs = (text) => hexToBytes("01" + text.replace("sm2:", ""));
const keyHex = (text) => text.replace("sm2:", "");

function verifies(messageHex, signatureHex, keyText) {
  return sm2.doVerifySignature(hexToBytes(messageHex), signatureHex, keyHex(keyText), options);
}

test("SM3 of the empty string and the patient id", () => {
  assert.equal(h(), "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b");
  const { public_key, id } = vectors.patient_id;
  assert.ok(public_key.startsWith("sm2:"));
  assert.equal(h(utf8("medledger/patient/v1"), keyBcs(public_key)), id);
});

test("every transaction's signing message, id and SM2 signature", () => {
  const chain = hexToBytes(vectors.chain_id_bcs);
  assert.ok(vectors.transactions.length >= 10);
  for (const v of vectors.transactions) {
    const body = hexToBytes(v.transaction_bcs);
    const key = hexToBytes(v.public_key_bcs);
    assert.equal(h(utf8("medledger/tx/v2"), chain, body), v.signing_message, `${v.name}: signing message`);
    assert.equal(h(utf8("medledger/txid/v2"), chain, body, key), v.transaction_id, `${v.name}: id`);
    const derived = "sm2:" + sm2.compressPublicKeyHex(sm2.getPublicKeyFromPrivateKey(v.secret_seed));
    assert.equal(derived, v.public_key, `${v.name}: key from its secret`);
    assert.ok(verifies(v.signing_message, v.signature, v.public_key), `${v.name}: signature`);
    const altered = v.signing_message.replace(/^./, (c) => (c === "0" ? "1" : "0"));
    assert.ok(!verifies(altered, v.signature, v.public_key), `${v.name}: altered message`);
    // The signed bytes end with the key and the signature (variant 1, r ‖ s).
    assert.ok(v.signed_transaction_bcs.endsWith(v.public_key_bcs + "01" + v.signature));
  }
});

test("header, audit leaves, the transaction root and the signed proofs", () => {
  const { header } = vectors;
  assert.equal(h(utf8("medledger/header/v1"), hexToBytes(header.bcs)), header.hash);
  for (const name of ["audit_entry", "audit_entry_control_changed", "audit_entry_emergency_review_overdue"]) {
    const entry = vectors[name];
    const leaf = h(Uint8Array.of(0), utf8("medledger/audit/v1"), hexToBytes(entry.bcs));
    assert.equal(leaf, entry.leaf_hash, name);
  }
  // A one-leaf RFC 6962 tree's root is its leaf's hash.
  const root = h(Uint8Array.of(0), hexToBytes(vectors.signed_hash_of_grant));
  assert.equal(root, vectors.transaction_root_of_grant);
  const possession = vectors.key_possession;
  assert.ok(verifies(possession.message, possession.proof, possession.new_key));
  const link = vectors.record_link;
  assert.ok(verifies(link.message, link.signature, vectors.patient_id.public_key));
});
