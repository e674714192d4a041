// iperf3 client through a port: bulk throughput in Gbit/s (receiver side).
import { run } from "../procs.js";
import { HOST } from "../net.js";

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number } };
}

export async function iperf(port: number, streams: number, seconds: number): Promise<number> {
  const r = await run("iperf3-client", "iperf3", ["-c", HOST, "-p", String(port), "-t", String(seconds), "-P", String(streams), "-J", "--connect-timeout", "3000"], (seconds + 20) * 1000);
  let json: IperfJson;
  try {
    json = JSON.parse(r.output.slice(r.output.indexOf("{"))) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON (exit ${r.code}): ${r.output.trim().slice(-300)}`);
  }
  const bps = json.end?.sum_received?.bits_per_second;
  if (json.error || bps === undefined) throw new Error(`iperf3: ${json.error ?? "no result"}`);
  return bps / 1e9;
}
