// What the app's end-to-end tests share: the medledger binary and Debian's
// Chromium, a local four-node testnet started as real processes on
// 127.0.0.1 (free ports chosen by `medledger testnet`), and waiting with a
// deadline. Kept outside test/ so that `node --test test/` does not run it.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME, ".cache/medledger-target");
export const BIN = process.env.MEDLEDGER_BIN || join(target, "debug/medledger");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const shots = new URL("../test/screenshots/", import.meta.url).pathname;

/** Why the end-to-end tests cannot run here, or false. */
export const skip = !existsSync(BIN)
  ? `no medledger binary at ${BIN} (run cargo build first)`
  : !existsSync(CHROMIUM)
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

/** Runs the medledger CLI; its standard output. */
export function cli(args) {
  return execFileSync(BIN, args, { encoding: "utf8" });
}

/** Polls `check` until it gives a truthy value, or fails after `ms`. */
export async function waitFor(check, what, ms = 60_000) {
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

/**
 * A testnet of four validators (node processes) on `cryptoSuite`, and a headless Chromium;
 * `run(consortium)` is called once the first block is committed, and
 * everything is stopped and removed afterwards, whatever happens.
 */
export async function withConsortium(chainId, run, { cryptoSuite = "ed25519-sha256" } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "medledger-app-"));
  cli(["testnet", "--init-only", "--dir", dir, "--chain-id", chainId, "--crypto-suite", cryptoSuite]);
  const layout = JSON.parse(readFileSync(join(dir, "testnet.json"), "utf8"));
  const nodes = layout.nodes.map((n) =>
    spawn(BIN, ["node", "run", "--home", n.home], { stdio: "ignore", env: { ...process.env, RUST_LOG: "warn" } }),
  );
  const byId = Object.fromEntries(layout.nodes.map((n) => [n.institution, n]));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  try {
    const first = byId["city-first-hospital"];
    await waitFor(async () => (await (await fetch(`${first.http}/v1/status`)).json()).height >= 1, "first block");
    await run({ dir, byId, browser, genesis: join(dir, "genesis.json") });
  } finally {
    await browser.close();
    for (const n of nodes) n.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A phone-sized page of the app on `node`, accepting confirmation dialogs. */
export async function phone(browser, node) {
  const page = await (await browser.newContext({ viewport: { width: 360, height: 780 } })).newPage();
  page.on("dialog", (d) => d.accept());
  await page.goto(`${node.http}/app`);
  return page;
}

/** Makes the key in the app and waits for the patient id it shows. */
export async function makeKey(page) {
  await page.getByRole("button", { name: "生成我的密钥" }).click();
  // The key is made and stored asynchronously (WebCrypto, IndexedDB): wait for the id.
  await page.waitForFunction(
    () => /^[0-9a-f]{64}$/.test((document.querySelector("#patient-id")?.textContent ?? "").trim()),
    null,
    { timeout: 30_000 },
  );
  return (await page.locator("#patient-id").textContent()).trim();
}

/** Opens one of the app's screens from its tab bar (the ID screen from the header's link). */
export async function go(page, screen) {
  await page.locator(screen === "me" ? "#me-link" : `#tabs a[data-screen=${screen}]`).click();
  await page.locator(`#screen-${screen}`).waitFor();
}

/** Registers the page's key on the ledger: once the node accepts it, the home screen opens. */
export async function register(page) {
  await page.getByRole("button", { name: "在账本上登记" }).click();
  await page.locator("#screen-home").waitFor();
  await page.locator("#tabs").waitFor();
}

/**
 * What stands in the way of a patient using the page as it is now: form
 * controls without an accessible name, unnamed buttons and images, text
 * below WCAG AA contrast (4.5:1, 3:1 for large text), a page wider than the
 * screen, no language. An empty list when there is nothing.
 */
export async function accessibilityProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    const visible = (el) => el.offsetParent !== null || el.getClientRects().length > 0;
    const named = (el) =>
      (el.getAttribute("aria-label") || "").trim() ||
      (el.getAttribute("aria-labelledby") || "").split(/\s+/).map((id) => document.getElementById(id)?.textContent ?? "").join("").trim() ||
      (el.id && [...document.querySelectorAll(`label[for="${el.id}"]`)].map((l) => l.textContent).join("").trim()) ||
      (el.closest("label")?.textContent ?? "").trim();
    const what = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className ? "." + String(el.className).split(" ").join(".") : ""}`;
    if (!document.documentElement.lang) problems.push("no lang on <html>");
    for (const el of document.querySelectorAll("input, select, textarea")) {
      if (el.type !== "hidden" && visible(el) && !named(el)) problems.push(`unnamed control ${what(el)}`);
    }
    for (const el of document.querySelectorAll("button")) {
      if (visible(el) && !(el.textContent.trim() || el.getAttribute("aria-label"))) problems.push(`unnamed button ${what(el)}`);
    }
    for (const el of document.querySelectorAll("svg[role=img], img")) {
      if (!(el.getAttribute("aria-label") || el.getAttribute("alt"))) problems.push(`image without a text ${what(el)}`);
    }
    if (document.documentElement.scrollWidth > window.innerWidth) {
      problems.push(`page ${document.documentElement.scrollWidth}px wide on a ${window.innerWidth}px screen`);
    }
    const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
      const c = [r, g, b].map((v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    for (const el of document.querySelectorAll("body *")) {
      const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!text || !visible(el)) continue;
      const style = getComputedStyle(el);
      const [a, b] = [luminance(rgb(style.color).slice(0, 3)), luminance(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)} for ${what(el)}: "${el.textContent.trim().slice(0, 30)}"`);
    }
    return problems;
  });
}

/** Presses Tab until `locator` has the focus (at most `presses` times). */
export async function tabTo(page, locator, presses = 120) {
  const target = await locator.elementHandle();
  for (let i = 0; i < presses; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((t) => document.activeElement === t, target)) return true;
  }
  return false;
}
