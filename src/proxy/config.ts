// `sidetrace proxy` flags → ProxyConfig. Validated at the edge: every error names its flag.

import { parseArgs } from 'node:util';
import type { Endpoint } from './exchange.js';
import type { ListenerSpec } from './listener.js';

export interface ProxyConfig {
  listeners: ListenerSpec[];
  /** Flag values; OTEL_* environment variables fill what these leave out. */
  serviceName?: string;
  otlpEndpoint?: string;
  policyFile?: string;
  admin: Endpoint;
  console: boolean;
  serverFirstPorts: ReadonlySet<number>;
  detectTimeoutMs: number;
}

/** MySQL, PostgreSQL, Redis and Cassandra: relayed without waiting for client bytes. */
export const DEFAULT_SERVER_FIRST_PORTS = [3306, 5432, 6379, 9042];
const DEFAULT_ADMIN = '127.0.0.1:15000';
export const DEFAULT_DETECT_TIMEOUT_MS = 500;

export class ConfigError extends Error {
  readonly code = 'ST_CONFIG_INVALID';
  constructor(readonly flag: string, detail: string) {
    super(`${flag}: ${detail}`);
    this.name = 'ConfigError';
  }
}

export const PROXY_USAGE = `usage: sidetrace proxy [flags]

  --inbound LISTEN=UPSTREAM     listener for calls into the app (SERVER spans); repeatable
                                e.g. --inbound 127.0.0.1:8080=127.0.0.1:5000
  --outbound LISTEN=UPSTREAM    listener for the app's outgoing calls (CLIENT spans); repeatable
  --service-name NAME           service.name (else OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES)
  --otlp-endpoint URL           OTLP gRPC endpoint (else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
                                OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4317)
  --policy FILE                 capture policy (YAML or JSON), reloaded live when it changes
  --admin ADDR                  admin listener: /healthz /readyz /metrics /config /tap
                                (default ${DEFAULT_ADMIN})
  --console                     print spans as JSON lines to stdout instead of exporting
  --server-first-ports LIST     upstream ports relayed without detection
                                (default ${DEFAULT_SERVER_FIRST_PORTS.join(',')})
  --detect-timeout-ms N         protocol detection wait before passthrough (default ${DEFAULT_DETECT_TIMEOUT_MS})
`;

export function parseProxyArgs(argv: string[]): ProxyConfig | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        inbound: { type: 'string', multiple: true },
        outbound: { type: 'string', multiple: true },
        'service-name': { type: 'string' },
        'otlp-endpoint': { type: 'string' },
        policy: { type: 'string' },
        admin: { type: 'string' },
        console: { type: 'boolean' },
        'server-first-ports': { type: 'string' },
        'detect-timeout-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new ConfigError('flags', (err as Error).message);
  }
  if (values.help) return 'help';
  const listeners: ListenerSpec[] = [
    ...(values.inbound ?? []).map((v) => parseMapping('--inbound', v, 'inbound')),
    ...(values.outbound ?? []).map((v) => parseMapping('--outbound', v, 'outbound')),
  ];
  if (listeners.length === 0) throw new ConfigError('--inbound/--outbound', 'at least one listener is required');
  return {
    listeners,
    serviceName: nonEmpty('--service-name', values['service-name']),
    otlpEndpoint: nonEmpty('--otlp-endpoint', values['otlp-endpoint']),
    policyFile: nonEmpty('--policy', values.policy),
    admin: parseEndpoint('--admin', values.admin ?? DEFAULT_ADMIN),
    console: values.console ?? false,
    serverFirstPorts: new Set(
      values['server-first-ports'] === undefined
        ? DEFAULT_SERVER_FIRST_PORTS
        : values['server-first-ports'] === ''
          ? []
          : values['server-first-ports'].split(',').map((p) => parsePort('--server-first-ports', p.trim())),
    ),
    detectTimeoutMs: values['detect-timeout-ms'] === undefined ? DEFAULT_DETECT_TIMEOUT_MS : parseIntIn('--detect-timeout-ms', values['detect-timeout-ms'], 1, 60_000),
  };
}

function parseMapping(flag: string, v: string, direction: 'inbound' | 'outbound'): ListenerSpec {
  const eq = v.indexOf('=');
  if (eq < 0) throw new ConfigError(flag, `"${v}" is not LISTEN=UPSTREAM (e.g. 127.0.0.1:8080=127.0.0.1:5000)`);
  return {
    direction,
    listen: parseEndpoint(`${flag} LISTEN`, v.slice(0, eq)),
    upstream: parseEndpoint(`${flag} UPSTREAM`, v.slice(eq + 1)),
  };
}

/** `host:port`, `[v6]:port`, `:port` or a bare port (both bind to 127.0.0.1: never expose by accident). */
export function parseEndpoint(flag: string, v: string): Endpoint {
  const s = v.trim();
  if (/^\d+$/.test(s)) return { address: '127.0.0.1', port: parsePort(flag, s) };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(s);
  if (!m) throw new ConfigError(flag, `"${v}" is not HOST:PORT`);
  const host = m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]);
  return { address: host, port: parsePort(flag, m[3]) };
}

function parsePort(flag: string, s: string): number {
  if (!/^\d+$/.test(s)) throw new ConfigError(flag, `"${s}" is not a port number`);
  const n = Number(s);
  if (n > 65535) throw new ConfigError(flag, `port ${n} is above 65535`);
  return n;
}

function parseIntIn(flag: string, s: string, min: number, max: number): number {
  if (!/^\d+$/.test(s)) throw new ConfigError(flag, `"${s}" is not a whole number`);
  const n = Number(s);
  if (n < min || n > max) throw new ConfigError(flag, `${n} is outside ${min}..${max}`);
  return n;
}

function nonEmpty(flag: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  if (v.trim() === '') throw new ConfigError(flag, 'must not be empty');
  return v;
}
