// nginx configs for the bench: the upstream (a fixed 1 KiB answer to any method, optionally on a
// TLS port too) and the reference reverse proxy (proxy_pass to a keep-alive upstream pool, as a
// user would tune it). Each instance gets its own prefix dir, pid, logs and temp paths, so no
// system nginx is touched.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, spawnPinned, waitForPort } from './procs.js';

export const RESPONSE_BYTES = 1024;

function common(dir) {
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
`;
}

function httpCommon(dir) {
  return `  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
`;
}

/**
 * An upstream that answers every request (POST included) with 200 and RESPONSE_BYTES bytes; with
 * tlsPort, there too over TLS, with dir/cert.pem and dir/key.pem.
 */
export function upstreamConf(dir, port, tlsPort) {
  const tls = tlsPort === undefined ? '' : `    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
`;
  return `${common(dir)}http {
${httpCommon(dir)}  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
${tls}    location / { return 200 "${'x'.repeat(RESPONSE_BYTES)}"; }
  }
}
`;
}

export function proxyConf(dir, port, upstreamPort) {
  return `${common(dir)}http {
${httpCommon(dir)}  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** Writes `conf` under dir and returns the nginx argv that runs it in the foreground. */
export function nginxArgs(dir, conf) {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return ['-p', dir, '-c', file, '-e', path.join(dir, 'error.log')];
}

/**
 * The node agent benches' traced app: the upstream on a plain and a TLS port (a fresh self-signed
 * certificate) under dir, pinned to `core`, once both listen. The child goes into `children` at
 * once, so the caller's cleanup stops it even if it never listens.
 */
export async function startPlainAndTlsUpstream(dir, core, logFile, children) {
  mkdirSync(dir, { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  const plainPort = await freePort();
  const tlsPort = await freePort();
  const child = spawnPinned(core, 'nginx', nginxArgs(dir, upstreamConf(dir, plainPort, tlsPort)), { logFile });
  children.push(child);
  await waitForPort(plainPort, 10_000, child);
  await waitForPort(tlsPort, 10_000, child);
  return { plainPort, tlsPort, child };
}
