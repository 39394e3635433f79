// An optional reference for the proxy bench: Debian's nginx (`apt-get install nginx-light`) as a
// plain reverse proxy to the same upstream, set up the way the design note's front proxy would be
// (HTTP/1.1 with kept-alive upstream connections, WebSocket upgrades, no buffering), one worker
// process and no master, so that the measured pid is the one doing the work. No checks, no header
// rewriting: what a proxy written in C costs on this machine.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, spawnListening } from './measure';

/** nginx's path, or null when it is not installed. */
export function findNginx(): string | null {
  for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx']) if (fs.existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

export async function startNginx(binary: string, upstream: string): Promise<{ child: ChildProcess; port: number; dir: string }> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'crawlhub-bench-nginx-'));
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/error.log;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream up { server ${upstream}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
      tcp_nodelay on;
    }
  }
}
`,
  );
  const child = await spawnListening(binary, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], port);
  return { child, port, dir };
}
