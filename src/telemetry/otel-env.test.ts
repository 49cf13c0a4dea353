import { describe, expect, it } from 'vitest';
import { DEFAULT_BATCH, ExportConfigError, exportConfigFromEnv, redactExportConfig, type ExportFlags } from './otel-env.js';

describe('exportConfigFromEnv: defaults', () => {
  it('with an empty env: OTLP to http://localhost:4317, plaintext, no headers, sidecar batch defaults', () => {
    expect(exportConfigFromEnv({})).toEqual({
      exporter: 'otlp',
      endpoint: 'http://localhost:4317',
      insecure: true,
      headers: {},
      timeoutMs: 5000,
      compression: 'none',
      batch: { ...DEFAULT_BATCH },
    });
  });
});

describe('exportConfigFromEnv: precedence', () => {
  // [what, env, flags, expected partial config]
  const table: [string, Record<string, string>, ExportFlags, Record<string, unknown>][] = [
    ['general endpoint', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317' }, {}, { endpoint: 'http://collector:4317' }],
    ['traces endpoint wins over general', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2' }, {}, { endpoint: 'http://b:2' }],
    ['blank traces endpoint falls back to general', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ' ' }, {}, { endpoint: 'http://a:1' }],
    ['flag endpoint wins over both', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:1', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:2' }, { endpoint: 'http://c:3' }, { endpoint: 'http://c:3' }],
    ['https scheme means TLS', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example:4317' }, {}, { endpoint: 'https://otel.example:4317', insecure: false }],
    ['scheme beats INSECURE=true', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example:4317', OTEL_EXPORTER_OTLP_INSECURE: 'true' }, {}, { insecure: false }],
    ['host:port without INSECURE is TLS', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }, {}, { endpoint: 'https://collector:4317', insecure: false }],
    ['host:port with INSECURE=TRUE is plaintext', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317', OTEL_EXPORTER_OTLP_INSECURE: 'TRUE' }, {}, { endpoint: 'http://collector:4317', insecure: true }],
    ['traces INSECURE wins', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317', OTEL_EXPORTER_OTLP_INSECURE: 'true', OTEL_EXPORTER_OTLP_TRACES_INSECURE: 'false' }, {}, { insecure: false }],
    ['flag insecure wins', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317', OTEL_EXPORTER_OTLP_INSECURE: 'false' }, { insecure: true }, { insecure: true }],
    ['https without port gets 443', { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example' }, {}, { endpoint: 'https://otel.example:443' }],
    ['trailing slash is fine', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317/' }, {}, { endpoint: 'http://c:4317' }],
    ['IPv6 literal', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://[::1]:4317' }, {}, { endpoint: 'http://[::1]:4317' }],
    ['general timeout', { OTEL_EXPORTER_OTLP_TIMEOUT: '2500' }, {}, { timeoutMs: 2500 }],
    ['traces timeout wins', { OTEL_EXPORTER_OTLP_TIMEOUT: '2500', OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '700' }, {}, { timeoutMs: 700 }],
    ['flag timeout wins', { OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '700' }, { timeoutMs: 100 }, { timeoutMs: 100 }],
    ['compression gzip', { OTEL_EXPORTER_OTLP_COMPRESSION: 'GZIP' }, {}, { compression: 'gzip' }],
    ['traces compression wins', { OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip', OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'none' }, {}, { compression: 'none' }],
    ['flag compression wins', { OTEL_EXPORTER_OTLP_COMPRESSION: 'none' }, { compression: 'gzip' }, { compression: 'gzip' }],
    ['console exporter', { OTEL_TRACES_EXPORTER: 'console' }, {}, { exporter: 'console' }],
    ['none exporter', { OTEL_TRACES_EXPORTER: 'none' }, {}, { exporter: 'none' }],
    ['--console flag wins', { OTEL_TRACES_EXPORTER: 'none' }, { console: true }, { exporter: 'console' }],
    ['--exporter flag wins over --console', {}, { console: true, exporter: 'otlp' }, { exporter: 'otlp' }],
    ['OTEL_SDK_DISABLED=true means none', { OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }, {}, { exporter: 'none' }],
    ['protocol grpc accepted', { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, {}, { exporter: 'otlp' }],
    ['headers percent-decoded, names lowercased', { OTEL_EXPORTER_OTLP_HEADERS: 'API-Key=a%20b%2Cc,x-org=1' }, {}, { headers: { 'api-key': 'a b,c', 'x-org': '1' } }],
    ['traces headers replace general', { OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'c=3' }, {}, { headers: { c: '3' } }],
    ['flag headers merge over env', { OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2' }, { headers: 'b=9,c=3' }, { headers: { a: '1', b: '9', c: '3' } }],
    ['header value may contain "="', { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Basic dXNlcjpwYXNz==' }, {}, { headers: { authorization: 'Basic dXNlcjpwYXNz==' } }],
  ];
  for (const [what, env, flags, expected] of table) {
    it(what, () => {
      expect(exportConfigFromEnv(env, flags)).toMatchObject(expected);
    });
  }

  it('OTEL_BSP_* set the batch queue', () => {
    const cfg = exportConfigFromEnv({
      OTEL_BSP_MAX_QUEUE_SIZE: '100',
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '10',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      OTEL_BSP_EXPORT_TIMEOUT: '900',
    });
    expect(cfg.batch).toEqual({ ...DEFAULT_BATCH, maxQueueSize: 100, maxExportBatchSize: 10, scheduleDelayMs: 50, exportTimeoutMs: 900 });
  });
});

describe('exportConfigFromEnv: invalid values name the variable', () => {
  const table: [Record<string, string>, ExportFlags, string, RegExp][] = [
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://c:21' }, {}, 'OTEL_EXPORTER_OTLP_ENDPOINT', /scheme "ftp"/],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector' }, {}, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', /no port/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/v1/traces' }, {}, 'OTEL_EXPORTER_OTLP_ENDPOINT', /no path.*\/v1\/traces/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:99999' }, {}, 'OTEL_EXPORTER_OTLP_ENDPOINT', /neither host:port/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://user:pw@c:4317' }, {}, 'OTEL_EXPORTER_OTLP_ENDPOINT', /only scheme, host and port/],
    [{}, { endpoint: 'c' }, '--otlp-endpoint', /no port/],
    [{ OTEL_EXPORTER_OTLP_INSECURE: 'yes' }, {}, 'OTEL_EXPORTER_OTLP_INSECURE', /not true or false/],
    [{ OTEL_EXPORTER_OTLP_TIMEOUT: '10s' }, {}, 'OTEL_EXPORTER_OTLP_TIMEOUT', /not a positive integer/],
    [{ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '0' }, {}, 'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', /not a positive integer/],
    [{ OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }, {}, 'OTEL_EXPORTER_OTLP_COMPRESSION', /not gzip or none/],
    [{ OTEL_TRACES_EXPORTER: 'jaeger' }, {}, 'OTEL_TRACES_EXPORTER', /not one of otlp, console, none/],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf' }, {}, 'OTEL_EXPORTER_OTLP_PROTOCOL', /gRPC only/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'novalue' }, {}, 'OTEL_EXPORTER_OTLP_HEADERS', /entry 0 "novalue" has no "="/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'a=1,=2' }, {}, 'OTEL_EXPORTER_OTLP_HEADERS', /entry 1 .* empty key/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'a=%zz' }, {}, 'OTEL_EXPORTER_OTLP_HEADERS', /bad percent-encoding in "%zz"/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'bad key=1' }, {}, 'OTEL_EXPORTER_OTLP_HEADERS', /header name "bad key"/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'x=caf%C3%A9' }, {}, 'OTEL_EXPORTER_OTLP_HEADERS', /non-ASCII/],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'token-bin=abc' }, {}, 'OTEL_EXPORTER_OTLP_HEADERS', /-bin/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '-1' }, {}, 'OTEL_BSP_MAX_QUEUE_SIZE', /not a positive integer/],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20' }, {}, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', /exceeds OTEL_BSP_MAX_QUEUE_SIZE \(10\)/],
    [{ OTEL_SDK_DISABLED: 'maybe' }, {}, 'OTEL_SDK_DISABLED', /not true or false/],
  ];
  for (const [env, flags, variable, message] of table) {
    it(`${variable} ${JSON.stringify(env)}${JSON.stringify(flags)}`, () => {
      let err: unknown;
      try {
        exportConfigFromEnv(env, flags);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ExportConfigError);
      const e = err as ExportConfigError;
      expect(e.code).toBe('ST_EXPORT_CONFIG_INVALID');
      expect(e.variable).toBe(variable);
      expect(e.message).toContain(`invalid ${variable}: `);
      expect(e.message).toMatch(message);
    });
  }
});

describe('redactExportConfig', () => {
  it('keeps header names, hides their values, leaves the config itself untouched', () => {
    const cfg = exportConfigFromEnv({ OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20xyz,x-tenant=a' });
    const shown = redactExportConfig(cfg);
    expect(shown.headers).toEqual({ authorization: '[redacted]', 'x-tenant': '[redacted]' });
    expect(JSON.stringify(shown)).not.toContain('xyz');
    expect(cfg.headers.authorization).toBe('Bearer xyz');
    expect(shown.endpoint).toBe(cfg.endpoint);
  });
});
