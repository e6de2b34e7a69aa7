// The patient app end to end on a chain of the national-cryptography suite
// (sm2-sm3), in headless Chromium against a live local four-node testnet:
// WebCrypto has no SM2, so the page signs with the SM module the node serves
// (app-crypto.wasm). The patient makes an SM2 key, registers, grants, checks
// the listed grant against what they signed (SM2 and SM3 in the page), signs
// a hospital's record number; the hospital's doctor requests and fetches
// (records sealed with SM2 key agreement and SM4-GCM) and the release
// appears live (a stream opened with an SM2-signed request); the patient
// revokes and the next request's denial appears.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { skip, cli, shots, withConsortium, phone, makeKey, go, register } from "../test-support/consortium.mjs";

test("on an sm2-sm3 chain a patient signs with SM2 in the page: grant, live release, revoke, denial", { skip, timeout: 240_000 }, async () => {
  await withConsortium("medledger-app-sm-test", async ({ dir, byId, browser, genesis }) => {
    const first = byId["city-first-hospital"];
    const second = byId["city-second-hospital"];
    const status = await (await fetch(`${first.http}/v1/status`)).json();
    assert.equal(status.crypto_suite, "sm2-sm3");
    mkdirSync(shots, { recursive: true });
    const page = await phone(browser, first);
    const patient = await makeKey(page);
    // The key kept on this device is an SM2 key of 33 bytes (compressed),
    // its secret held by the page (WebCrypto cannot hold an SM2 key).
    const stored = await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const open = indexedDB.open("medledger", 1);
          open.onsuccess = () => {
            const get = open.result.transaction("keys").objectStore("keys").get("patient");
            get.onsuccess = () => resolve({ suite: get.result.suite, key: get.result.publicRaw.length, secret: get.result.secret.length });
            get.onerror = () => reject(get.error);
          };
          open.onerror = () => reject(open.error);
        }),
    );
    assert.deepEqual(stored, { suite: "sm2-sm3", key: 33, secret: 32 });
    await register(page);
    await go(page, "grants");
    await page.locator("#grantee").fill("city-second-hospital");
    await page.locator("#days").fill("30");
    await page.locator("#categories input[value=lab-reports]").check();
    await page.locator("#holders").fill("city-first-hospital");
    await page.getByRole("button", { name: "同意并授权" }).click();
    const grantItem = page.locator("#grants li[data-grant]").first();
    // Checked in the page: SM3 id and SM2 signature of what this key signed.
    await grantItem.locator(".badge.checked.active").waitFor();
    const grant = await grantItem.getAttribute("data-grant");
    await page.screenshot({ path: join(shots, "sm-1-granted.png"), fullPage: true });

    // The desk links a record number with the patient's SM2 signature.
    await go(page, "records");
    await page.locator("#link-section summary").click();
    await page.locator("#link-hospital").selectOption("city-first-hospital");
    await page.locator("#link-number").fill("MRN-7");
    await page.getByRole("button", { name: "核对无误，签名" }).click();
    await page.locator("#link-result").waitFor();
    const linkSignature = (await page.locator("#link-signature").textContent()).replace(/\s/g, "");
    assert.match(linkSignature, /^[0-9a-f]{128}$/);
    const records = join(first.home, "records");
    cli(["records", "link", "--dir", records, "--record-number", "MRN-7", "--patient", patient, "--signature", linkSignature]);
    mkdirSync(join(records, "MRN-7/lab-reports"), { recursive: true });
    writeFileSync(
      join(records, "MRN-7/lab-reports/glucose.json"),
      JSON.stringify({ resourceType: "Observation", code: { text: "Glucose" }, valueQuantity: { value: 5.4, unit: "mmol/L" }, effectiveDateTime: new Date().toISOString().slice(0, 10) }),
    );

    const doctor = join(dir, "keys/practitioner.dr-second-1.json");
    const hospital = ["hospital", "--node", second.http, "--genesis", genesis, "--key", doctor, "--json"];
    const request = JSON.parse(
      cli([...hospital, "request-access", "--grant", grant, "--holder", "city-first-hospital", "--category", "lab-reports"]),
    );
    assert.equal(request.outcome.status, "authorized");
    const fetched = JSON.parse(
      cli([...hospital, "fetch", "--request", request.tx, "--holder", "city-first-hospital", "--out", join(dir, "fetched")]),
    );
    // Served only because the gateway found the patient's SM2 signature on the link.
    assert.deepEqual(fetched.items.map((i) => i.path), ["lab-reports/glucose.json"]);
    // The live stream (opened with an SM2-signed read) shows the release.
    await go(page, "history");
    await page.locator("#history li[data-event=released]").waitFor({ timeout: 30_000 });

    await go(page, "grants");
    await grantItem.getByRole("button", { name: "撤回" }).click();
    await page.locator("#grants li[data-grant] .badge.revoked").waitFor();
    const denied = JSON.parse(
      cli([...hospital, "request-access", "--grant", grant, "--holder", "city-first-hospital", "--category", "lab-reports"]),
    );
    assert.equal(denied.outcome.status, "denied");
    await go(page, "history");
    await page.locator("#history li[data-event=access_decided] .badge.denied").waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(shots, "sm-2-revoked-denied.png"), fullPage: true });

    // The patient's own lab report, sealed with SM2 key agreement and
    // SM4-GCM to a one-time SM2 key of the page and opened in it (rule R7.8).
    await go(page, "records");
    await page.locator("#own-holder").selectOption("city-first-hospital");
    await page.locator("#own-categories input[value=lab-reports]").check();
    await page.getByRole("button", { name: "下载我的病历" }).click();
    await page.locator("#own-status", { hasText: "已下载 1 份病历" }).waitFor({ timeout: 60_000 });
    assert.ok((await page.locator("#own-labs tbody").textContent()).includes("5.4 mmol/L"));
    await page.screenshot({ path: join(shots, "sm-3-own-records.png"), fullPage: true });
  }, { cryptoSuite: "sm2-sm3" });
});
