// `sidetrace tap ADDR...`: live requests from proxies' admin /tap endpoints, one line each
// (or JSON with headers and bodies); in a cluster through the API server's pod proxy.

import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { compileFilter, TapFilterError } from '../tap/filter.js';
import { toTapEvent } from '../tap/event.js';
import { header, json, row } from '../tap/format.js';
import { openTapStream, type TapSource, type TapStream } from '../tap/stream.js';
import { waitForSignal } from './cli-support.js';

const USAGE = `usage: sidetrace tap ADDR... [flags]
       sidetrace tap --apiserver URL --token T --namespace N --pod P [--pod P2...] [flags]

Streams the requests proxies see, live, from their admin listeners (/tap).
ADDR is an admin address (host:port, default port 15000) or an http(s) URL.

filters (all must hold):
  --status LIST        codes or classes: 503 | 5xx | 404,5xx
  --path PATH          exact path, or a prefix when it ends in *: /books/*
  --method LIST        GET | get,post
  --service LIST       service.name of the proxy
  --min-latency DUR    500ms | 1.5s | 500 (milliseconds)
output:
  -o, --output FMT     table (default; TIMESTAMP SRC DST PROTO METHOD HOST PATH STATUS LATENCY)
                       or json (one object per request, with headers and bodies)
  --max-events N       stop after N requests
cluster (through the API server pod proxy, /api/v1/namespaces/N/pods/P:PORT/proxy/tap):
  --apiserver URL --token TOKEN --namespace NS --pod POD (repeatable)
  --admin-port PORT    the proxy's admin port in the pod (default 15000)
  --ca-file FILE       CA bundle for the API server; --insecure-skip-tls-verify to skip checks
`;

export async function run(argv: string[], out: Writable = process.stdout, err: Writable = process.stderr): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        status: { type: 'string' },
        path: { type: 'string' },
        method: { type: 'string' },
        service: { type: 'string' },
        'min-latency': { type: 'string' },
        output: { type: 'string', short: 'o', default: 'table' },
        'max-events': { type: 'string' },
        apiserver: { type: 'string' },
        token: { type: 'string' },
        namespace: { type: 'string', default: 'default' },
        pod: { type: 'string', multiple: true },
        'admin-port': { type: 'string', default: '15000' },
        'ca-file': { type: 'string' },
        'insecure-skip-tls-verify': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    err.write(`sidetrace tap: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out.write(USAGE);
    return 0;
  }
  let sources: TapSource[];
  let filter;
  let maxEvents = Infinity;
  try {
    filter = compileFilter({ status: values.status, path: values.path, method: values.method, service: values.service, minLatency: values['min-latency'] });
    if (values.output !== 'table' && values.output !== 'json') throw new TapFilterError('--output', `"${values.output}" is not table or json`);
    if (values['max-events'] !== undefined) {
      maxEvents = Number(values['max-events']);
      if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) throw new TapFilterError('--max-events', `"${values['max-events']}" is not a positive integer`);
    }
    sources = values.apiserver !== undefined ? clusterSources(values) : positionals.map(directSource);
    if (sources.length === 0) throw new TapFilterError('ADDR', 'give at least one admin address, or --apiserver with --pod');
  } catch (e) {
    err.write(`sidetrace tap: ${(e as { code?: string }).code ?? 'ST_TAP_ARGS'}: ${(e as Error).message}\n`);
    return 2;
  }

  const asJson = values.output === 'json';
  if (!asJson) out.write(header() + '\n');
  let printed = 0;
  let code = 0;
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const streams: TapStream[] = sources.map((src) => {
    let service = src.label;
    return openTapStream(src, {
      onService: (name) => (service = name),
      onError: (msg) => err.write(`sidetrace tap: ${msg}\n`),
      onFatal: (msg) => {
        err.write(`sidetrace tap: ${msg}\n`);
        code = 1;
        stop();
      },
      onSpan: (span) => {
        if (printed >= maxEvents) return;
        const ev = toTapEvent(span, service, src.label);
        if (!filter(ev)) return;
        out.write((asJson ? json(ev) : row(ev)) + '\n');
        if (++printed >= maxEvents) stop();
      },
    });
  });
  const done = new AbortController();
  await Promise.race([stopped, waitForSignal(done.signal)]);
  done.abort();
  for (const s of streams) s.close();
  return code;
}

function directSource(addr: string): TapSource {
  let base: URL;
  if (/^https?:\/\//.test(addr)) base = new URL(addr.endsWith('/') ? addr : addr + '/');
  else if (/^[^/:]+$|^\[[^\]]+\]$/.test(addr)) base = new URL(`http://${addr}:15000/`);
  else base = new URL(`http://${addr}/`);
  if (!base.port && !/^https?:\/\//.test(addr)) throw new TapFilterError('ADDR', `"${addr}" is not host:port`);
  return { label: addr, base, headers: {} };
}

function clusterSources(v: { apiserver?: string; token?: string; namespace?: string; pod?: string[]; 'admin-port'?: string; 'ca-file'?: string; 'insecure-skip-tls-verify'?: boolean }): TapSource[] {
  let api: URL;
  try {
    api = new URL(v.apiserver!);
  } catch {
    throw new TapFilterError('--apiserver', `"${v.apiserver}" is not a URL`);
  }
  if (!v.pod?.length) throw new TapFilterError('--pod', 'give at least one pod with --apiserver');
  const port = Number(v['admin-port']);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TapFilterError('--admin-port', `"${v['admin-port']}" is not a port`);
  const ca = v['ca-file'] ? fs.readFileSync(v['ca-file']) : undefined;
  const ns = encodeURIComponent(v.namespace ?? 'default');
  const headers: Record<string, string> = v.token ? { authorization: `Bearer ${v.token}` } : {};
  return v.pod.map((pod): TapSource => {
    const src: TapSource = {
      label: `${v.namespace}/${pod}`,
      base: new URL(`${api.pathname.replace(/\/$/, '')}/api/v1/namespaces/${ns}/pods/${encodeURIComponent(pod)}:${port}/proxy/`, api),
      headers,
    };
    if (ca) src.ca = ca;
    if (v['insecure-skip-tls-verify']) src.insecure = true;
    return src;
  });
}
