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
 * A testnet of four validators (node processes) and a headless Chromium;
 * `run(consortium)` is called once the first block is committed, and
 * everything is stopped and removed afterwards, whatever happens.
 */
export async function withConsortium(chainId, run) {
  const dir = mkdtempSync(join(tmpdir(), "medledger-app-"));
  cli(["testnet", "--init-only", "--dir", dir, "--chain-id", chainId]);
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
