// SM2 and SM3 in JavaScript (sm-crypto-v2, a GM/T library built on the noble
// curves) against the published example and the ledger's Rust code, both
// ways: the library must agree with `contracts::crypto` on keys, on `Z` from
// the default user id and on signatures over ledger digests: an independent
// check of the SM2 the ledger and the patient app (app-crypto.wasm) share.
// With MEDLEDGER_UPDATE_SM2_FROM_JS=1 it rewrites the fixture of signatures
// made here, which a Rust test verifies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { sm2, sm3 } from "sm-crypto-v2";

const golden = JSON.parse(
  readFileSync(new URL("../../../contracts/tests/fixtures/golden-vectors.json", import.meta.url)),
);
const fromJsPath = new URL(
  "../../../contracts/tests/fixtures/sm2-signatures-from-js.json",
  import.meta.url,
);

const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g).map((b) => parseInt(b, 16)));
const options = { hash: true, der: false }; // e = SM3(Z ‖ message), Z from 1234567812345678

test("SM3 and SM2 match the published examples", () => {
  assert.equal(sm3("abc"), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
  assert.equal(
    sm3("abcd".repeat(16)),
    "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732",
  );
  // The recommended curve's example (GM/T 0003.5, now GB/T 32918.5).
  const d = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
  const publicKey = sm2.getPublicKeyFromPrivateKey(d);
  assert.equal(
    sm2.compressPublicKeyHex(publicKey),
    "0309f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020",
  );
  const signature =
    "f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3" +
    "b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa";
  assert.ok(sm2.doVerifySignature("message digest", signature, publicKey, options));
  assert.ok(!sm2.doVerifySignature("message digesT", signature, publicKey, options));
});

test("a signature the ledger's Rust code made verifies here, under the key derived here", () => {
  const v = golden.sm2_signature;
  const publicKey = sm2.getPublicKeyFromPrivateKey(v.secret);
  assert.equal("sm2:" + sm2.compressPublicKeyHex(publicKey), v.public_key);
  const message = hexToBytes(v.message);
  assert.ok(sm2.doVerifySignature(message, v.signature, v.public_key.slice(4), options));
  const altered = hexToBytes(v.message);
  altered[0] ^= 1;
  assert.ok(!sm2.doVerifySignature(altered, v.signature, v.public_key.slice(4), options));
  // Another user id gives another Z: the same signature does not verify.
  assert.ok(
    !sm2.doVerifySignature(message, v.signature, v.public_key.slice(4), {
      ...options,
      userId: "medledger",
    }),
  );
});

test("signatures made here verify here (the Rust test verifies the same file)", () => {
  if (process.env.MEDLEDGER_UPDATE_SM2_FROM_JS) {
    const secret = sm3("medledger/sm2-from-js/v1");
    const publicKey = sm2.getPublicKeyFromPrivateKey(secret);
    const signatures = [0, 1, 2].map((i) => {
      const digest = sm3(`ledger digest ${i}`);
      return { digest, signature: sm2.doSignature(hexToBytes(digest), secret, options) };
    });
    const fixture = {
      about:
        "SM2 signatures over 32-byte digests made by sm-crypto-v2 (client-sdk/web/test/sm2.test.mjs, MEDLEDGER_UPDATE_SM2_FROM_JS=1), checked by contracts/tests/it/golden.rs. Test key only.",
      secret,
      public_key: "sm2:" + sm2.compressPublicKeyHex(publicKey),
      signatures,
    };
    writeFileSync(fromJsPath, JSON.stringify(fixture, null, 2) + "\n");
  }
  const fixture = JSON.parse(readFileSync(fromJsPath));
  assert.equal(
    "sm2:" + sm2.compressPublicKeyHex(sm2.getPublicKeyFromPrivateKey(fixture.secret)),
    fixture.public_key,
  );
  assert.equal(fixture.signatures.length, 3);
  for (const { digest, signature } of fixture.signatures) {
    assert.equal(signature.length, 128);
    assert.ok(
      sm2.doVerifySignature(hexToBytes(digest), signature, fixture.public_key.slice(4), options),
    );
  }
});
