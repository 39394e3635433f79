// The benchmark's upstream, run as its own process so that no proxy and no client shares its
// event loop: a small GET, a 10 MB download, and a WebSocket echo — the same server for the
// direct baseline, the CrawlHub proxy and configurable-http-proxy.
// Prints {"port": n} on its first line of stdout.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

export const DOWNLOAD_BYTES = 10 * 1024 * 1024;
const SMALL = Buffer.from('{"status":"alive","lastHeartbeat":0}');
const DOWNLOAD = Buffer.alloc(DOWNLOAD_BYTES, 97);

function main(): void {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DOWNLOAD.length });
      res.end(DOWNLOAD);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': SMALL.length });
    res.end(SMALL);
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  // In a container: PORT=8080 HOST=0.0.0.0, reached through the port Docker publishes on 127.0.0.1.
  server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (require.main === module) main();
