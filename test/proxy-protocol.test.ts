// The PROXY protocol codec (worker/proxy-protocol.ts): headers built and parsed
// back, byte layouts from HAProxy's spec, partial input, and what is refused.
import test from "ava";
import fc from "fast-check";
import net from "node:net";
import { buildV1, buildV2, parseProxyHeader, PROXY_HEADER_MAX_BYTES } from "../worker/proxy-protocol.js";

const src4 = { address: "192.0.2.1", port: 56324 };
const dst4 = { address: "198.51.100.1", port: 443 };

test("v1: the spec's example line, parsed back", (t) => {
  const h = buildV1(src4, dst4);
  t.is(h.toString(), "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n");
  t.deepEqual(parseProxyHeader(Buffer.concat([h, Buffer.from("GET /")])), { state: "done", length: h.length, header: { command: "proxy", source: src4, destination: dst4 } });
});

test("v2: signature, PROXY command, TCP over IPv4, addresses and ports in network order", (t) => {
  const h = buildV2(src4, dst4);
  t.is(h.toString("hex"), "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0000201" + "c6336401" + "dc04" + "01bb");
  t.deepEqual(parseProxyHeader(h), { state: "done", length: 28, header: { command: "proxy", source: src4, destination: dst4 } });
});

test("IPv6 ends in both versions; IPv4-mapped ends are written as IPv4; mixed families say UNKNOWN / AF_UNSPEC", (t) => {
  const s6 = { address: "2001:db8::1", port: 1 };
  const d6 = { address: "::1", port: 65535 };
  for (const build of [buildV1, buildV2]) {
    const r = parseProxyHeader(build(s6, d6));
    t.like(r, { state: "done", header: { command: "proxy", source: s6, destination: d6 } });
    t.like(parseProxyHeader(build({ address: "::ffff:192.0.2.1", port: 5 }, { address: "::ffff:198.51.100.1", port: 6 })), { header: { source: { address: "192.0.2.1" }, destination: { address: "198.51.100.1" } } });
    t.like(parseProxyHeader(build(src4, d6)), { state: "done", header: { command: "unknown" } });
  }
  t.is(buildV1(src4, d6).toString(), "PROXY UNKNOWN\r\n");
  t.is(buildV2(src4, d6).length, 16);
});

test("every byte count short of a whole header is incomplete, never invalid", (t) => {
  for (const h of [buildV1(src4, dst4), buildV2({ address: "2001:db8::2", port: 9 }, { address: "2001:db8::3", port: 10 })]) {
    for (let n = 0; n < h.length; n++) t.deepEqual(parseProxyHeader(h.subarray(0, n)), { state: "incomplete" }, `${n} of ${h.length} bytes`);
  }
});

test("refused: plain traffic, a v1 line without its end within 107 bytes, bad fields, an oversized v2, another version or command", (t) => {
  const invalid = (b: Buffer | string): string => {
    const r = parseProxyHeader(Buffer.from(b as string, typeof b === "string" ? "latin1" : undefined));
    return r.state === "invalid" ? r.reason : `not invalid: ${r.state}`;
  };
  t.regex(invalid("GET / HTTP/1.1\r\n"), /not a PROXY/);
  t.regex(invalid("\x16\x03\x01"), /not a PROXY/);
  t.regex(invalid(`PROXY TCP4 ${"1".repeat(120)}`), /longer than 107/);
  t.regex(invalid("PROXY TCP4 192.0.2.1 ::1 1 2\r\n"), /not of its family/);
  t.regex(invalid("PROXY TCP4 192.0.2.1 192.0.2.2 1 65536\r\n"), /port out of range/);
  t.regex(invalid("PROXY TCP5 a b 1 2\r\n"), /malformed/);
  const v2 = buildV2(src4, dst4);
  const big = Buffer.from(v2);
  big.writeUInt16BE(PROXY_HEADER_MAX_BYTES, 14);
  t.regex(invalid(big), /over 4096/);
  const v3 = Buffer.from(v2);
  v3[12] = 0x31;
  t.regex(invalid(v3), /version 3/);
  const cmd = Buffer.from(v2);
  cmd[12] = 0x22;
  t.regex(invalid(cmd), /command 2/);
});

test("v2 LOCAL (a balancer's health check) and TLVs after the addresses", (t) => {
  const local = Buffer.from(buildV2(src4, dst4));
  local[12] = 0x20;
  t.like(parseProxyHeader(local), { state: "done", length: 28, header: { command: "local" } });
  const withTlv = Buffer.concat([buildV2(src4, dst4), Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd])]);
  withTlv.writeUInt16BE(12 + 5, 14);
  t.like(parseProxyHeader(withTlv), { state: "done", length: 33, header: { command: "proxy", source: src4 } });
});

test("property: any TCP endpoints round-trip through both versions; any bytes parse without throwing", (t) => {
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join("."));
  const v6 = fc.ipV6().map((a) => new URL(`http://[${a}]/`).hostname.slice(1, -1));
  const port = fc.nat(65535);
  fc.assert(
    fc.property(fc.oneof(fc.tuple(v4, v4), fc.tuple(v6, v6)), port, port, ([sa, da], sp, dp) => {
      const s = { address: sa, port: sp };
      const d = { address: da, port: dp };
      for (const h of [buildV1(s, d), buildV2(s, d)]) {
        const r = parseProxyHeader(h);
        if (r.state !== "done" || r.header.command === "local") return false;
        if (r.header.command === "unknown") {
          // An IPv4-mapped pair is written as IPv4; anything else must come back.
          if (!sa.startsWith("::ffff:")) return false;
          continue;
        }
        // Compared as addresses, not text: "::1:0" and "::0.1.0.0" are one address (Node prints the latter, as inet_ntop does).
        const canon = (a: string): string => new net.SocketAddress({ address: a, family: net.isIPv6(a) ? "ipv6" : "ipv4" }).address;
        const same = (x: string, y: string): boolean => canon(x) === canon(y) || canon(x) === canon(y).replace(/^::ffff:/, "");
        const header = r.header;
        if (header.command !== "proxy") return false;
        const { source, destination } = header;
        if (!same(source.address, sa) || !same(destination.address, da) || source.port !== sp || destination.port !== dp) return false;
      }
      return true;
    }),
    { numRuns: 500 },
  );
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void parseProxyHeader(Buffer.from(bytes)) === undefined), { numRuns: 2000 });
  t.pass();
});
