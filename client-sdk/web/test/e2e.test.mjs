// The patient app end to end, in headless Chromium (Debian's, driven by
// playwright-core) against a live local four-node testnet: the patient makes
// a key, registers and grants (a period of records with sensitive classes
// left out, and a grant to a medical alliance the consortium voted in);
// wrong input is refused next to each field and
// nothing is submitted; the hospital's request and release (through the CLI)
// appear in the history without a reload; the patient revokes; the next
// request is denied and the denial appears, and a fetch of the old request is
// refused and that refusal appears; then the health commission's auditor
// replays the ledger and its report is read in the browser. Screenshots go
// to test/screenshots/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { qrSvg } from "../qr.js";
import { skip, cli, shots, withConsortium, phone, makeKey, accessibilityProblems, tabTo, go, register } from "../test-support/consortium.mjs";

test("a patient grants, sees the access live, revokes, and sees the denial", { skip, timeout: 240_000 }, async () => {
  await withConsortium("medledger-app-test", async ({ dir, byId, browser, genesis }) => {
    const first = byId["city-first-hospital"];
    const second = byId["city-second-hospital"];
    const doctor = join(dir, "keys/practitioner.dr-second-1.json");
    mkdirSync(shots, { recursive: true });
    // The consortium votes a medical alliance in before the app opens: the
    // first hospital with its internet hospital (rule R4.15).
    const validators = Object.keys(byId).slice(0, 3);
    const gov = (institution, args) =>
      JSON.parse(
        cli(["gov", "--node", first.http, "--genesis", genesis, "--key", join(dir, `keys/admin.${institution}.json`),
          "--json", "--as-institution", institution, ...args]).split("\n")[0],
      );
    const proposed = gov(validators[0], ["propose", "set-group", "first-alliance", "--member", "city-first-hospital", "--member", "first-online"]);
    assert.equal(proposed.outcome.status, "applied");
    for (const voter of validators.slice(1)) {
      assert.equal(gov(voter, ["vote", proposed.tx, "--approve"]).outcome.status, "applied");
    }
    // The health commission attests the first hospital's credit code and
    // practice licence (rule R4.16): the app marks it beside its name.
    const member = await (await fetch(`${first.http}/v1/institutions/city-first-hospital`)).json();
    cli(["licence", "--node", first.http, "--genesis", genesis, "--key", join(dir, "keys/admin.health-commission.json"),
      "--as-institution", "health-commission", "attest-institution", "city-first-hospital",
      "--legal-code", member.legal_code, "--licence-ref", member.licence_ref]);
    const page = await phone(browser, first);
    const patient = await makeKey(page);
    assert.match(patient, /^[0-9a-f]{64}$/);
    assert.equal(await page.locator("#qr svg[role=img]").count(), 1);
    // Until the key is registered the ID screen is all there is (once the
    // node has said so: the register button appears).
    await page.locator("#register").waitFor();
    assert.equal(await page.locator("#tabs").isHidden(), true);
    await page.screenshot({ path: join(shots, "1-key.png"), fullPage: true });
    await register(page);
    assert.equal(await page.locator("#tabs a[aria-current=page]").getAttribute("data-screen"), "home");
    await go(page, "me");
    await page.locator("#registered", { hasText: "已登记" }).waitFor();
    await go(page, "grants");

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

    // A grant to the second hospital, labs held at the first, only the
    // last year's, sensitive information left out (the boxes start unticked).
    await page.locator("#grantee").fill("city-second-hospital");
    await page.locator("#days").fill("30");
    await page.locator("#categories input[value=lab-reports]").check();
    await page.locator("#records-since").selectOption("1");
    assert.equal(await page.locator("input[name=sensitive]:checked").count(), 0);
    assert.equal(await page.locator("input[name=sensitive]").count(), 4);
    await page.locator("#holders").fill("city-first-hospital");
    await page.getByRole("button", { name: "同意并授权" }).click();
    const grantItem = page.locator("#grants li[data-grant]").first();
    await grantItem.locator(".badge.active").first().waitFor();
    const shown = await grantItem.textContent();
    assert.ok(shown.includes("仅含此日期之后的病历") && shown.includes("不含敏感信息"), shown);
    const grant = await grantItem.getAttribute("data-grant");
    // The app checks the listed grant against the transaction it signed.
    await grantItem.locator(".badge.checked.active").waitFor();
    // Every control named, text legible, nothing wider than the phone; the
    // grant form can be reached and sent from the keyboard alone.
    assert.deepEqual(await accessibilityProblems(page), []);
    // (The check itself finds an unnamed field and faint text when there are some.)
    await page.evaluate(() => {
      const probe = document.createElement("div");
      probe.id = "a11y-probe";
      const input = document.createElement("input");
      input.id = "probe-input";
      const faint = document.createElement("span");
      faint.textContent = "faint";
      faint.style.color = "#bbb"; // set through the CSSOM: the app's CSP refuses inline style attributes
      probe.append(input, faint);
      document.querySelector("main").append(probe);
    });
    const found = await accessibilityProblems(page);
    assert.ok(found.some((p) => p.startsWith("unnamed control input#probe-input")), found.join("; "));
    assert.ok(found.some((p) => p.startsWith("contrast") && p.includes("faint")), found.join("; "));
    await page.evaluate(() => document.getElementById("a11y-probe").remove());
    await page.locator("#grantee").fill("city-second-hospital");
    await page.locator("#categories input[value=imaging]").check();
    const submit = page.getByRole("button", { name: "同意并授权" });
    assert.ok(await tabTo(page, submit), "the grant button is reachable with Tab");
    assert.notEqual(await submit.evaluate((b) => getComputedStyle(b).outlineStyle), "none", "focus is visible");
    await page.keyboard.press("Enter");
    await page.locator("#grants li[data-grant]").nth(1).waitFor();
    // A short grant to one doctor shows as expiring soon.
    const doctorId = cli(["keys", "show", join(dir, "keys/practitioner.dr-first-1.json")]).match(
      /as a practitioner, id:\s+([0-9a-f]{64})/,
    )[1];
    await page.locator("#grantee").fill(doctorId);
    await page.locator("#days").fill("3");
    await page.locator("#categories input[value=allergies]").check();
    await page.getByRole("button", { name: "同意并授权" }).click();
    await page.locator("#grants li[data-grant] .badge.expiring").waitFor();
    await page.screenshot({ path: join(shots, "3-granted.png"), fullPage: true });

    // The hospital: records at the first hospital, the doctor's request and fetch.
    const records = join(first.home, "records");
    // At the first hospital's desk the patient signs its record number in
    // the app; the desk links it with that signature (a wrong number is
    // refused next to the field first).
    await go(page, "records");
    await page.locator("#link-section summary").click();
    await page.locator("#link-hospital").selectOption("city-first-hospital");
    await page.locator("#link-number").fill("MRN 9!");
    await page.getByRole("button", { name: "核对无误，签名" }).click();
    assert.notEqual(await page.locator("#link-number-error").textContent(), "");
    await page.locator("#link-number").fill("MRN-9");
    await page.getByRole("button", { name: "核对无误，签名" }).click();
    await page.locator("#link-result").waitFor();
    const linkSignature = (await page.locator("#link-signature").textContent()).replace(/\s/g, "");
    assert.match(linkSignature, /^[0-9a-f]{128}$/);
    // The QR code holds the same signature in uppercase (QR's alphanumeric
    // mode; test/qr.test.mjs checks the encoder), and the desk's command
    // takes what a scanner reads.
    const expected = qrSvg(linkSignature.toUpperCase(), "qr");
    assert.equal(await page.locator("#link-qr svg").getAttribute("viewBox"), "0 0 49 49");
    assert.equal(
      await page.locator("#link-qr svg path").getAttribute("d"),
      expected.match(/ d="([^"]+)"/)[1],
    );
    await page.screenshot({ path: join(shots, "3b-link-signed.png"), fullPage: true });
    cli(["records", "link", "--dir", records, "--record-number", "MRN-9", "--patient", patient, "--signature", linkSignature.toUpperCase()]);
    mkdirSync(join(records, "MRN-9/lab-reports"), { recursive: true });
    // This year's glucose goes; a result from 2015 and this year's HIV test
    // (labelled with HL7's HIV sensitivity code) are outside the grant.
    const today = new Date().toISOString().slice(0, 10);
    writeFileSync(
      join(records, "MRN-9/lab-reports/glucose.json"),
      JSON.stringify({ resourceType: "Observation", code: { text: "Glucose" }, valueQuantity: { value: 5.4, unit: "mmol/L" }, effectiveDateTime: today }),
    );
    writeFileSync(
      join(records, "MRN-9/lab-reports/old-lipids.json"),
      JSON.stringify({ resourceType: "Observation", effectiveDateTime: "2015-03-02" }),
    );
    writeFileSync(
      join(records, "MRN-9/lab-reports/hiv-test.json"),
      JSON.stringify({
        resourceType: "Observation", effectiveDateTime: today,
        meta: { security: [{ system: "http://terminology.hl7.org/CodeSystem/v3-ActCode", code: "HIV" }] },
      }),
    );
    const hospital = ["hospital", "--node", second.http, "--genesis", genesis, "--key", doctor, "--json"];
    const request = JSON.parse(
      cli([...hospital, "request-access", "--grant", grant, "--holder", "city-first-hospital", "--category", "lab-reports"]),
    );
    assert.equal(request.outcome.status, "authorized");
    const fetched = JSON.parse(
      cli([...hospital, "fetch", "--request", request.tx, "--holder", "city-first-hospital", "--out", join(dir, "fetched")]),
    );
    assert.deepEqual(fetched.items.map((i) => i.path), ["lab-reports/glucose.json"]);
    // Without a reload, the access and the release appear: in the history,
    // and among the latest on the home screen.
    await go(page, "history");
    await page.locator("#history li[data-event=released]").waitFor({ timeout: 30_000 });
    await page.locator("#history li[data-event=access_decided]").first().waitFor();
    await page.screenshot({ path: join(shots, "4-access-live.png"), fullPage: true });
    await go(page, "home");
    await page.locator("#recent li[data-event=released]").waitFor();
    assert.ok((await page.locator("#recent li").count()) <= 5);
    await page.screenshot({ path: join(shots, "4b-home.png"), fullPage: true });
    // The phone's back button goes back a screen.
    await page.goBack();
    await page.locator("#screen-history").waitFor();

    // A consent request from the doctor reaches the inbox; the patient approves.
    cli([...hospital, "request-consent", "--patient", patient, "--category", "imaging", "--holder", "city-first-hospital"]);
    await page.reload();
    await go(page, "home");
    const ask = page.locator("#requests li[data-request]").first();
    await ask.waitFor();
    // The home tab counts what waits for an answer.
    await page.locator("#home-count", { hasText: "1" }).waitFor();
    assert.equal(await page.locator("#tabs a[data-screen=home]").getAttribute("aria-label"), "首页, 1 件待处理");
    // Every term is shown before approving (grantee, holders, period), and
    // the approve button works only once the terms are checked against the
    // doctor's signed request.
    const asked = await ask.textContent();
    for (const term of ["影像", "授权给", "调取自", "从", "至"]) assert.ok(asked.includes(term), `${term} in ${asked}`);
    await ask.locator(".badge.checked.active").waitFor();
    await page.screenshot({ path: join(shots, "5-inbox.png"), fullPage: true });
    await ask.getByRole("button", { name: "同意", exact: true }).click();
    await go(page, "grants");
    await page.locator("#grants li[data-grant]").nth(3).waitFor();
    // The grant made by approving is checked too: the request's terms as
    // the doctor signed them, approved by this key.
    await page.waitForFunction(() => document.querySelectorAll("#grants li[data-grant] .badge.checked.active").length === 4);
    // The answered request leaves the inbox (it refreshes after the commit).
    await page.waitForFunction(() => document.querySelectorAll("#requests li[data-request]").length === 0);
    assert.equal(await page.locator("#home-count").isHidden(), true);

    // A grant to the alliance, named as a group the ledger knows: shown with
    // its members, and a doctor of its internet hospital reaches it (R5.11).
    await page.locator("#grantee").fill("first-alliance");
    await page.locator("#categories input[value=allergies]").check();
    await page.getByRole("button", { name: "同意并授权" }).click();
    await page.waitForFunction(() => document.querySelectorAll("#grants li[data-grant] .badge.checked.active").length === 5);
    const allianceItem = page.locator("#grants li[data-grant]", { hasText: "医联体" });
    const alliance = await allianceItem.textContent();
    assert.ok(alliance.includes("市第一人民医院互联网医院"), alliance);
    const allianceGrant = await allianceItem.getAttribute("data-grant");
    const online = ["hospital", "--node", first.http, "--genesis", genesis, "--key", join(dir, "keys/practitioner.dr-online-1.json"), "--json"];
    const viaAlliance = JSON.parse(
      cli([...online, "request-access", "--grant", allianceGrant, "--holder", "city-second-hospital", "--category", "allergies"]),
    );
    assert.equal(viaAlliance.outcome.status, "authorized");
    await page.screenshot({ path: join(shots, "5b-alliance-grant.png"), fullPage: true });

    // A proxy: a wrong id is refused next to the field; a registered patient is appointed.
    await go(page, "people");
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
    await page.screenshot({ path: join(shots, "5c-people.png"), fullPage: true });

    // Revoke; the next request is denied and the denial shows.
    await go(page, "grants");
    await grantItem.getByRole("button", { name: "撤回" }).click();
    await page.locator("#grants li[data-grant] .badge.revoked").waitFor();
    const denied = JSON.parse(
      cli([...hospital, "request-access", "--grant", grant, "--holder", "city-first-hospital", "--category", "lab-reports"]),
    );
    assert.equal(denied.outcome.status, "denied");
    await go(page, "history");
    await page.locator("#history li[data-event=access_decided] .badge.denied").waitFor({ timeout: 30_000 });
    // Said in the patient's words, from the denial's code.
    await page.locator("#history li[data-event=access_decided]", { hasText: "已拒绝: 授权已撤回" }).waitFor();
    // The first request used again: the holder refuses, and records the refusal
    // on the ledger, so the patient sees the attempt too.
    assert.throws(
      () => cli([...hospital, "fetch", "--request", request.tx, "--holder", "city-first-hospital", "--out", join(dir, "again")]),
      /already_served/,
    );
    await page.locator("#history li[data-event=fetch_refused] .badge.denied").waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(shots, "6-revoked-denied.png"), fullPage: true });

    // The patient downloads their own lab reports in the page (rule R7.8),
    // through the node that serves the app, not the hospital's: sealed to a
    // one-time key of the page, opened here (HPKE's ChaCha20-Poly1305 in
    // app-crypto.wasm), each checked against the hospital's release. Their
    // own records include the HIV test and 2015's result, which no grant
    // above reached; the request and its release join the history.
    await go(page, "records");
    const holderShown = await page.locator("#own-holder option[value=city-first-hospital]").textContent();
    assert.ok(holderShown.startsWith("✓ ") && holderShown.includes("监管部门已核验执业许可"), holderShown);
    // Never attested: its name alone, no mark either way.
    const unattested = await page.locator("#own-holder option[value=city-second-hospital]").textContent();
    assert.ok(!/^[✓⚠]/.test(unattested) && !unattested.includes("执业许可"), unattested);
    await page.locator("#own-holder").selectOption("city-first-hospital");
    await page.locator("#own-categories input[value=lab-reports]").check();
    await page.getByRole("button", { name: "下载我的病历" }).click();
    await page.locator("#own-status", { hasText: "已下载 3 份病历" }).waitFor({ timeout: 60_000 });
    const labs = await page.locator("#own-labs tbody").textContent();
    assert.ok(labs.includes("Glucose") && labs.includes("5.4 mmol/L"), labs);
    assert.equal(await page.locator("#own-labs tbody tr").count(), 3);
    const files = page.locator("#own-files a");
    assert.equal(await files.count(), 3);
    assert.match(await files.first().getAttribute("href"), /^blob:/);
    await page.screenshot({ path: join(shots, "6b-own-records.png"), fullPage: true });
    await go(page, "history");
    await page.locator("#history li[data-event=own_records_requested]").waitFor({ timeout: 30_000 });

    // The English switch.
    await page.getByRole("button", { name: "English" }).click();
    await page.getByRole("heading", { name: "Who read my records" }).waitFor();
    assert.deepEqual(await accessibilityProblems(page), []);
    await page.screenshot({ path: join(shots, "7-english.png"), fullPage: true });
    await page.getByRole("button", { name: "中文" }).click();

    // Large text for elderly patients (适老化), kept across visits: every
    // screen still passes the checks (nothing wider than the phone) and is
    // photographed.
    await go(page, "me");
    await page.locator("#large-text").check();
    const base = await page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize));
    assert.ok(base >= 22, `large text is ${base}px`);
    await page.reload();
    await page.locator("#tabs").waitFor();
    assert.ok(await page.locator("#large-text").isChecked());
    for (const screen of ["home", "grants", "records", "history", "people", "me"]) {
      await go(page, screen);
      assert.deepEqual(await accessibilityProblems(page), [], screen);
      await page.screenshot({ path: join(shots, `9-large-${screen}.png`), fullPage: true });
    }
    // The tabs' English words fit whole at large text too.
    await page.getByRole("button", { name: "English" }).click();
    await page.locator("#tabs a[data-screen=records]", { hasText: "Records" }).waitFor();
    const cut = await page.evaluate(() =>
      [...document.querySelectorAll("#tabs a span[data-t]")]
        .filter((s) => s.getClientRects().length > 1 || s.scrollWidth > s.parentElement.clientWidth)
        .map((s) => s.textContent),
    );
    assert.deepEqual(cut, []);
    // The home tab says how many things wait, in words, to a screen reader.
    assert.equal(await page.locator("#tabs a[data-screen=home]").getAttribute("aria-label"), null);

    // The regulator's report of the same ledger, replayed over the API from
    // genesis by the health commission's auditor, read in the browser: each
    // finding a sentence in Chinese and English with its evidence.
    const reports = join(dir, "reports");
    const auditor = join(dir, "keys/admin.health-commission.json");
    cli(["audit", "replay", "--genesis", genesis, "--from", first.http, "--key", auditor,
      "--as-institution", "health-commission", "--report", reports]);
    const report = await browser.newPage();
    await report.goto(`file://${join(reports, "report.html")}`);
    await report.getByRole("heading", { name: /需要关注的事项 Findings/ }).waitFor();
    const doctorOfSecond = cli(["keys", "show", doctor]).match(/as a practitioner, id:\s+([0-9a-f]{64})/)[1];
    const findings = await report.locator(".findings").textContent();
    const who = `${doctorOfSecond.slice(0, 12)}…`;
    assert.ok(findings.includes(`city-second-hospital 的医务人员 ${who} 有 1 次调取请求被拒绝`), findings);
    assert.ok(findings.includes(`Practitioner ${who} of city-second-hospital had 1 access requests denied`), findings);
    assert.ok(findings.includes(`city-second-hospital 的医务人员 ${who} 有 1 次取件被持有机构拒绝`), findings);
    assert.ok((await report.locator("svg[role=img]").count()) >= 4);
    await report.screenshot({ path: join(shots, "8-audit-report.png"), fullPage: true });
    await report.close();
  });
});
