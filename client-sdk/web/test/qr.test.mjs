// The app's QR encoder against an independent encoder's matrices, for every
// mask (test/qr-fixture.json).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { qrMatrix, qrSvg } from "../qr.js";

const fixture = JSON.parse(readFileSync(new URL("./qr-fixture.json", import.meta.url)));

test("every module matches for every mask", () => {
  for (const c of fixture.cases) {
    const rows = qrMatrix(c.text, c.mask).map((r) => r.map((v) => (v ? "1" : "0")).join(""));
    assert.equal(rows.length, 17 + 4 * c.version, `${c.text}: version`);
    assert.deepEqual(rows, c.rows, `${c.text}, mask ${c.mask}`);
  }
});

test("the best mask is one of the eight, and the SVG has a quiet zone", () => {
  const text = fixture.cases[0].text;
  const best = qrMatrix(text).map((r) => r.map((v) => (v ? "1" : "0")).join(""));
  assert.ok(fixture.cases.some((c) => c.text === text && JSON.stringify(c.rows) === JSON.stringify(best)));
  assert.match(qrSvg(text, "id"), /viewBox="0 0 45 45"/);
  assert.throws(() => qrMatrix("x".repeat(300)));
});

test("a record-link signature fits version 6 as 128 uppercase hex digits, a recovery code version 9", () => {
  const signature = "0123456789abcdef".repeat(8);
  // Alphanumeric mode: version 6 (41 modules); lowercase is byte mode, version 8.
  assert.equal(qrMatrix(signature.toUpperCase()).length, 41);
  assert.equal(qrMatrix(signature).length, 49);
  // A recovery code: 256 hex digits (258 with an SM2 key), version 9 (53 modules).
  assert.equal(qrMatrix("AB".repeat(128)).length, 53);
  assert.equal(qrMatrix("AB".repeat(129)).length, 53);
  // Beyond version 9 this encoder stops.
  assert.throws(() => qrMatrix("AB".repeat(140)), /too long/);
});
