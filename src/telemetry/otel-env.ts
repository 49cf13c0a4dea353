// The export configuration: OTEL_* environment variables (OTel SDK spec) overlaid by CLI flags.
// Pure: takes the env and flags, returns a validated config or throws naming the bad variable.

import { parseKeyValueList, KeyValueListError } from './key-value-list.js';
import { nonEmpty, type Env } from './resource.js';

export type TracesExporter = 'otlp' | 'console' | 'none';
export type Compression = 'gzip' | 'none';

export interface BatchConfig {
  /** Spans held while waiting for export; beyond it spans are dropped and counted. */
  maxQueueSize: number;
  maxExportBatchSize: number;
  /** How long a partial batch waits before it is sent. */
  scheduleDelayMs: number;
  /** Give up on one export (and count its spans dropped) after this long. */
  exportTimeoutMs: number;
  /** Exports in flight at once; more would only pile up on a slow backend. */
  maxConcurrentExports: number;
  /**
   * Span bytes (bodies dominate) the queue may hold: spans carry full bodies, so a count alone
   * (2048 × two 64 KiB bodies = 256 MiB) would not bound a sidecar's memory. Exact encoded
   * bytes for OTLP, an estimate for the console.
   */
  maxQueueBytes: number;
  /**
   * Span bytes per export request (as maxQueueBytes counts them). Collectors reject gRPC
   * messages over 4 MiB by default (grpc's max receive size), so batches of big bodies are split
   * below that.
   */
  maxExportBatchBytes: number;
}

export interface ExportConfig {
  exporter: TracesExporter;
  /** `http://host:port` (plaintext h2c) or `https://host:port` (TLS): what gRPC dials. */
  endpoint: string;
  insecure: boolean;
  /** Sent as gRPC metadata on every export. Keys lowercase. */
  headers: Record<string, string>;
  /** Deadline of one gRPC Export call (retries included). */
  timeoutMs: number;
  compression: Compression;
  batch: BatchConfig;
}

/** CLI flags; each wins over its env vars. Strings are parsed like the env values. */
export interface ExportFlags {
  exporter?: TracesExporter;
  /** `--console`: shorthand for exporter 'console'. */
  console?: boolean;
  endpoint?: string;
  /** Merged over the env headers key by key. */
  headers?: Record<string, string> | string;
  timeoutMs?: number | string;
  compression?: Compression | string;
  insecure?: boolean;
  /** The queue size when OTEL_BSP_MAX_QUEUE_SIZE is unset (a node agent batches a whole node). */
  defaultMaxQueueSize?: number;
}

export class ExportConfigError extends Error {
  readonly code = 'ST_EXPORT_CONFIG_INVALID';
  constructor(readonly variable: string, detail: string) {
    super(`invalid ${variable}: ${detail}`);
    this.name = 'ExportConfigError';
  }
}

const DEFAULT_ENDPOINT = 'http://localhost:4317';

// Sidecar defaults: the spec's 5 s schedule delay and 30 s export timeout suit an SDK inside an
// app; a proxy wants spans out quickly and must never hold thousands of bodies for 30 s.
export const DEFAULT_BATCH: Readonly<BatchConfig> = {
  maxQueueSize: 2048,
  maxExportBatchSize: 512,
  scheduleDelayMs: 200,
  exportTimeoutMs: 5000,
  maxConcurrentExports: 2,
  maxQueueBytes: 32 * 1024 * 1024,
  maxExportBatchBytes: 3 * 1024 * 1024,
};
const DEFAULT_TIMEOUT_MS = 5000;

export function exportConfigFromEnv(env: Env, flags: ExportFlags = {}): ExportConfig {
  const exporter = resolveExporter(env, flags);

  const protocol = signal(env, 'PROTOCOL');
  if (protocol && protocol.value.toLowerCase() !== 'grpc') {
    throw new ExportConfigError(protocol.name, `"${protocol.value}" is not supported: sidetrace exports OTLP over gRPC only (use "grpc" or unset it)`);
  }

  const insecureVar = signal(env, 'INSECURE');
  const insecureDefault = flags.insecure ?? (insecureVar ? parseBool(insecureVar.name, insecureVar.value) : false);
  const endpointSrc = flags.endpoint !== undefined ? { name: '--otlp-endpoint', value: flags.endpoint } : signal(env, 'ENDPOINT');
  const { endpoint, insecure } = endpointSrc
    ? parseEndpoint(endpointSrc.name, endpointSrc.value, insecureDefault)
    : { endpoint: DEFAULT_ENDPOINT, insecure: true };

  const headersVar = signal(env, 'HEADERS');
  const headers = headersVar ? parseHeaders(headersVar.name, headersVar.value) : {};
  if (flags.headers !== undefined) {
    const fromFlag = typeof flags.headers === 'string' ? parseHeaders('--otlp-header', flags.headers) : checkHeaders('--otlp-header', flags.headers);
    Object.assign(headers, fromFlag);
  }

  const timeoutVar = flags.timeoutMs !== undefined ? { name: '--otlp-timeout', value: String(flags.timeoutMs) } : signal(env, 'TIMEOUT');
  const timeoutMs = timeoutVar ? parsePositiveInt(timeoutVar.name, timeoutVar.value) : DEFAULT_TIMEOUT_MS;

  const compressionVar = flags.compression !== undefined ? { name: '--otlp-compression', value: flags.compression } : signal(env, 'COMPRESSION');
  const compression = compressionVar ? parseCompression(compressionVar.name, compressionVar.value) : 'none';

  const batch: BatchConfig = {
    maxQueueSize: intVar(env, 'OTEL_BSP_MAX_QUEUE_SIZE', flags.defaultMaxQueueSize ?? DEFAULT_BATCH.maxQueueSize),
    maxExportBatchSize: intVar(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', DEFAULT_BATCH.maxExportBatchSize),
    scheduleDelayMs: intVar(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULT_BATCH.scheduleDelayMs),
    exportTimeoutMs: intVar(env, 'OTEL_BSP_EXPORT_TIMEOUT', DEFAULT_BATCH.exportTimeoutMs),
    maxConcurrentExports: DEFAULT_BATCH.maxConcurrentExports,
    maxQueueBytes: DEFAULT_BATCH.maxQueueBytes,
    maxExportBatchBytes: DEFAULT_BATCH.maxExportBatchBytes,
  };
  if (batch.maxExportBatchSize > batch.maxQueueSize) {
    throw new ExportConfigError(
      'OTEL_BSP_MAX_EXPORT_BATCH_SIZE',
      `${batch.maxExportBatchSize} exceeds OTEL_BSP_MAX_QUEUE_SIZE (${batch.maxQueueSize})`,
    );
  }

  return { exporter, endpoint, insecure, headers, timeoutMs, compression, batch };
}

/** The config as shown on /config: header values are credentials more often than not. */
export function redactExportConfig(cfg: ExportConfig): Omit<ExportConfig, 'headers'> & { headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  for (const k of Object.keys(cfg.headers)) headers[k] = '[redacted]';
  return { ...cfg, headers, batch: { ...cfg.batch } };
}

function resolveExporter(env: Env, flags: ExportFlags): TracesExporter {
  if (flags.exporter !== undefined) return parseExporter('--exporter', flags.exporter);
  if (flags.console) return 'console';
  const disabled = nonEmpty(env.OTEL_SDK_DISABLED);
  if (disabled !== undefined && parseBool('OTEL_SDK_DISABLED', disabled)) return 'none';
  const v = nonEmpty(env.OTEL_TRACES_EXPORTER);
  return v === undefined ? 'otlp' : parseExporter('OTEL_TRACES_EXPORTER', v);
}

function parseExporter(name: string, value: string): TracesExporter {
  const v = value.trim().toLowerCase();
  if (v === 'otlp' || v === 'console' || v === 'none') return v;
  throw new ExportConfigError(name, `"${value}" is not one of otlp, console, none`);
}

/** The traces-specific variable wins over the general one (OTLP exporter spec). */
function signal(env: Env, suffix: string): { name: string; value: string } | undefined {
  for (const name of [`OTEL_EXPORTER_OTLP_TRACES_${suffix}`, `OTEL_EXPORTER_OTLP_${suffix}`]) {
    const value = nonEmpty(env[name]);
    if (value !== undefined) return { name, value };
  }
  return undefined;
}

/**
 * gRPC endpoints: `host:port`, or `http(s)://host[:port]`. A scheme decides TLS and overrides
 * the insecure setting (spec); without one, TLS is used unless insecure is set.
 */
function parseEndpoint(name: string, raw: string, insecureDefault: boolean): { endpoint: string; insecure: boolean } {
  const value = raw.trim();
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value);
  let url: URL;
  try {
    url = new URL(hasScheme ? value : `http://${value}`);
  } catch {
    throw new ExportConfigError(name, `"${raw}" is neither host:port nor http(s)://host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ExportConfigError(name, `scheme "${url.protocol.slice(0, -1)}" is not supported; use http:// (plaintext) or https:// (TLS)`);
  }
  if (!url.hostname) throw new ExportConfigError(name, `"${raw}" has no host`);
  if (!hasScheme && !url.port) throw new ExportConfigError(name, `"${raw}" has no port; expected host:port`);
  if (url.pathname !== '/' && url.pathname !== '') {
    throw new ExportConfigError(name, `gRPC endpoints have no path, got "${url.pathname}" (an OTLP/HTTP URL? gRPC listens on 4317)`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ExportConfigError(name, `"${raw}" must be only scheme, host and port`);
  }
  const insecure = hasScheme ? url.protocol === 'http:' : insecureDefault;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return { endpoint: `${insecure ? 'http' : 'https'}://${url.hostname}:${port}`, insecure };
}

function parseHeaders(name: string, raw: string): Record<string, string> {
  let parsed: Record<string, string>;
  try {
    parsed = parseKeyValueList(name, raw);
  } catch (err) {
    if (err instanceof KeyValueListError) throw new ExportConfigError(name, err.message.replace(`invalid ${name}: `, ''));
    throw err;
  }
  return checkHeaders(name, parsed);
}

// gRPC metadata keys are [0-9a-z_.-] and values printable ASCII (node:http2 would refuse some of
// the rest at the first export, collectors others); catch them here, where the message can name
// the variable.
function checkHeaders(name: string, headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    const key = k.toLowerCase();
    if (!/^[0-9a-z_.-]+$/.test(key)) throw new ExportConfigError(name, `header name "${k}" may only contain letters, digits, "_", "." and "-"`);
    if (key.endsWith('-bin')) throw new ExportConfigError(name, `header "${k}": binary (-bin) metadata is not supported`);
    if (!/^[\x20-\x7e]*$/.test(v)) throw new ExportConfigError(name, `header "${k}" has a value with non-printable or non-ASCII characters`);
    out[key] = v;
  }
  return out;
}

function parseBool(name: string, raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new ExportConfigError(name, `"${raw}" is not true or false`);
}

function parsePositiveInt(name: string, raw: string): number {
  const v = raw.trim();
  if (!/^\d+$/.test(v) || Number(v) <= 0 || !Number.isSafeInteger(Number(v))) {
    throw new ExportConfigError(name, `"${raw}" is not a positive integer`);
  }
  return Number(v);
}

function intVar(env: Env, name: string, fallback: number): number {
  const v = nonEmpty(env[name]);
  return v === undefined ? fallback : parsePositiveInt(name, v);
}

function parseCompression(name: string, raw: string): Compression {
  const v = raw.trim().toLowerCase();
  if (v === 'gzip' || v === 'none') return v;
  throw new ExportConfigError(name, `"${raw}" is not gzip or none`);
}
