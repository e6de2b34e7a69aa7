// The ledger's golden vectors on the sm2-sm3 suite
// (contracts/tests/fixtures/golden-vectors-sm2-sm3.json, made and pinned by
// contracts/tests/it/golden.rs) checked with an independent GM/T library
// (sm-crypto-v2): every SM3 digest recomputed from the vectors' BCS bytes,
// every SM2 signature verified under the key derived from its secret. The
// app signs on an SM chain with its own module (app-crypto.wasm, checked
// against the same vectors in bcs.test.mjs); this independent library is
// the second opinion.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { sm2, sm3, sm4, hkdf } from "sm-crypto-v2";

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

test("a records chunk sealed on SM opens with SM2 key agreement, HKDF-SM3 and SM4-GCM done here", () => {
  // transfer/tests/fixtures/sealed-chunk-sm2-sm3.json, pinned by transfer/src/sm.rs.
  const v = JSON.parse(
    readFileSync(new URL("../../../transfer/tests/fixtures/sealed-chunk-sm2-sm3.json", import.meta.url)),
  );
  const compressedOf = (secret) => sm2.compressPublicKeyHex(sm2.getPublicKeyFromPrivateKey(secret));
  assert.equal(compressedOf(v.one_time_secret), v.one_time_key, "the one-time key");
  assert.equal(compressedOf(v.k), v.c1, "C1 = [k]G");
  // Both ends' shared point: [d]C1 = [k]P, its coordinates x2 ‖ y2.
  const shared = sm2.ecdh(hexToBytes(v.one_time_secret), v.c1, false).slice(1);
  assert.equal(bytesToHex(sm2.ecdh(hexToBytes(v.k), v.one_time_key, false).slice(1)), bytesToHex(shared));
  const expand = (label, length) =>
    hkdf(shared, hexToBytes(v.hkdf_salt), concat(hexToBytes(v.info), hexToBytes(v.c1), hexToBytes(v.one_time_key), utf8(label)), length);
  const key = expand("key", 16);
  const baseNonce = expand("nonce", 12);
  assert.equal(bytesToHex(key), v.key);
  assert.equal(bytesToHex(baseNonce), v.base_nonce);
  // The content salt: HKDF-Expand of the exporter secret, one HMAC-SM3 block.
  const exporter = expand("exporter", 32);
  assert.equal(sm3(concat(utf8("medledger/content-salt/v1"), Uint8Array.of(1)), { key: exporter, mode: "hmac" }), v.content_salt);
  for (const chunk of v.chunks) {
    const aad = concat(hexToBytes(v.transfer), u64be(chunk.seq), u32be(chunk.item), Uint8Array.of(chunk.last_of_item ? 1 : 0));
    assert.equal(bytesToHex(aad), chunk.aad, `chunk ${chunk.seq}: AAD`);
    const nonce = baseNonce.slice();
    u64be(chunk.seq).forEach((b, i) => (nonce[4 + i] ^= b));
    const { output, tag } = sm4.encrypt(hexToBytes(chunk.plain), key, {
      mode: "gcm", iv: nonce, associatedData: aad, output: "array", outputTag: true,
    });
    assert.equal(bytesToHex(concat(output, tag)), chunk.sealed, `chunk ${chunk.seq}: sealed`);
  }
});

function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function u64be(n) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

function u32be(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}
