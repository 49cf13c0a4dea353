// Parser for the OTel environment's `key1=value1,key2=value2` lists (OTEL_RESOURCE_ATTRIBUTES,
// OTEL_EXPORTER_OTLP_HEADERS): W3C-baggage-like, keys and values percent-decoded.
// Hand-written because @opentelemetry/core's parseKeyPairsIntoRecord silently skips bad entries,
// and the spec wants the whole variable rejected with an error naming it.

export class KeyValueListError extends Error {
  readonly code = 'ST_ENV_INVALID';
  constructor(readonly variable: string, detail: string) {
    super(`invalid ${variable}: ${detail}`);
    this.name = 'KeyValueListError';
  }
}

/**
 * Parses `raw`; throws KeyValueListError naming `variable` and the bad entry on the first error.
 * Empty entries (`a=1,,b=2`) are skipped; whitespace around keys and values is trimmed.
 * A value may contain `=` (split on the first one), as the Go and Java SDKs accept.
 */
export function parseKeyValueList(variable: string, raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = raw.split(',');
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i].trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq < 0) throw new KeyValueListError(variable, `entry ${i} "${entry}" has no "="`);
    const key = decode(variable, i, entry.slice(0, eq).trim());
    const value = decode(variable, i, entry.slice(eq + 1).trim());
    if (key === '') throw new KeyValueListError(variable, `entry ${i} "${entry}" has an empty key`);
    out[key] = value;
  }
  return out;
}

function decode(variable: string, index: number, s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    throw new KeyValueListError(variable, `entry ${index}: bad percent-encoding in "${s}"`);
  }
}
