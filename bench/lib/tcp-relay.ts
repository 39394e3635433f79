// The floor for any proxy in its own process: a bare TCP relay to the upstream (UPSTREAM, host:port) that
// copies bytes both ways and looks at none of them — no HTTP parsing, no checks. Whatever it costs
// over a direct connection, no userland HTTP proxy on this machine can undercut.
// Prints {"port": n} on its first line of stdout.
import net from 'node:net';

function main(): void {
  const [host, port] = process.env.UPSTREAM!.split(':');
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) s.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

if (require.main === module) main();
