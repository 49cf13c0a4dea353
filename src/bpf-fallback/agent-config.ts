// `sidetrace agent` flags: parsed and validated at the edge, errors naming the flag.

import { parseArgs } from 'node:util';
import type { Endpoint } from '../proxy/exchange.js';
import { ConfigError, parseEndpoint } from '../proxy/config.js';

export interface AgentConfig {
  otlpEndpoint?: string;
  /** Spans as JSON lines on stdout instead of OTLP. */
  console: boolean;
  policyFile?: string;
  output?: 'table' | 'json';
  minLatencyMs: number;
  maxBodySize: number;
  skipUids: number[];
  skipPorts: number[];
  admin?: Endpoint;
  serviceName?: string;
  /** Body bytes kept per message while stitching (the policy's own limit applies on top). */
  captureBytes: number;
  /** TLS plaintext capture (OpenSSL uprobes); off with --no-tls, which drops the CAP_SYS_ADMIN need. */
  tls: boolean;
}

export class AgentConfigError extends Error {
  readonly code = 'ST_AGENT_CONFIG_INVALID';
  constructor(readonly flag: string, detail: string) {
    super(`invalid ${flag}: ${detail}`);
    this.name = 'AgentConfigError';
  }
}

export const AGENT_USAGE = `usage: sidetrace agent [flags]

Traces HTTP/1.1, HTTP/2 and gRPC of every process on this node from the kernel (eBPF), including
TLS plaintext read inside the apps (OpenSSL uprobes). Needs root or CAP_BPF + CAP_PERFMON +
CAP_SYS_PTRACE + CAP_DAC_READ_SEARCH, plus CAP_SYS_ADMIN for TLS (the kernel allows uprobes
through perf only with it; --no-tls drops that need), BTF (/sys/kernel/btf/vmlinux) and tracefs.

flags:
  --otlp-endpoint URL     OTLP/gRPC endpoint (default OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT or http://localhost:4317)
  --console               write spans as JSON lines to stdout instead of exporting them
  --service-name NAME     service.name of the agent's own resource (default OTEL_SERVICE_NAME); each
                          span's resource is its traced process, named as README says
  --policy FILE           capture policy (YAML/JSON), reloaded when it changes
  --tail                  print a live table: ${'TIMESTAMP COMM PID SRC DST PROTO METHOD HOST PATH STATUS LATENCY'}
  --json                  print one JSON object per request
  --min-latency DURATION  only print requests at least this slow (e.g. 250ms, 1s; default 0)
  --max-body-size BYTES   only print requests whose bodies are each at most this large (e.g. 4096, 64k)
  --skip-uid UID          do not trace sockets of this uid (the sidecar proxy's); repeatable
  --skip-port PORT        do not trace this local port (the sidecar's listeners); repeatable
  --admin HOST:PORT       serve /metrics (kernel and user-space counters), /healthz, /tap
  --capture-bytes BYTES   payload bytes copied per call in the kernel and kept per message, 1..1m (default 64k;
                          raise it with the policy's maxBodyBytes)
  --no-tls                do not attach the OpenSSL uprobes: no TLS plaintext, and no CAP_SYS_ADMIN needed
`;

export function parseAgentArgs(argv: string[]): AgentConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        'otlp-endpoint': { type: 'string' },
        console: { type: 'boolean' },
        'service-name': { type: 'string' },
        policy: { type: 'string' },
        tail: { type: 'boolean' },
        json: { type: 'boolean' },
        'min-latency': { type: 'string' },
        'max-body-size': { type: 'string' },
        'skip-uid': { type: 'string', multiple: true },
        'skip-port': { type: 'string', multiple: true },
        admin: { type: 'string' },
        'capture-bytes': { type: 'string' },
        'no-tls': { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new AgentConfigError('flags', (err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return 'help';
  if (v.tail && v.json) throw new AgentConfigError('--tail/--json', 'choose one output format');
  if (v.console && (v.tail || v.json)) throw new AgentConfigError('--console', 'spans on stdout cannot share it with --tail/--json');
  return {
    otlpEndpoint: v['otlp-endpoint'],
    console: v.console ?? false,
    serviceName: v['service-name'],
    policyFile: v.policy,
    output: v.tail ? 'table' : v.json ? 'json' : undefined,
    minLatencyMs: v['min-latency'] === undefined ? 0 : parseDuration('--min-latency', v['min-latency']),
    maxBodySize: v['max-body-size'] === undefined ? Infinity : parseBytes('--max-body-size', v['max-body-size']),
    skipUids: (v['skip-uid'] ?? []).map((s) => parseIntIn('--skip-uid', s, 0, 2 ** 32 - 1)),
    skipPorts: (v['skip-port'] ?? []).map((s) => parseIntIn('--skip-port', s, 1, 65535)),
    admin: v.admin === undefined ? undefined : parseHostPort('--admin', v.admin),
    captureBytes: v['capture-bytes'] === undefined ? 64 * 1024 : captureBytes(v['capture-bytes']),
    tls: !(v['no-tls'] ?? false),
  };
}

export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|µs|ms|s)?$/.exec(text.trim());
  if (m === null) throw new AgentConfigError(flag, `"${text}" is not a duration (e.g. 250ms, 1.5s, 800us)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return unit === 's' ? n * 1000 : unit === 'ms' ? n : n / 1000;
}

export function parseBytes(flag: string, text: string): number {
  const m = /^(\d+)([kmg]i?b?|b)?$/i.exec(text.trim());
  if (m === null) throw new AgentConfigError(flag, `"${text}" is not a byte size (e.g. 4096, 64k, 1m)`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

function parseIntIn(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max) throw new AgentConfigError(flag, `"${text}" is not an integer in ${min}..${max}`);
  return n;
}

/** The proxy's listen-address rules (a bare port binds loopback), with the agent's error code. */
function parseHostPort(flag: string, text: string): Endpoint {
  try {
    return parseEndpoint(flag, text);
  } catch (err) {
    if (err instanceof ConfigError) throw new AgentConfigError(flag, err.message.slice(flag.length + 2));
    throw err;
  }
}

/** The kernel copies at most 1 MiB per call (native/README.md); 0 would capture nothing at all. */
function captureBytes(text: string): number {
  const n = parseBytes('--capture-bytes', text);
  if (n < 1 || n > 1024 * 1024) throw new AgentConfigError('--capture-bytes', `${n} is outside 1..1m (the kernel copies at most 1 MiB per call)`);
  return n;
}
