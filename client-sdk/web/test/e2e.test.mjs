// The patient app end to end, in headless Chromium (Debian's, driven by
// playwright-core) against a live local four-node testnet: the patient makes
// a key, registers and grants; wrong input is refused next to each field and
// nothing is submitted; the hospital's request and release (through the CLI)
// appear in the history without a reload; the patient revokes; the next
// request is denied and the denial appears. Screenshots go to
// test/screenshots/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME, ".cache/medledger-target");
const BIN = process.env.MEDLEDGER_BIN || join(target, "debug/medledger");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = new URL("./screenshots/", import.meta.url).pathname;

const skip = !existsSync(BIN)
  ? `no medledger binary at ${BIN} (run cargo build first)`
  : !existsSync(CHROMIUM)
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

function cli(args) {
  return execFileSync(BIN, args, { encoding: "utf8" });
}

async function waitFor(check, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("a patient grants, sees the access live, revokes, and sees the denial", { skip, timeout: 240_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "medledger-app-"));
  cli(["testnet", "--init-only", "--dir", dir, "--chain-id", "medledger-app-test"]);
  const layout = JSON.parse(readFileSync(join(dir, "testnet.json"), "utf8"));
  const nodes = layout.nodes.map((n) =>
    spawn(BIN, ["node", "run", "--home", n.home], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } }),
  );
  const byId = Object.fromEntries(layout.nodes.map((n) => [n.institution, n]));
  const first = byId["city-first-hospital"];
  const second = byId["city-second-hospital"];
  const genesis = join(dir, "genesis.json");
  const doctor = join(dir, "keys/practitioner.dr-second-1.json");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    await waitFor(async () => (await (await fetch(`${first.http}/v1/status`)).json()).height >= 1, "first block");
    mkdirSync(shots, { recursive: true });
    const page = await (await browser.newContext({ viewport: { width: 360, height: 780 } })).newPage();
    page.on("dialog", (d) => d.accept());
    await page.goto(`${first.http}/app`);
    await page.getByRole("button", { name: "生成我的密钥" }).click();
    // The key is made and stored asynchronously (WebCrypto, IndexedDB): wait for the id.
    await page.waitForFunction(
      () => /^[0-9a-f]{64}$/.test((document.querySelector("#patient-id")?.textContent ?? "").trim()),
      null,
      { timeout: 30_000 },
    );
    const patient = (await page.locator("#patient-id").textContent()).trim();
    assert.match(patient, /^[0-9a-f]{64}$/);
    assert.equal(await page.locator("#qr svg[role=img]").count(), 1);
    await page.screenshot({ path: join(shots, "1-key.png"), fullPage: true });
    await page.getByRole("button", { name: "在账本上登记" }).click();
    await page.locator("#registered", { hasText: "已登记" }).waitFor();

    // Wrong input: a message next to each field, nothing submitted.
    await page.locator("#grantee").fill("Not An Id!");
    await page.locator("#days").fill("0");
    await page.getByRole("button", { name: "同意并授权" }).click();
    assert.notEqual(await page.locator("#grantee-error").textContent(), "");
    assert.notEqual(await page.locator("#categories-error").textContent(), "");
    assert.notEqual(await page.locator("#days-error").textContent(), "");
    await page.locator("#grantee").fill("no-such-hospital");
    await page.getByRole("button", { name: "同意并授权" }).click();
    // Checked against the member list fetched from the node: wait for the message.
    await page.locator("#grantee-error", { hasText: "没有这家成员机构" }).waitFor();
    await page.screenshot({ path: join(shots, "2-form-errors.png"), fullPage: true });
    assert.equal(await page.locator("#grants li[data-grant]").count(), 0);

    // A grant to the second hospital, labs held at the first.
    await page.locator("#grantee").fill("city-second-hospital");
    await page.locator("#days").fill("30");
    await page.locator("input[value=lab-reports]").check();
    await page.locator("#holders").fill("city-first-hospital");
    await page.getByRole("button", { name: "同意并授权" }).click();
    const grantItem = page.locator("#grants li[data-grant]").first();
    await grantItem.locator(".badge.active").waitFor();
    const grant = await grantItem.getAttribute("data-grant");
    // A short grant to one doctor shows as expiring soon.
    const doctorId = cli(["keys", "show", join(dir, "keys/practitioner.dr-first-1.json")]).match(
      /as a practitioner, id:\s+([0-9a-f]{64})/,
    )[1];
    await page.locator("#grantee").fill(doctorId);
    await page.locator("#days").fill("3");
    await page.locator("input[value=allergies]").check();
    await page.getByRole("button", { name: "同意并授权" }).click();
    await page.locator("#grants li[data-grant] .badge.expiring").waitFor();
    await page.screenshot({ path: join(shots, "3-granted.png"), fullPage: true });

    // The hospital: records at the first hospital, the doctor's request and fetch.
    const records = join(first.home, "records");
    cli(["records", "link", "--dir", records, "--record-number", "MRN-9", "--patient", patient]);
    mkdirSync(join(records, "MRN-9/lab-reports"), { recursive: true });
    writeFileSync(join(records, "MRN-9/lab-reports/glucose.json"), '{"resourceType":"Observation"}');
    const hospital = ["hospital", "--node", second.http, "--genesis", genesis, "--key", doctor, "--json"];
    const request = JSON.parse(
      cli([...hospital, "request-access", "--grant", grant, "--holder", "city-first-hospital", "--category", "lab-reports"]),
    );
    assert.equal(request.outcome, "Authorized");
    cli([...hospital, "fetch", "--request", request.tx, "--holder", "city-first-hospital", "--out", join(dir, "fetched")]);
    // Without a reload, the access and the release appear.
    await page.locator("#history li[data-event=released]").waitFor({ timeout: 30_000 });
    await page.locator("#history li[data-event=access_decided]").first().waitFor();
    await page.screenshot({ path: join(shots, "4-access-live.png"), fullPage: true });

    // A consent request from the doctor reaches the inbox; the patient approves.
    cli([...hospital, "request-consent", "--patient", patient, "--category", "imaging", "--holder", "city-first-hospital"]);
    await page.reload();
    const ask = page.locator("#requests li[data-request]").first();
    await ask.waitFor();
    await page.screenshot({ path: join(shots, "5-inbox.png"), fullPage: true });
    await ask.getByRole("button", { name: "同意" }).click();
    await page.locator("#grants li[data-grant]").nth(2).waitFor();
    // The answered request leaves the inbox (it refreshes after the commit).
    await page.waitForFunction(() => document.querySelectorAll("#requests li[data-request]").length === 0);

    // A proxy: a wrong id is refused next to the field; a registered patient is appointed.
    await page.locator("#delegate").fill("1234");
    await page.getByRole("button", { name: "指定" }).click();
    assert.notEqual(await page.locator("#delegate-error").textContent(), "");
    const proxyKey = join(dir, "proxy.json");
    cli(["keys", "new", "--out", proxyKey]);
    cli(["patient", "--node", first.http, "--genesis", genesis, "--key", proxyKey, "register"]);
    const proxy = JSON.parse(cli(["patient", "--node", first.http, "--genesis", genesis, "--key", proxyKey, "--json", "history"]));
    assert.deepEqual(proxy, []);
    const proxyId = cli(["keys", "show", proxyKey]).match(/as a patient, id:\s+([0-9a-f]{64})/)[1];
    await page.locator("#delegate").fill(proxyId);
    await page.getByRole("button", { name: "指定" }).click();
    await page.locator("#delegations li .badge.active").waitFor();

    // Revoke; the next request is denied and the denial shows.
    await grantItem.getByRole("button", { name: "撤回" }).click();
    await page.locator("#grants li[data-grant] .badge.revoked").waitFor();
    const denied = JSON.parse(
      cli([...hospital, "request-access", "--grant", grant, "--holder", "city-first-hospital", "--category", "lab-reports"]),
    );
    assert.match(denied.outcome, /Denied/);
    await page.locator("#history li[data-event=access_decided] .badge.denied").waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(shots, "6-revoked-denied.png"), fullPage: true });

    // The English switch.
    await page.getByRole("button", { name: "English" }).click();
    await page.getByRole("heading", { name: "Who read my records" }).waitFor();
    await page.screenshot({ path: join(shots, "7-english.png"), fullPage: true });
  } finally {
    await browser.close();
    for (const n of nodes) n.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
