// Echo server on Node's `ws`: every message goes back as it came (text as text, binary as
// binary). `ws` answers pings and close frames itself. Serves any path.
//
//   node echo.mjs --port P     (0, the default, picks a free port)
//
// Prints `listening on ws://127.0.0.1:PORT` once it accepts connections.
import { WebSocketServer } from 'ws';

function portFromArgs(argv) {
  let port = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    let value;
    if (arg === '--port' || arg === '-p') value = argv[++i];
    else if (arg.startsWith('--port=')) value = arg.slice('--port='.length);
    else {
      console.error('usage: node echo.mjs [--port P]');
      process.exit(2);
    }
    port = Number(value);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      console.error('--port needs a number from 0 to 65535');
      process.exit(2);
    }
  }
  return port;
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port: portFromArgs(process.argv.slice(2)),
  // Same as the Rust peers and the load generator's default: no permessage-deflate.
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
});

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});

server.on('listening', () => {
  const { address, port } = server.address();
  process.stdout.write(`listening on ws://${address}:${port}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
