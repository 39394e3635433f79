// The CrawlHub proxy as main.ts will run it — its own process, a plain http.Server with the
// service's header limits, a real Metrics registry and an info-level logger — with one ready
// session pointing at the benchmark upstream: its published port (UPSTREAM_PORT) and, as the service
// finds it for a session, its address on the container network (UPSTREAM_ADDRESS, host:port), if any.
// As in the service, the proxy's fast lane reads the connections first (FAST_LANE=off measures the
// proxy without it: every request through Node's HTTP server and undici).
// Prints {"port": n, "launchUrl": "…", "sessionId": "…"} on its first line of stdout.
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Metrics } from '../../service/http/metrics';
import { createLogger } from '../../service/logger';
import { createProxy, type ProxySession } from '../../service/proxy';

function main(): void {
  const upstreamPort = Number(process.env.UPSTREAM_PORT);
  const [host, port] = (process.env.UPSTREAM_ADDRESS ?? '').split(':');
  const direct = host ? { host, port: Number(port) } : null;
  const session: ProxySession = { id: randomUUID(), userId: randomUUID(), status: 'ready', port: upstreamPort, direct };
  const sessions = {
    find: (id: string) => (id === session.id ? session : null),
    touch: () => undefined,
    upstreamSecret: () => 'bench-secret',
  };
  const server = http.createServer({ requestTimeout: 600_000, headersTimeout: 60_000, maxHeaderSize: 64 * 1024 });
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1', () => {
    const port = (server.address() as AddressInfo).port;
    const proxy = createProxy(sessions, {
      publicUrl: `http://127.0.0.1:${port}`,
      codeDomain: '',
      trustedOrigins: [],
      secureCookies: 'auto',
      secretKey: randomBytes(32),
      logger: createLogger('info', fs.createWriteStream('/dev/null')),
      metrics: new Metrics(),
      // In the service a database question per token every 30 s; nothing on a request's path.
      tokens: { isLive: () => Promise.resolve(true) },
      fastLane: process.env.FAST_LANE !== 'off',
    });
    proxy.install(server);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (!proxy.handleRequest(req, res)) {
        res.writeHead(404);
        res.end();
      }
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
      if (!proxy.handleUpgrade(req, socket, head)) socket.destroy();
    });
    process.stdout.write(
      `${JSON.stringify({ port, sessionId: session.id, launchUrl: proxy.launchUrl({ ...session, tokenId: randomUUID() }) })}\n`,
    );
  });
  // process.exit lets --cpu-prof write its profile.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => process.exit(0));
}

if (require.main === module) main();
