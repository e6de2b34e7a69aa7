// Recovery end to end, in headless Chromium against a live local four-node
// testnet: a patient names a recovery contact (wrong input refused next to
// each field), grants a hospital access, then "loses" the device; on a new
// device the app makes a new key for the old patient ID and shows a recovery
// code; the contact's app refuses an altered code and approves the real one;
// the new device then takes over the old ID and its grant, and the old
// device's key no longer works. On both suites: on sm2-sm3 the keys are SM2
// (33 bytes), so the code is 258 hexadecimal digits, not 256. Screenshots go
// to test/screenshots/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { qrSvg } from "../qr.js";
import { skip, shots, withConsortium, phone, makeKey, go, register } from "../test-support/consortium.mjs";

for (const [suite, digits, shot] of [["ed25519-sha256", 256, ""], ["sm2-sm3", 258, "sm-"]]) {
  test(`a patient's recovery contact approves their new device, which takes over the old ID (${suite})`, { skip, timeout: 240_000 }, async () => {
    await withConsortium("medledger-recovery-test", async ({ byId, browser }) => {
      const node = byId["city-first-hospital"];
      mkdirSync(shots, { recursive: true });
      const alice = await phone(browser, node);
      const aliceId = await makeKey(alice);
      await register(alice);
      const bob = await phone(browser, byId["city-second-hospital"]);
      const bobId = await makeKey(bob);
      await register(bob);
      await go(bob, "people");
      await go(alice, "people");
      await alice.locator("#recovery-policy", { hasText: "尚未设置恢复联系人" }).waitFor();

      // Wrong input: her own id, a short id, no threshold; nothing submitted.
      await alice.locator("#contacts").fill(`${aliceId}\n1234`);
      await alice.locator("#threshold").fill("0");
      await alice.getByRole("button", { name: "保存恢复联系人" }).click();
      assert.notEqual(await alice.locator("#contacts-error").textContent(), "");
      assert.notEqual(await alice.locator("#threshold-error").textContent(), "");
      await alice.locator("#contacts").fill(bobId);
      await alice.locator("#threshold").fill("2");
      await alice.getByRole("button", { name: "保存恢复联系人" }).click();
      assert.equal(await alice.locator("#contacts-error").textContent(), "");
      assert.notEqual(await alice.locator("#threshold-error").textContent(), "", "2 of 1 contact");
      assert.match(await alice.locator("#recovery-policy").textContent(), /尚未设置/);

      await alice.locator("#threshold").fill("1");
      await alice.getByRole("button", { name: "保存恢复联系人" }).click();
      // New contacts wait out the ledger's delay (R4.2; 5 s on a testnet):
      // meanwhile the patient is warned above every screen (the home tab
      // counts it), and in the history.
      await alice.locator("#recovery-pending", { hasText: "待生效：新的恢复联系人" }).waitFor();
      await go(alice, "home");
      await alice.locator("#recovery-pending button", { hasText: "取消更改恢复联系人" }).waitFor();
      await alice.locator("#home-count", { hasText: "1" }).waitFor();
      await alice.locator('#recent li[data-event="control_changed"]', { hasText: "恢复联系人已更改" }).waitFor();
      await alice.screenshot({ path: join(shots, shot + "8a-recovery-pending.png"), fullPage: true });
      await go(alice, "people");
      await alice.locator("#recovery-policy", { hasText: "已设置 1 位恢复联系人，需 1 位同意" }).waitFor();
      assert.equal(await alice.locator("#recovery-pending").isHidden(), true, "in force: no longer pending");
      // A grant, to see that the new device takes it over.
      await go(alice, "grants");
      await alice.locator("#grantee").fill("city-second-hospital");
      await alice.locator("#categories input[value=lab-reports]").check();
      await alice.getByRole("button", { name: "同意并授权" }).click();
      const grant = await alice.locator("#grants li[data-grant] .badge.active").first();
      await grant.waitFor();
      await alice.screenshot({ path: join(shots, shot + "8-recovery-contacts.png"), fullPage: true });

      // A new device: a new key for the old ID, and the code to hand over.
      const device = await phone(browser, node);
      await device.getByText("我换了设备，要找回原来的患者编号").click();
      await device.locator("#recover-id").fill("not-an-id");
      await device.getByRole("button", { name: "在本设备上生成新密钥" }).click();
      assert.notEqual(await device.locator("#recover-id-error").textContent(), "");
      // A wrong (but well-formed) ID first: the recovery is cancelled, the
      // device is back at the start and its key is gone.
      await device.locator("#recover-id").fill("ab".repeat(32));
      await device.getByRole("button", { name: "在本设备上生成新密钥" }).click();
      await device.locator("#notice", { hasText: "正在等待恢复联系人批准" }).waitFor();
      await device.getByRole("button", { name: "编号填错了：取消这次找回" }).click();
      await device.locator("#start").waitFor();
      assert.equal(await device.locator("#me").isHidden(), true);
      await device.getByText("我换了设备，要找回原来的患者编号").click();
      await device.locator("#recover-id").fill(aliceId);
      await device.getByRole("button", { name: "在本设备上生成新密钥" }).click();
      await device.locator("#notice", { hasText: "正在等待恢复联系人批准" }).waitFor();
      const code = (await device.locator("#recovery-code").textContent()).trim();
      assert.match(code, new RegExp(`^[0-9a-f]{${digits}}$`));
      // Shown as a QR code too: the same code in uppercase (alphanumeric
      // mode, version 9, 53 modules and the quiet zone; test/qr.test.mjs
      // checks the encoder against an independent one).
      assert.equal(await device.locator("#recovery-qr svg").getAttribute("viewBox"), "0 0 61 61");
      assert.equal(
        await device.locator("#recovery-qr svg path").getAttribute("d"),
        qrSvg(code.toUpperCase(), "qr").match(/ d="([^"]+)"/)[1],
      );
      assert.equal((await device.locator("#patient-id").textContent()).trim(), aliceId);
      assert.equal(await device.locator("#grant-section").isHidden(), true, "nothing to do before approval");
      assert.equal(await device.locator("#tabs").isHidden(), true);
      await device.screenshot({ path: join(shots, shot + "9-recovering.png"), fullPage: true });

      // The contact: an altered code is refused before anything is signed; the real one is approved.
      const altered = code.slice(0, 200) + (code[200] === "0" ? "1" : "0") + code.slice(201);
      await bob.locator("#code").fill(altered);
      await bob.getByRole("button", { name: "我已确认是本人，批准新密钥" }).click();
      await bob.locator("#code-error", { hasText: "恢复码已损坏或被改动" }).waitFor();
      await bob.locator("#code").fill(code.slice(0, 100));
      await bob.getByRole("button", { name: "我已确认是本人，批准新密钥" }).click();
      await bob.locator("#code-error", { hasText: "长度" }).waitFor();
      await bob.locator("#code").fill(code);
      await bob.getByRole("button", { name: "我已确认是本人，批准新密钥" }).click();
      await bob.locator("#notice", { hasText: "已批准对方的新密钥" }).waitFor();
      assert.equal(await bob.locator("#code-error").textContent(), "");
      // The old device is warned that contacts will replace its key (R4.3).
      await go(alice, "history");
      await alice.locator('#history li[data-event="control_changed"]', { hasText: "恢复联系人将用新密钥替换您的密钥" }).waitFor();

      // The new device notices by itself, and holds the old ID's grant.
      await device.locator("#notice", { hasText: "已找回" }).waitFor({ timeout: 30_000 });
      await go(device, "grants");
      await device.locator("#grants li[data-grant] .badge.active").waitFor();
      assert.equal(await device.locator("#recovering").evaluate((e) => e.hidden), true);
      await device.screenshot({ path: join(shots, shot + "10-recovered.png"), fullPage: true });
      // Once recovered, it stays an ordinary device: no code after a reload.
      await device.reload();
      await device.locator("#screen-grants").waitFor();
      await device.locator("#grants li[data-grant] .badge.active").waitFor();
      assert.equal(await device.locator("#recovering").evaluate((e) => e.hidden), true);
      assert.equal((await device.locator("#patient-id").textContent()).trim(), aliceId);

      // The lost device's key is no longer the patient's.
      await alice.reload();
      await alice.locator("#notice", { hasText: "本设备的密钥已不再是您的密钥" }).waitFor();
      assert.equal(await alice.locator("#register").isHidden(), true);
      assert.equal(await alice.locator("#tabs").isHidden(), true);
    }, { cryptoSuite: suite });
  });
}
