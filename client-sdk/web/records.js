// The patient's own records (rule R7.8), fetched in the browser: the
// request on the ledger, the fetch signed with the patient's key and sealed
// to a one-time key made here, every chunk opened (app-crypto.wasm), every
// item checked against the manifest, and the manifest's salted hashes
// against the release the holder committed — the checks the Rust SDK's
// `records::fetch_own_records` makes (docs/records.md).
import * as bcs from "./bcs.js";
import { loadAppCrypto, transferOpener } from "./suite.js";

/** Largest frame (transfer's GATEWAY_MESSAGE_BYTES_MAX: a chunk and its framing). */
const FRAME_MAX = 256 * 1024 + 64 * 1024;
/** Most items in one transfer (the ledger's limit on a release's hashes). */
const ITEMS_MAX = 256;
/**
 * Most bytes one download may hold: the page keeps each record whole in
 * memory (to hash it and offer it as a file), so a large imaging study is
 * for the CLI or the SDK, which write chunk by chunk.
 */
const DOWNLOAD_BYTES_MAX = 512 * 1024 * 1024;

/** Reads BCS, strictly: a read past the end, or bytes left over, is an error. */
class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.at = 0;
  }
  take(n) {
    if (this.at + n > this.bytes.length) throw new Error("a gateway frame ends early");
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8() {
    return this.take(1)[0];
  }
  /** A ULEB128 length or tag as BCS writes it: canonical, at most 2^31 − 1. */
  uleb() {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.u8();
      value += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) {
        if (shift > 0 && byte === 0) throw new Error("a gateway frame's length is not canonical");
        if (value > 0x7fffffff) throw new Error("a length in a gateway frame is too long");
        return value;
      }
    }
    throw new Error("a length in a gateway frame is too long");
  }
  u32() {
    const b = this.take(4);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }
  u64() {
    const b = this.take(8);
    const value = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("a number in a gateway frame is too large");
    return Number(value);
  }
  bool() {
    const b = this.u8();
    if (b > 1) throw new Error("a gateway frame's boolean is neither 0 nor 1");
    return b === 1;
  }
  vecBytes() {
    return this.take(this.uleb()).slice();
  }
  string() {
    return new TextDecoder("utf-8", { fatal: true }).decode(this.vecBytes());
  }
  end() {
    if (this.at !== this.bytes.length) throw new Error("a gateway frame has bytes left over");
  }
}

function readItems(r) {
  const count = r.uleb();
  if (count > ITEMS_MAX) throw new Error("too many items in a manifest");
  const items = [];
  for (let i = 0; i < count; i++) {
    const path = r.string();
    const category = bcs.CATEGORIES[r.uleb()];
    if (category === undefined) throw new Error("an item of an unknown category");
    items.push({ path, category, size: r.u64(), contentHash: r.take(32).slice() });
  }
  return items;
}

/** One `GatewayResponse` (transfer/src/lib.rs), decoded from BCS. */
export function decodeResponse(bytes) {
  const r = new Reader(bytes);
  let out;
  switch (r.uleb()) {
    case 0:
      out = { kind: "manifest", transfer: r.take(32).slice(), encapsulatedKey: r.vecBytes(), items: readItems(r) };
      break;
    case 1:
      out = { kind: "chunk", seq: r.u64(), item: r.u32(), last: r.bool(), sealed: r.vecBytes() };
      break;
    case 2:
      out = { kind: "refused", code: r.string(), message: r.string() };
      break;
    case 3:
      out = { kind: "wait", retryMs: r.u32() };
      break;
    case 4:
      out = {
        kind: "sealedManifest",
        transfer: r.take(32).slice(),
        encapsulatedKey: r.vecBytes(),
        itemCount: r.u32(),
        items: { encapsulatedKey: r.vecBytes(), sealed: r.vecBytes() },
      };
      break;
    default:
      throw new Error("an unknown gateway response");
  }
  r.end();
  return out;
}

/**
 * The frames of a streamed answer (big-endian u32 length, then BCS), one at
 * a time. Returning early (a failed check) cancels the stream, so the
 * relaying node stops asking the holder for more.
 */
async function* frames(response) {
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  try {
    for (;;) {
      while (buffer.length >= 4) {
        const length = new DataView(buffer.buffer, buffer.byteOffset, 4).getUint32(0, false);
        if (length > FRAME_MAX) throw new Error(`a frame of ${length} bytes is too large`);
        if (buffer.length < 4 + length) break;
        yield decodeResponse(buffer.slice(4, 4 + length));
        buffer = buffer.slice(4 + length);
      }
      const { value, done } = await reader.read();
      if (done) {
        if (buffer.length) throw new Error("the transfer ended inside a frame");
        return;
      }
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * A safe name for a record: `category/name`, the category the item's own,
 * each part plain ASCII letters, digits, '.', '_' or '-' (no '..', no
 * control or direction characters that could disguise an extension).
 */
function safeName(item) {
  const parts = item.path.split("/");
  return (
    parts.length === 2
    && parts[0] === item.category
    && /^[A-Za-z0-9._-]{1,128}$/.test(parts[1])
    && parts[1] !== "."
    && parts[1] !== ".."
  );
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A one-time key of the chain's suite: `{sm, secret, publicRaw}`. */
function oneTimeKey(node, opener) {
  const sm = node.suite.name === "sm2-sm3";
  for (;;) {
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const publicRaw = sm ? node.suite.publicKeyOf(secret) : opener.x25519Public(secret);
    if (publicRaw) return { sm, secret, publicRaw };
    // About one SM2 draw in 2^32 is not a usable scalar: draw again.
  }
}

/**
 * Asks `holder` on the ledger for the patient's own records in
 * `categories`, then fetches them through `node`: resolves to
 * `{request, releaseHeight, items: [{path, category, size, bytes}]}`,
 * every item checked. `progress(step)` is told "asked", "manifest", each
 * item's path as it completes, and "checked".
 */
export async function fetchOwnRecords(node, key, { holder, categories }, progress = () => {}) {
  const answer = await node.submit(key, { kind: "ownRecordsRequest", holder, categories });
  if (answer.outcome?.status !== "authorized") {
    throw new Error(`the request was not recorded: ${answer.outcome?.reason ?? answer.outcome?.status}`);
  }
  progress("asked");
  const opener = transferOpener(await loadAppCrypto(node.base));
  const oneTime = oneTimeKey(node, opener);
  let stream = null;
  try {
    stream = await openStream(node, key, answer, holder, oneTime);
    return await receive(node, key, answer, opener, oneTime, stream, progress);
  } finally {
    // Whatever happened: the one-time secret, the module's transfer keys
    // and the last plaintext in its buffer are wiped, the stream cancelled.
    oneTime.secret.fill(0);
    opener.end();
    await stream?.return();
  }
}

/** Signs the fetch, posts it, and returns the frames that answer it. */
async function openStream(node, key, answer, holder, oneTime) {
  // OwnFetchAuthorization (transfer/src/lib.rs), then the patient's key and signature.
  const authorization = new bcs.Writer()
    .string(node.chain)
    .fixed32(answer.tx)
    .string(holder)
    .fixed32(key.patient)
    .uleb(node.suite.tag)
    .bytes(oneTime.publicRaw)
    // The node's clock, as `submit` counts (the holder refuses a fetch
    // more than 5 minutes from its own).
    .u64(BigInt(Date.now() + (node.clockOffsetMs ?? 0)))
    .u64(BigInt(answer.height))
    .finish();
  const digest = await bcs.hash("medledger/records-fetch-own/v1", authorization);
  const signature = await node.signDigest(key, digest);
  const signedFetch = bcs.signedTransactionBytes(authorization, key.publicRaw, signature);
  const response = await node.postSigned(key, "/v1/records/own-fetch", JSON.stringify({ fetch: bcs.toHex(signedFetch) }));
  return frames(response);
}

/** Opens the sealed manifest and every chunk, checks every item and the release. */
async function receive(node, key, answer, opener, oneTime, stream, progress) {
  const first = (await stream.next()).value;
  if (first?.kind === "refused") throw Object.assign(new Error(first.message), { code: first.code });
  if (first?.kind !== "sealedManifest") throw new Error("the transfer did not start with a sealed manifest");
  // The items, sealed to the one-time key as a one-chunk transfer of their own.
  const itemsTransfer = await bcs.hash("medledger/sealed-items/v1", first.transfer);
  opener.start(oneTime.sm, oneTime.secret, itemsTransfer, first.items.encapsulatedKey);
  const listed = new Reader(opener.open(0, 0, true, first.items.sealed));
  const items = readItems(listed);
  listed.end();
  if (items.length !== first.itemCount || !items.every(safeName)) {
    throw new Error("the manifest is malformed (another count than it says, or unsafe names)");
  }
  if (items.reduce((n, i) => n + i.size, 0) > DOWNLOAD_BYTES_MAX) {
    throw new Error("these records are too large to open in the browser; use `medledger patient fetch-own`");
  }
  progress("manifest");
  opener.start(oneTime.sm, oneTime.secret, first.transfer, first.encapsulatedKey);
  oneTime.secret.fill(0);
  const received = [];
  let seq = 0;
  for (const [index, item] of items.entries()) {
    const parts = [];
    let size = 0;
    for (;;) {
      const { value: frame, done } = await stream.next();
      if (done) throw new Error("the transfer ended early");
      if (frame.kind === "refused") throw Object.assign(new Error(frame.message), { code: frame.code });
      if (frame.kind !== "chunk" || frame.seq !== seq || frame.item !== index) {
        throw new Error(`chunk ${seq} is out of place; transfer aborted`);
      }
      const plain = opener.open(frame.seq, frame.item, frame.last, frame.sealed);
      parts.push(plain);
      size += plain.length;
      seq += 1;
      if (frame.last) break;
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      bytes.set(part, at);
      at += part.length;
    }
    if (size !== item.size || !equalBytes(await node.suite.digest(bytes), item.contentHash)) {
      throw new Error(`${item.path} does not match the manifest; transfer aborted`);
    }
    received.push({ path: item.path, category: item.category, size, bytes });
    progress(item.path);
  }
  // The release the holder committed before sending must list exactly
  // these items' hashes under this transfer's salt.
  const salt = opener.salt();
  const expected = [];
  for (const item of items) expected.push(bcs.toHex(await bcs.hash("medledger/released-content/v1", salt, item.contentHash)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const own = await node.getSigned(key, `/v1/own-accesses/${answer.tx}`);
    if (own.release) {
      if (own.release.content_hashes.join() !== expected.join()) {
        throw new Error("the holder's committed release lists other hashes than it sent");
      }
      progress("checked");
      return { request: answer.tx, releaseHeight: own.release.height, items: received };
    }
    if (Date.now() > deadline) throw new Error("the holder's release did not commit within 30 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * What a lab result says, for a table: `{name, value, date}` of a FHIR
 * Observation, or null for anything else (shown as a file to download).
 */
export function labRow(item) {
  if (!item.path.endsWith(".json")) return null;
  let resource;
  try {
    resource = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(item.bytes));
  } catch {
    return null;
  }
  if (resource?.resourceType !== "Observation") return null;
  const coding = resource.code?.coding?.[0];
  const name = resource.code?.text ?? coding?.display ?? coding?.code ?? item.path;
  const q = resource.valueQuantity;
  const value = q
    ? `${q.value ?? ""} ${q.unit ?? q.code ?? ""}`.trim()
    : resource.valueString ?? resource.valueCodeableConcept?.text ?? resource.valueCodeableConcept?.coding?.[0]?.display ?? "";
  const date = resource.effectiveDateTime ?? resource.issued ?? resource.effectivePeriod?.start ?? "";
  return { name: String(name), value: String(value), date: String(date) };
}
