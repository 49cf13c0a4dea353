// Tap output: fixed columns like trace_http, or one JSON object per request with every
// header and body (bytes as { base64 }).

import { spanToJson } from '../telemetry/span-json.js';
import type { TapEvent } from './event.js';

const COLUMNS: [string, number][] = [
  ['TIMESTAMP', 24],
  ['SRC', 21],
  ['DST', 21],
  ['PROTO', 8],
  ['METHOD', 7],
  ['HOST', 20],
  ['PATH', 28],
  ['STATUS', 6],
  ['LATENCY', 0],
];

export function header(): string {
  return COLUMNS.map(([name, w]) => name.padEnd(w)).join(' ').trimEnd();
}

export function row(e: TapEvent): string {
  const cells = [
    e.timestamp,
    e.src,
    e.dst,
    e.proto,
    e.method ?? '-',
    e.host ?? '-',
    e.path ?? '-',
    e.status === undefined ? '-' : String(e.status),
    `${e.latencyMs.toFixed(1)}ms`,
  ];
  // Long values keep their full text and push the row right: a cut path would mislead.
  return cells.map((c, i) => c.padEnd(COLUMNS[i][1])).join(' ').trimEnd();
}

export function json(e: TapEvent): string {
  // spanToJson's text already is a JSON object: add the tap fields in front without a re-parse.
  return `{"service":${JSON.stringify(e.service)},"source":${JSON.stringify(e.source)},${spanToJson(e.span).slice(1)}`;
}
