// A QR code (ISO/IEC 18004) for the registration desk — the patient's id,
// a record-number link's signature as 128 uppercase hex digits, or a
// recovery code as 256 (258 on an SM chain): error correction level M,
// versions 1 to 9, alphanumeric mode when every character is one of its 45
// (11 bits per pair instead of 16, which is what lets a signature fit
// version 6 and a recovery code version 9), byte mode otherwise, and the
// mask with the lowest penalty. test/qr.test.mjs checks the matrices
// against an independent encoder's for every mask.

// Per version (1-9), level M: [ec codewords per block, [blocks, data codewords each]…].
const VERSIONS = [
  null,
  [10, [1, 16]],
  [16, [1, 28]],
  [26, [1, 44]],
  [18, [2, 32]],
  [24, [2, 43]],
  [16, [4, 27]],
  [18, [4, 31]],
  [22, [2, 38], [2, 39]],
  [22, [3, 36], [2, 37]],
];
const ALIGNMENT = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42], [6, 26, 46]];

/** Data codewords of a version. */
function dataCodewords(version) {
  const [, ...groups] = VERSIONS[version];
  return groups.reduce((n, [blocks, size]) => n + blocks * size, 0);
}

// GF(256) with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = x;
  LOG[x] = i;
  x <<= 1;
  if (x & 0x100) x ^= 0x11d;
}
for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
const mul = (a, b) => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);

function generator(degree) {
  let poly = [1];
  for (let i = 0; i < degree; i++) {
    const next = new Array(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j] ^= poly[j];
      next[j + 1] ^= mul(poly[j], EXP[i]);
    }
    poly = next;
  }
  return poly;
}

function errorCorrection(data, degree) {
  const gen = generator(degree);
  const rem = new Array(degree).fill(0);
  for (const byte of data) {
    const factor = byte ^ rem.shift();
    rem.push(0);
    for (let i = 0; i < degree; i++) rem[i] ^= mul(gen[i + 1], factor);
  }
  return rem;
}

const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/** The segment's bits: alphanumeric mode if every character allows it, else byte mode (versions 1-9). */
function segment(text) {
  const bits = [];
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >> i) & 1);
  };
  if ([...text].every((ch) => ALPHANUMERIC.includes(ch))) {
    put(0b0010, 4);
    put(text.length, 9);
    for (let i = 0; i + 1 < text.length; i += 2) {
      put(ALPHANUMERIC.indexOf(text[i]) * 45 + ALPHANUMERIC.indexOf(text[i + 1]), 11);
    }
    if (text.length % 2) put(ALPHANUMERIC.indexOf(text[text.length - 1]), 6);
  } else {
    const bytes = [...new TextEncoder().encode(text)];
    if (bytes.length > 255) throw new Error("too long for this QR encoder");
    put(0b0100, 4);
    put(bytes.length, 8);
    for (const b of bytes) put(b, 8);
  }
  return bits;
}

function codewords(segmentBits, version) {
  const [ecPerBlock, ...groups] = VERSIONS[version];
  const dataTotal = dataCodewords(version);
  const bits = [...segmentBits];
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >> i) & 1);
  };
  put(0, Math.min(4, dataTotal * 8 - bits.length));
  while (bits.length % 8) bits.push(0);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; data.length < dataTotal; pad ^= 0xec ^ 0x11) data.push(pad);
  // Blocks in order, the second group's one codeword longer (versions 8, 9).
  const dataBlocks = [];
  let at = 0;
  for (const [blocks, size] of groups) {
    for (let b = 0; b < blocks; b++, at += size) dataBlocks.push(data.slice(at, at + size));
  }
  const ecBlocks = dataBlocks.map((block) => errorCorrection(block, ecPerBlock));
  const longest = Math.max(...dataBlocks.map((block) => block.length));
  const out = [];
  for (let i = 0; i < longest; i++) for (const block of dataBlocks) if (i < block.length) out.push(block[i]);
  for (let i = 0; i < ecPerBlock; i++) for (const block of ecBlocks) out.push(block[i]);
  return out;
}

/** Version information (versions 7 and up): the version and its BCH(18, 6) code. */
function versionBits(version) {
  let rem = version << 12;
  for (let i = 17; i >= 12; i--) if (rem & (1 << i)) rem ^= 0x1f25 << (i - 12);
  return (version << 12) | rem;
}

/** Where the version information's bits go, least significant first: [top-right, bottom-left] blocks. */
function versionPositions(n) {
  const topRight = [];
  const bottomLeft = [];
  for (let i = 0; i < 18; i++) {
    topRight.push([Math.floor(i / 3), n - 11 + (i % 3)]);
    bottomLeft.push([n - 11 + (i % 3), Math.floor(i / 3)]);
  }
  return [topRight, bottomLeft];
}

function formatBits(mask) {
  const data = (0b00 << 3) | mask; // level M
  let rem = data << 10;
  for (let i = 14; i >= 10; i--) if (rem & (1 << i)) rem ^= 0x537 << (i - 10);
  return ((data << 10) | rem) ^ 0x5412;
}

const MASKS = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

function base(version) {
  const n = 17 + 4 * version;
  const m = Array.from({ length: n }, () => new Array(n).fill(null));
  const finder = (r0, c0) => {
    for (let r = -1; r <= 7; r++)
      for (let c = -1; c <= 7; c++) {
        const rr = r0 + r;
        const cc = c0 + c;
        if (rr < 0 || cc < 0 || rr >= n || cc >= n) continue;
        const ring = Math.max(Math.abs(r - 3), Math.abs(c - 3));
        m[rr][cc] = ring !== 2 && ring !== 4;
      }
  };
  finder(0, 0);
  finder(0, n - 7);
  finder(n - 7, 0);
  for (let i = 8; i < n - 8; i++) {
    m[6][i] = i % 2 === 0;
    m[i][6] = i % 2 === 0;
  }
  const centres = ALIGNMENT[version];
  const first = centres[0];
  const last = centres[centres.length - 1];
  for (const r of centres)
    for (const c of centres) {
      // All but the three beside the finder patterns (those on the timing
      // patterns, from version 7 on, are kept: they agree with them).
      if ((r === first && c === first) || (r === first && c === last) || (r === last && c === first)) continue;
      for (let dr = -2; dr <= 2; dr++)
        for (let dc = -2; dc <= 2; dc++) m[r + dr][c + dc] = Math.max(Math.abs(dr), Math.abs(dc)) !== 1;
    }
  m[n - 8][8] = true; // the dark module
  if (version >= 7) {
    const bits = versionBits(version);
    for (const list of versionPositions(n))
      list.forEach(([r, c], i) => {
        m[r][c] = ((bits >> i) & 1) === 1;
      });
  }
  return m;
}

function formatPositions(n) {
  const first = [];
  for (let i = 0; i <= 5; i++) first.push([8, i]);
  first.push([8, 7], [8, 8], [7, 8]);
  for (let i = 5; i >= 0; i--) first.push([i, 8]);
  const second = [];
  for (let i = 0; i < 7; i++) second.push([n - 1 - i, 8]);
  for (let i = 0; i < 8; i++) second.push([8, n - 8 + i]);
  return [first, second];
}

function place(version, words, mask) {
  const m = base(version);
  const n = m.length;
  const reserved = m.map((row) => row.map((v) => v !== null));
  for (const list of formatPositions(n)) for (const [r, c] of list) reserved[r][c] = true;
  const bits = [];
  for (const w of words) for (let i = 7; i >= 0; i--) bits.push((w >> i) & 1);
  let k = 0;
  let upward = true;
  for (let right = n - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    for (let step = 0; step < n; step++) {
      const r = upward ? n - 1 - step : step;
      for (const c of [right, right - 1]) {
        if (reserved[r][c]) continue;
        const bit = k < bits.length ? bits[k] === 1 : false;
        k++;
        m[r][c] = bit !== MASKS[mask](r, c);
      }
    }
    upward = !upward;
  }
  const format = formatBits(mask);
  for (const list of formatPositions(n))
    list.forEach(([r, c], i) => {
      m[r][c] = ((format >> (14 - i)) & 1) === 1;
    });
  return m;
}

function penalty(m) {
  const n = m.length;
  let score = 0;
  const lines = [];
  for (let i = 0; i < n; i++) {
    lines.push(m[i]);
    lines.push(m.map((row) => row[i]));
  }
  for (const line of lines) {
    let run = 1;
    for (let i = 1; i <= n; i++) {
      if (i < n && line[i] === line[i - 1]) run++;
      else {
        if (run >= 5) score += run - 2;
        run = 1;
      }
    }
    const text = line.map((v) => (v ? "1" : "0")).join("");
    for (const pattern of ["10111010000", "00001011101"]) {
      for (let i = text.indexOf(pattern); i >= 0; i = text.indexOf(pattern, i + 1)) score += 40;
    }
  }
  for (let r = 0; r < n - 1; r++)
    for (let c = 0; c < n - 1; c++) {
      const v = m[r][c];
      if (m[r][c + 1] === v && m[r + 1][c] === v && m[r + 1][c + 1] === v) score += 3;
    }
  const dark = m.flat().filter(Boolean).length;
  score += Math.floor(Math.abs((dark * 100) / (n * n) - 50) / 5) * 10;
  return score;
}

/** The module matrix (true = dark) of `text`, with `mask` or the best one. */
export function qrMatrix(text, mask) {
  const bits = segment(text);
  const version = [1, 2, 3, 4, 5, 6, 7, 8, 9].find((v) => bits.length <= dataCodewords(v) * 8);
  if (!version) throw new Error("too long for this QR encoder");
  const words = codewords(bits, version);
  if (mask !== undefined) return place(version, words, mask);
  let best = null;
  for (let k = 0; k < 8; k++) {
    const m = place(version, words, k);
    const p = penalty(m);
    if (!best || p < best.p) best = { m, p };
  }
  return best.m;
}

/** An SVG image of the QR code, with a quiet zone of four modules. */
export function qrSvg(text, label) {
  const m = qrMatrix(text);
  const n = m.length + 8;
  let path = "";
  m.forEach((row, r) =>
    row.forEach((dark, c) => {
      if (dark) path += `M${c + 4} ${r + 4}h1v1h-1z`;
    }),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${n} ${n}" role="img" aria-label="${label}" shape-rendering="crispEdges"><rect width="${n}" height="${n}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`;
}
