// The ClientHello reader (worker/client-hello.ts) on real hellos, captured from
// Node's TLS client and from openssl s_client by a server that never answers;
// then the same hellos cut into every prefix, re-framed into records of any
// size, edited into the malformed, and plain traffic that is not TLS at all.
import test from "ava";
import fc from "fast-check";
import { spawn, spawnSync } from "node:child_process";
import net from "node:net";
import tls from "node:tls";
import { CLIENT_HELLO_MAX_BYTES, parseClientHello, type HelloResult } from "../worker/client-hello.js";

/** A name of 253 characters, the most DNS allows, in four labels. */
const LONGEST = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
/** ALPN protocol names enough to make a hello of about `bytes`. */
const alpn = (bytes: number): string[] => Array.from({ length: Math.ceil(bytes / 42) }, (_, i) => `proto-${String(i).padStart(35, "0")}`);
const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;

/** The first bytes a client sends to a server that never answers: its ClientHello, all of it (the client then waits). */
async function capture(connect: (port: number) => () => void): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const got = new Promise<Buffer>((resolve) => {
    server.once("connection", (socket) => {
      const chunks: Buffer[] = [];
      let quiet: NodeJS.Timeout | undefined;
      const finish = (): void => {
        clearTimeout(quiet);
        socket.destroy();
        resolve(Buffer.concat(chunks));
      };
      // The client sends its hello in one go and then waits for a ServerHello: silence means we have it all.
      socket.on("data", (data: Buffer) => {
        chunks.push(data);
        clearTimeout(quiet);
        quiet = setTimeout(finish, 300);
      });
      socket.on("end", finish);
      socket.on("error", finish);
    });
  });
  const close = connect((server.address() as net.AddressInfo).port);
  try {
    return await got;
  } finally {
    close();
    server.close();
  }
}

function nodeHello(options: tls.ConnectionOptions, maxSendFragment?: number): Promise<Buffer> {
  return capture((port) => {
    const socket = tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false, ...options });
    // Records of this size at most, so a large hello comes in several: record fragmentation from a real stack.
    if (maxSendFragment !== undefined) socket.setMaxSendFragment(maxSendFragment);
    socket.on("error", () => {});
    return () => socket.destroy();
  });
}

function opensslHello(args: string[]): Promise<Buffer> {
  return capture((port) => {
    const child = spawn("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, ...args], { stdio: ["ignore", "ignore", "ignore"] });
    return () => child.kill();
  });
}

interface Real {
  wire: Buffer;
  serverName: string | undefined;
}
const real: Record<string, Real> = {};
/** One too long for a host name (255 bytes); OpenSSL sends up to 255. */
let tooLong: Buffer;
/** ALPN enough for about 20 KB: two records, over CLIENT_HELLO_MAX_BYTES. */
let oversized: Buffer;

test.before(async () => {
  const named = async (name: string | undefined, hello: Promise<Buffer>): Promise<Real> => ({ wire: await hello, serverName: name });
  const [plain, mixedCase, noSni, longest, bigAlpn, fragmented, openssl, openssl12] = await Promise.all([
    named("api.example.com", nodeHello({ servername: "api.example.com" })),
    named("mixed.example.com", nodeHello({ servername: "MiXeD.Example.COM." })),
    named(undefined, nodeHello({})),
    named(LONGEST, nodeHello({ servername: LONGEST })),
    named("big.example.com", nodeHello({ servername: "big.example.com", ALPNProtocols: alpn(12000) })),
    named("frag.example.com", nodeHello({ servername: "frag.example.com", ALPNProtocols: alpn(3000) }, 512)),
    hasOpenssl ? named("x.example.com", opensslHello(["-servername", "x.example.com"])) : undefined,
    hasOpenssl ? named("y.example.com", opensslHello(["-servername", "y.example.com", "-tls1_2"])) : undefined,
  ]);
  Object.assign(real, { plain, mixedCase, noSni, longest, bigAlpn, fragmented });
  if (openssl && openssl12) Object.assign(real, { openssl, openssl12 });
  tooLong = await nodeHello({ servername: `${"e".repeat(60)}.${"f".repeat(194)}` });
  oversized = await nodeHello({ servername: "huge.example.com", ALPNProtocols: alpn(20000) });
});

const RECORD_MAX = 16384;

/** The handshake bytes a (valid) wire capture carries in its records. */
function handshake(wire: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at + 5 <= wire.length; at += 5 + wire.readUInt16BE(at + 3)) parts.push(wire.subarray(at + 5, at + 5 + wire.readUInt16BE(at + 3)));
  const all = Buffer.concat(parts);
  return all.subarray(0, 4 + all.readUIntBE(1, 3));
}

/** `message` in handshake records of the given sizes, cycled; the last record takes what is left. */
function frame(message: Buffer, sizes: number[] | number, version = 0x0301): Buffer {
  const cycle = typeof sizes === "number" ? [sizes] : sizes;
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < message.length; i++) {
    const chunk = message.subarray(at, at + cycle[i % cycle.length]!);
    out.push(Buffer.from([22, version >> 8, version & 0xff, chunk.length >> 8, chunk.length & 0xff]), chunk);
    at += chunk.length;
  }
  return Buffer.concat(out);
}

const u8 = (n: number): Buffer => Buffer.from([n]);
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);

/** A ClientHello cut into what precedes its extensions, and the extensions, to edit and put back together. */
interface Parts {
  fixed: Buffer;
  extensions: Array<{ type: number; data: Buffer }>;
}

function parts(wire: Buffer): Parts {
  const body = handshake(wire).subarray(4);
  let at = 2 + 32;
  at += 1 + body[at]!;
  at += 2 + body.readUInt16BE(at);
  at += 1 + body[at]!;
  const extensions: Parts["extensions"] = [];
  for (let p = at + 2; p < body.length; p += 4 + body.readUInt16BE(p + 2)) extensions.push({ type: body.readUInt16BE(p), data: body.subarray(p + 4, p + 4 + body.readUInt16BE(p + 2)) });
  return { fixed: body.subarray(0, at), extensions };
}

/** The hello in one record; `extensionsLength` overrides the length its extensions block states. */
function build(p: Parts, extensionsLength?: number): Buffer {
  const extensions = Buffer.concat(p.extensions.map((e) => Buffer.concat([u16(e.type), u16(e.data.length), e.data])));
  const body = Buffer.concat([p.fixed, u16(extensionsLength ?? extensions.length), extensions]);
  return frame(Buffer.concat([u8(1), u24(body.length), body]), RECORD_MAX);
}

/** server_name extension data: a list of (name_type, name) entries. */
function sni(...entries: Array<[number, Buffer | string]>): Buffer {
  const list = Buffer.concat(entries.map(([type, name]) => Buffer.concat([u8(type), u16(name.length), (typeof name === "string" ? Buffer.from(name, "latin1") : name)])));
  return Buffer.concat([u16(list.length), list]);
}

/** The plain real hello with its server_name extension's data replaced. */
function withSni(data: Buffer): Buffer {
  const p = parts(real.plain!.wire);
  return build({ ...p, extensions: p.extensions.map((e) => (e.type === 0 ? { type: 0, data } : e)) });
}

const reason = (r: HelloResult, state: "invalid" | "not-tls"): string => (r.state === state ? r.reason : `not ${state}: ${JSON.stringify(r)}`);

test("real hellos from Node and openssl s_client: the name, lowercased without its trailing dot; none without SNI", (t) => {
  if (!hasOpenssl) t.log("no openssl here: its hellos are not tried");
  for (const [label, { wire, serverName }] of Object.entries(real)) t.deepEqual(parseClientHello(wire), { state: "done", serverName }, label);
  // The big one is one record of more than 12 KB; the fragmented one came in records of 512 bytes.
  t.true(real.bigAlpn!.wire.length > 12000);
  t.true(real.fragmented!.wire.length > 3000 && real.fragmented!.wire[5 + 512] === 22);
});

test("whatever follows the hello (the next record, another protocol's bytes) is not the parser's business", (t) => {
  const after = Buffer.concat([real.plain!.wire, Buffer.from([23, 3, 3, 0, 5, 1, 2, 3, 4, 5]), Buffer.from("GET / HTTP/1.1\r\n")]);
  t.deepEqual(parseClientHello(after), { state: "done", serverName: "api.example.com" });
});

test("every prefix of a real hello, as TCP may deliver it, is incomplete, never not-tls or invalid", (t) => {
  for (const [label, { wire }] of Object.entries(real)) {
    for (let n = 0; n < wire.length; n++) {
      const r = parseClientHello(wire.subarray(0, n));
      if (r.state !== "incomplete") return t.fail(`${label}: ${n} of ${wire.length} bytes: ${JSON.stringify(r)}`);
    }
  }
  t.pass();
});

test("record fragmentation: a real hello re-framed into records of 1 byte, of 2..7 bytes, of 100 bytes gives the same name, and each prefix is incomplete", (t) => {
  const message = handshake(real.plain!.wire);
  for (const sizes of [1, [2, 3, 5, 7], 100]) {
    const wire = frame(message, sizes, 0x0303);
    t.deepEqual(parseClientHello(wire), { state: "done", serverName: "api.example.com" }, `records of ${String(sizes)}`);
    for (let n = 0; n < wire.length; n++) if (parseClientHello(wire.subarray(0, n)).state !== "incomplete") return t.fail(`records of ${String(sizes)}: ${n} bytes`);
  }
});

test("not TLS, decided from the first bytes: HTTP, a PROXY header, SSLv2, other record types and versions, a handshake other than ClientHello", (t) => {
  t.regex(reason(parseClientHello(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), "not-tls"), /content type 71/);
  t.regex(reason(parseClientHello(Buffer.from("G")), "not-tls"), /content type/, "one byte is enough");
  t.is(parseClientHello(Buffer.from("PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n")).state, "not-tls");
  t.is(parseClientHello(Buffer.from("0d0a0d0a000d0a515549540a2111000c", "hex")).state, "not-tls", "PROXY v2");
  // An SSLv2-compatible hello: a 2-byte length with the high bit set, then type 1, then version 3.1.
  t.is(parseClientHello(Buffer.from("802e0103010015", "hex")).state, "not-tls");
  t.regex(reason(parseClientHello(Buffer.from("150301", "hex")), "not-tls"), /content type 21/, "an alert");
  t.regex(reason(parseClientHello(Buffer.from("1602", "hex")), "not-tls"), /version 2\.x/);
  t.regex(reason(parseClientHello(Buffer.from("160300", "hex")), "not-tls"), /version 3\.0/, "SSL 3.0");
  t.regex(reason(parseClientHello(Buffer.from("160305", "hex")), "not-tls"), /version 3\.5/);
  t.regex(reason(parseClientHello(Buffer.from("1603010000", "hex")), "not-tls"), /empty/);
  t.regex(reason(parseClientHello(Buffer.from("160303003002", "hex")), "not-tls"), /type 2, not a ClientHello/, "a ServerHello");
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }).filter((b) => b[0] !== 22), (bytes) => parseClientHello(Buffer.from(bytes)).state === "not-tls"),
    { numRuns: 1000 },
  );
});

test("invalid: a hello over CLIENT_HELLO_MAX_BYTES, whole and a byte at a time; a record over 2^14", (t) => {
  t.true(oversized.length > CLIENT_HELLO_MAX_BYTES && oversized[5 + RECORD_MAX] === 22, "a real hello of two records");
  t.regex(reason(parseClientHello(oversized), "invalid"), /over 16384/);
  // The handshake header says how long it will be: refused from its ninth byte on.
  for (let n = 0; n <= oversized.length; n++) {
    const r = parseClientHello(oversized.subarray(0, n));
    if (r.state !== (n < 9 ? "incomplete" : "invalid")) return t.fail(`${n} bytes: ${JSON.stringify(r)}`);
  }
  t.regex(reason(parseClientHello(Buffer.from("1603014001", "hex")), "invalid"), /16385 bytes, over 16384/);
  t.regex(reason(parseClientHello(Buffer.from("16030141", "hex")), "invalid"), /more than 16384/);
});

test("invalid: a hello within the bound in records so small that, headers included, it is over it; a byte at a time it turns invalid before 16385 bytes", (t) => {
  const message = handshake(real.fragmented!.wire);
  t.true(message.length < CLIENT_HELLO_MAX_BYTES && message.length * 6 > CLIENT_HELLO_MAX_BYTES);
  const wire = frame(message, 1);
  let first = -1;
  for (let n = 0; n <= wire.length; n++) {
    const r = parseClientHello(wire.subarray(0, n)).state;
    if (first < 0 && r === "invalid") first = n;
    if (r !== (first < 0 ? "incomplete" : "invalid")) return t.fail(`${n} bytes: ${r}`);
  }
  t.true(first > 0 && first <= CLIENT_HELLO_MAX_BYTES + 1, `invalid from ${first} bytes`);
});

test("invalid: lengths that lie, a truncated extension list, a duplicate extension, a bad field", (t) => {
  const p = parts(real.plain!.wire);
  const whole = build(p);
  const extensionsBytes = whole.length - 5 - 4 - p.fixed.length - 2;
  // The block says more, or less, than the hello holds.
  t.regex(reason(parseClientHello(build(p, extensionsBytes + 1)), "invalid"), /extensions of/);
  t.regex(reason(parseClientHello(build(p, extensionsBytes - 1)), "invalid"), /extensions of/);
  // The last extension cut short: the block's length still counts it.
  const truncated = build({ ...p, extensions: p.extensions.map((e, i) => (i === p.extensions.length - 1 ? { ...e, data: e.data.subarray(0, -1) } : e)) }, extensionsBytes);
  t.regex(reason(parseClientHello(truncated), "invalid"), /extensions of|runs past/);
  // The last extension's length runs past the block.
  const lying = Buffer.from(whole);
  const lastLength = whole.length - p.extensions.at(-1)!.data.length - 2;
  lying.writeUInt16BE(lying.readUInt16BE(lastLength) + 1, lastLength);
  t.regex(reason(parseClientHello(lying), "invalid"), new RegExp(`extension ${p.extensions.at(-1)!.type} runs past`));
  // The handshake says fewer bytes than its fields take.
  const short = Buffer.from(whole);
  short.writeUIntBE(short.readUIntBE(6, 3) - 10, 6, 3);
  t.is(parseClientHello(short).state, "invalid");
  t.regex(reason(parseClientHello(frame(Buffer.from([1, 0, 0, 10, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0]), 100)), "invalid"), /random runs past/);
  for (const type of [0, p.extensions.find((e) => e.type !== 0)!.type]) {
    const twice = build({ ...p, extensions: [...p.extensions, p.extensions.find((e) => e.type === type)!] });
    t.regex(reason(parseClientHello(twice), "invalid"), new RegExp(`extension ${type} twice`));
  }
  const field = (offset: number, value: number): Buffer => {
    const b = Buffer.from(whole);
    b[5 + 4 + offset] = value;
    return b;
  };
  t.regex(reason(parseClientHello(field(34, 33)), "invalid"), /session id of 33/);
  t.regex(reason(parseClientHello(field(0, 2)), "invalid"), /version 2/);
  const sid = whole[5 + 4 + 34]!;
  t.regex(reason(parseClientHello(field(35 + sid + 1, whole[5 + 4 + 35 + sid + 1]! | 1)), "invalid"), /cipher_suites of \d*[13579] bytes/);
  // A later record that is not a handshake record, or not TLS: the handshake is broken, not another protocol.
  const records = frame(handshake(real.plain!.wire), 50);
  for (const [at, value, pattern] of [[55, 23, /content type 23/], [56, 2, /version 2\.x/], [57, 5, /version 3\.5/]] as const) {
    const b = Buffer.from(records);
    b[at] = value;
    t.regex(reason(parseClientHello(b), "invalid"), pattern);
  }
  t.regex(reason(parseClientHello(Buffer.concat([records.subarray(0, 55), Buffer.from("1603030000", "hex")])), "invalid"), /later record: an empty/);
});

test("server names: lowercased, one trailing dot dropped, '_' tolerated; bad characters, empty labels, over 253 refused", (t) => {
  const name = (n: string | Buffer): HelloResult => parseClientHello(withSni(sni([0, n])));
  t.deepEqual(name("WWW.Example.Com"), { state: "done", serverName: "www.example.com" });
  t.deepEqual(name("my_svc.example.com."), { state: "done", serverName: "my_svc.example.com" });
  t.deepEqual(name(`${LONGEST}.`), { state: "done", serverName: LONGEST });
  t.deepEqual(name("localhost"), { state: "done", serverName: "localhost" });
  for (const [bad, pattern] of [
    ["api.exa mple.com", /character/],
    ["api/example.com", /character/],
    ["api.example.com\0", /character/],
    [Buffer.from("caf\xc3\xa9.example", "latin1"), /character/],
    ["api..example.com", /empty label/],
    [".example.com", /starts with/],
    [".", /starts with/],
    ["example.com..", /empty label/],
    [`${LONGEST}x`, /254 characters/],
    ["", /host_name of 0 bytes/],
    ["a".repeat(255), /host_name of 255 bytes/],
  ] as const) {
    t.regex(reason(name(bad), "invalid"), pattern, JSON.stringify(String(bad)));
  }
  // A real 255-byte name from OpenSSL, which sends up to 255.
  t.regex(reason(parseClientHello(tooLong), "invalid"), /host_name of 255 bytes/);
});

test("the server_name list: the first host_name counts, other name types are skipped, an empty or mislabelled list is refused", (t) => {
  t.deepEqual(parseClientHello(withSni(sni([0, "first.example"], [0, "second.example"]))), { state: "done", serverName: "first.example" });
  t.deepEqual(parseClientHello(withSni(sni([1, "whatever"], [0, "b.example"]))), { state: "done", serverName: "b.example" });
  t.deepEqual(parseClientHello(withSni(sni([7, "no host name"]))), { state: "done", serverName: undefined });
  t.regex(reason(parseClientHello(withSni(u16(0))), "invalid"), /server_name_list of 0 bytes/);
  t.regex(reason(parseClientHello(withSni(Buffer.from([0]))), "invalid"), /runs past/);
  const list = sni([0, "a.example"]);
  t.regex(reason(parseClientHello(withSni(Buffer.concat([u16(list.readUInt16BE(0) - 1), list.subarray(2)]))), "invalid"), /server_name_list of/);
  t.regex(reason(parseClientHello(withSni(Buffer.concat([list, Buffer.from([0])]))), "invalid"), /server_name_list of/);
  const badLength = Buffer.from(list);
  badLength.writeUInt16BE(200, 3);
  t.regex(reason(parseClientHello(withSni(badLength)), "invalid"), /host_name runs past/);
});

test("a bad name is refused as soon as its bad byte arrives, not once the hello is whole", (t) => {
  const wire = withSni(sni([0, "ok.exa/mple.com"]));
  const slash = wire.indexOf("ok.exa/mple.com") + 6;
  t.is(parseClientHello(wire.subarray(0, slash)).state, "incomplete");
  t.is(parseClientHello(wire.subarray(0, slash + 1)).state, "invalid");
  t.is(parseClientHello(withSni(sni([0, "ok..example.com"])).subarray(0, slash)).state, "invalid");
});

test("property: any re-framing of a real hello gives its name, and any prefix of it is incomplete", (t) => {
  const hellos = Object.values(real).filter((r) => r.wire.length < 2000);
  fc.assert(
    fc.property(fc.constantFrom(...hellos), fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 8 }), fc.constantFrom(0x0301, 0x0302, 0x0303, 0x0304), fc.nat(), (hello, sizes, version, cut) => {
      const wire = frame(handshake(hello.wire), sizes, version);
      const whole = parseClientHello(wire);
      const prefix = parseClientHello(wire.subarray(0, cut % wire.length));
      return whole.state === "done" && whole.serverName === hello.serverName && prefix.state === "incomplete";
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

test("property: no input throws; random bytes, bytes behind a handshake record header, real hellos with bytes changed", (t) => {
  const states = new Set(["incomplete", "not-tls", "invalid", "done"]);
  const ok = (b: Uint8Array): boolean => states.has(parseClientHello(Buffer.from(b)).state);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), ok), { numRuns: 2000 });
  const header = fc.tuple(fc.constantFrom(1, 2, 3, 4), fc.nat(0x4100), fc.uint8Array({ maxLength: 600 }));
  fc.assert(fc.property(header, ([minor, length, rest]) => ok(Buffer.concat([Buffer.from([22, 3, minor]), u16(length), u8(1), Buffer.from(rest)]))), { numRuns: 2000 });
  const wires = Object.values(real).map((r) => r.wire).filter((w) => w.length < 2000);
  const edits = fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 });
  fc.assert(
    fc.property(fc.constantFrom(...wires), edits, fc.nat(), (wire, changes, cut) => {
      const b = Buffer.from(wire);
      for (const [at, value] of changes) b[at % b.length] = value;
      return ok(b) && ok(b.subarray(0, cut % (b.length + 1)));
    }),
    { numRuns: 3000 },
  );
  t.pass();
});
