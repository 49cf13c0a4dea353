// nginx configs for the bench: the upstream (a fixed 1 KiB answer to any method) and the
// reference reverse proxy (proxy_pass to a keep-alive upstream pool, as a user would tune it).
// Each instance gets its own prefix dir, pid, logs and temp paths, so no system nginx is touched.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

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

/** An upstream that answers every request (POST included) with 200 and RESPONSE_BYTES bytes. */
export function upstreamConf(dir, port) {
  return `${common(dir)}http {
${httpCommon(dir)}  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    location / { return 200 "${'x'.repeat(RESPONSE_BYTES)}"; }
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
