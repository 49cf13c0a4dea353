// `sidetrace collect` as a user runs it: the built CLI in its own process, fed by a real
// grpc-js client, queried over HTTP, stopped with Ctrl-C (SIGINT).

import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { EXPORT_PATH } from '../../src/collector/otlp-server.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);
const pb = require('otlp-proto/build/src/generated/root.js').opentelemetry.proto.collector.trace.v1;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function cli(args: string[]): { child: ChildProcess; out: () => string; err: () => string } {
  if (!fs.existsSync(`${ROOT}dist/cli.js`)) throw new Error('dist/ is missing: run scripts/setup.sh (it builds the CLI) before the tests');
  const child = spawn(process.execPath, [`${ROOT}bin/sidetrace.js`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return { child, out: () => out, err: () => err };
}

async function until<T>(f: () => T | undefined, what: string): Promise<T> {
  const end = Date.now() + 15_000;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('sidetrace collect (CLI)', () => {
  it('receives OTLP, serves the viewer API, writes JSON lines and stops on SIGINT', async () => {
    const jsonl = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'st-collect-cli-')), 'spans.jsonl');
    // A bare port (as the proxy and agent accept) binds loopback.
    const p = cli(['collect', '--otlp', '0', '--ui', '127.0.0.1:0', '--jsonl', jsonl, '--max-spans', '100']);
    const otlp = await until(() => /OTLP gRPC on (\S+)/.exec(p.out())?.[1], 'the OTLP address');
    expect(otlp).toMatch(/^127\.0\.0\.1:\d+$/);
    const ui = await until(() => /viewer at (\S+)/.exec(p.out())?.[1], 'the viewer URL');

    const span = { traceId: Buffer.alloc(16, 7), spanId: Buffer.alloc(8, 7), name: 'GET /cli', kind: 2, startTimeUnixNano: 1_700_000_000_000_000_000n.toString(), endTimeUnixNano: 1_700_000_000_250_000_000n.toString() };
    const req = pb.ExportTraceServiceRequest.encode({
      resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'cli-svc' } }] }, scopeSpans: [{ spans: [span] }] }],
    }).finish();
    const client = new grpc.Client(otlp, grpc.credentials.createInsecure());
    await new Promise<void>((resolve, reject) =>
      client.makeUnaryRequest(EXPORT_PATH, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(req), (e) => (e ? reject(e) : resolve())),
    );
    client.close();

    const services = (await (await fetch(new URL('/api/services', ui))).json()) as { data: string[] };
    expect(services.data).toEqual(['cli-svc']);
    const found = (await (await fetch(new URL('/api/traces?service=cli-svc&minDuration=250ms&maxDuration=250ms', ui))).json()) as { data: Array<{ spans: unknown[] }> };
    expect(found.data[0].spans[0]).toMatchObject({ operationName: 'GET /cli', duration: 250_000, startTime: 1_700_000_000_000_000 });
    expect((await fetch(ui)).headers.get('content-type')).toBe('text/html; charset=utf-8');

    p.child.kill('SIGINT');
    const [code] = await once(p.child, 'exit');
    expect(code).toBe(0);
    expect(JSON.parse(fs.readFileSync(jsonl, 'utf8').trim())).toMatchObject({ service: 'cli-svc', name: 'GET /cli', durationMs: 250 });
  });

  it('rejects bad flags with exit code 2 and a message naming the flag', async () => {
    const p = cli(['collect', '--max-spans', 'lots']);
    const [code] = await once(p.child, 'exit');
    expect(code).toBe(2);
    expect(p.err()).toContain('--max-spans must be a positive integer, got "lots"');
    const q = cli(['collect', '--otlp', 'nowhere']);
    const [code2] = await once(q.child, 'exit');
    expect(code2).toBe(2);
    expect(q.err()).toContain('ST_ADDR_INVALID: --otlp "nowhere" must be host:port');
  });
});
