// An echo load client on Node's `ws`, independent of Tether's code: the cross-check for
// `tether bench echo`. Same workload shape: N connections, each keeping K messages of S bytes in
// flight, every echo checked byte for byte; prints one JSON line with messages_per_sec and the
// round-trip percentiles (microseconds).
//
//   node echo-client.mjs URL [--connections N] [--pipeline K] [--size S] [--duration SECS] [--warmup SECS]
//
// Compare it with `tether bench echo URL -c N -p K -s S -d SECS` against the same server, at a load
// neither client saturates (a client at 100% of its core measures itself): see docs/benchmarks.md.
import { WebSocket } from 'ws';

const usage = 'usage: node echo-client.mjs URL [--connections N] [--pipeline K] [--size S] [--duration SECS] [--warmup SECS]';
const args = { connections: 10, pipeline: 1, size: 16, duration: 5, warmup: 1 };
const argv = process.argv.slice(2);
let url;
for (let i = 0; i < argv.length; i++) {
  const name = argv[i].replace(/^--/, '');
  if (!argv[i].startsWith('--')) {
    url = argv[i];
  } else if (name in args && i + 1 < argv.length && Number.isFinite(Number(argv[i + 1]))) {
    args[name] = Number(argv[++i]);
  } else {
    console.error(usage);
    process.exit(2);
  }
}
if (!url) {
  console.error(usage);
  process.exit(2);
}

const payload = 'x'.repeat(args.size);
const latencies = [];
let counted = 0;
let measuring = false;
let errors = 0;

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const sentAt = [];
    const send = () => {
      sentAt.push(process.hrtime.bigint());
      ws.send(payload);
    };
    ws.on('open', () => {
      for (let k = 0; k < args.pipeline; k++) send();
      resolve(ws);
    });
    ws.on('message', (data, isBinary) => {
      const started = sentAt.shift();
      if (isBinary || data.toString() !== payload) errors++;
      if (measuring) {
        counted++;
        latencies.push(Number(process.hrtime.bigint() - started) / 1000);
      }
      if (ws.readyState === WebSocket.OPEN) send();
    });
    ws.on('error', reject);
  });
}

const sockets = await Promise.all(Array.from({ length: args.connections }, open));
await new Promise((r) => setTimeout(r, args.warmup * 1000));
measuring = true;
const started = process.hrtime.bigint();
const cpuBefore = process.cpuUsage();
await new Promise((r) => setTimeout(r, args.duration * 1000));
measuring = false;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuBefore);
for (const ws of sockets) ws.close(1000);

latencies.sort((a, b) => a - b);
const at = (q) => (latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]) : 0);
console.log(JSON.stringify({
  tool: 'node ws echo-client',
  connections: args.connections,
  pipeline: args.pipeline,
  size: args.size,
  messages_per_sec: Math.round(counted / seconds),
  p50_us: at(0.5),
  p99_us: at(0.99),
  errors,
  client_cpu_percent: Math.round(((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 1000) / 10,
}));
process.exit(0);
