// Export over TLS: an https:// endpoint makes the exporter verify the receiver's certificate,
// trusting the CA named by OTEL_EXPORTER_OTLP_CERTIFICATE (read by the official exporter).
// The certificates are made with the openssl CLI for 127.0.0.1 at test time.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSpanExporter } from '../../src/telemetry/export.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { exportConfigFromEnv } from '../../src/telemetry/otel-env.js';
import { SpanKind, StatusCode, type SpanRecord } from '../../src/telemetry/span.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';

let dir: string;
let receiver: OtlpReceiver;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidetrace-tls-'));
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=sidetrace test CA');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'san.ext');
  receiver = await startOtlpReceiver({ tls: { key: fs.readFileSync(path.join(dir, 'server.key')), cert: fs.readFileSync(path.join(dir, 'server.pem')) } });
});

afterAll(async () => {
  await receiver?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function span(id: string): SpanRecord {
  return {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: id,
    sampled: true,
    name: 'GET /secure',
    kind: SpanKind.SERVER,
    startMs: 1_763_700_000_000,
    endMs: 1_763_700_000_001,
    attributes: { 'http.response.body': Buffer.from('over tls') },
    events: [],
    status: { code: StatusCode.UNSET },
  };
}

async function exportOne(id: string, extraProcessEnv: Record<string, string>) {
  // The official exporter reads certificate paths from process.env itself.
  const saved = Object.fromEntries(Object.keys(extraProcessEnv).map((k) => [k, process.env[k]]));
  Object.assign(process.env, extraProcessEnv);
  try {
    const metrics = new Metrics();
    const counters = { exported: metrics.counter('e', ''), dropped: metrics.counter('d', '') };
    const exporter = createSpanExporter({
      config: exportConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_EXPORT_TIMEOUT: '3000' }),
      resource: {},
      counters,
    });
    exporter.submit(span(id));
    await exporter.flush();
    await exporter.shutdown();
    return metrics;
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe('OTLP export over TLS', () => {
  it('the endpoint is https:// and TLS', () => {
    expect(receiver.endpoint.startsWith('https://127.0.0.1:')).toBe(true);
    expect(exportConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint }).insecure).toBe(false);
  });

  it('delivers spans when the CA is trusted via OTEL_EXPORTER_OTLP_CERTIFICATE', async () => {
    const metrics = await exportOne('00000000000000aa', { OTEL_EXPORTER_OTLP_CERTIFICATE: path.join(dir, 'ca.pem') });
    expect(metrics.get('e')).toBe(1);
    const got = receiver.spans().find((s) => s.spanId === '00000000000000aa');
    expect(got?.attributes['http.response.body']).toEqual(Buffer.from('over tls'));
  });

  it('refuses a server whose certificate it cannot verify: the span is dropped and counted', async () => {
    const metrics = await exportOne('00000000000000bb', {});
    expect(metrics.get('e')).toBe(0);
    expect(metrics.get('d')).toBe(1);
    expect(receiver.spans().some((s) => s.spanId === '00000000000000bb')).toBe(false);
  });
});
