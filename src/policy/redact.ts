// Secret redaction for everything a span records: headers, gRPC metadata, query strings and
// JSON / form bodies. The built-in names below always apply; a policy can only add to them.

import type { CaptureRule } from './types.js';

/** The replacement for a secret value, as OpenTelemetry semantic conventions spell it. */
export const REDACTED = 'REDACTED';

/** Lowercase; merged into every rule's `redact.headers` by the policy compiler. */
export const BUILTIN_REDACT_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

/** The semconv `url.query` list (AWSAccessKeyId, Signature, sig, X-Goog-Signature) plus common secrets. */
export const BUILTIN_REDACT_QUERY: readonly string[] = [
  'awsaccesskeyid', 'signature', 'sig', 'x-goog-signature',
  'password', 'passwd', 'token', 'access_token', 'refresh_token', 'api_key', 'apikey', 'secret', 'client_secret',
];

/** JSON keys and form fields. */
export const BUILTIN_REDACT_BODY_KEYS: readonly string[] = [
  'password', 'passwd', 'secret', 'token', 'access_token', 'refresh_token', 'client_secret', 'api_key', 'apikey',
];

// Binary gRPC metadata (`*-bin`) often carries credentials under ad-hoc names, so it is matched by word.
const SECRET_BIN_WORDS: readonly string[] = ['auth', 'token', 'secret', 'key', 'password', 'credential', 'cookie'];

export function isRedactedHeader(rule: CaptureRule, lowerName: string): boolean {
  if (rule.redact.headers.has(lowerName)) return true;
  if (!lowerName.endsWith('-bin')) return false;
  for (const word of SECRET_BIN_WORDS) if (lowerName.includes(word)) return true;
  return false;
}

export function redactHeaderValue(rule: CaptureRule, lowerName: string, value: string): string {
  return isRedactedHeader(rule, lowerName) ? REDACTED : value;
}

/** `a=1&token=s3cr3t` → `a=1&token=REDACTED`; a leading `?` is kept, nothing is re-encoded. */
export function redactQuery(rule: CaptureRule, query: string): string {
  return redactPairs(rule.redact.query, query, query.charCodeAt(0) === 0x3f /* ? */ ? 1 : 0);
}

/** An application/x-www-form-urlencoded body; works on a body cut at the capture limit too. */
export function redactForm(rule: CaptureRule, text: string): string {
  return redactPairs(rule.redact.formFields, text, 0);
}

/**
 * Redacts a recorded body by its content type: JSON (`application/json`, `*+json`, NDJSON) and
 * form-urlencoded; anything else is returned unchanged.
 */
export function redactBody(rule: CaptureRule, contentType: string | undefined, text: string): string {
  if (contentType === undefined || text.length === 0) return text;
  const semi = contentType.indexOf(';');
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (type.endsWith('/json') || type.endsWith('+json') || type === 'application/x-ndjson' || type === 'application/jsonl') {
    // Lexical rather than JSON.parse: captured bodies are often cut at maxBodyBytes (not valid
    // JSON any more, yet still holding secrets), and this keeps every other byte as sent.
    return redactJsonText(rule.redact.jsonKeys, text);
  }
  if (type === 'application/x-www-form-urlencoded') return redactForm(rule, text);
  return text;
}

/**
 * Replaces the value after every `"key":` whose key is in `keys` with `"REDACTED"`, scanning the
 * text without parsing it, so a truncated or concatenated JSON body is handled and all other bytes
 * (spacing, number precision) are kept. A value cut off by the end of the text is redacted too.
 */
export function redactJsonText(keys: ReadonlySet<string>, text: string): string {
  const n = text.length;
  let out = '';
  let copied = 0;
  let i = text.indexOf('"');
  while (i >= 0 && i < n) {
    const end = scanString(text, i);
    let j = end;
    while (j < n && isJsonSpace(text.charCodeAt(j))) j++;
    if (j < n && text.charCodeAt(j) === 0x3a /* : */ && isSecretKey(keys, jsonKey(text, i + 1, end - 1))) {
      let v = j + 1;
      while (v < n && isJsonSpace(text.charCodeAt(v))) v++;
      if (v >= n) break;
      const valueEnd = scanValue(text, v);
      out += text.slice(copied, v) + '"REDACTED"';
      copied = valueEnd;
      i = text.indexOf('"', valueEnd);
      continue;
    }
    i = end < n ? text.indexOf('"', end) : -1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

function isSecretKey(keys: ReadonlySet<string>, key: string): boolean {
  return keys.has(key) || keys.has(key.toLowerCase());
}

function isJsonSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Index just past the closing quote of the string opening at `i`, or the text length if unterminated. */
function scanString(text: string, i: number): number {
  let from = i + 1;
  for (;;) {
    const q = text.indexOf('"', from);
    if (q < 0) return text.length;
    let backslashes = 0;
    for (let b = q - 1; text.charCodeAt(b) === 0x5c; b--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    from = q + 1;
  }
}

/** Index just past the JSON value starting at `v` (string, object, array or scalar). */
function scanValue(text: string, v: number): number {
  const n = text.length;
  const c = text.charCodeAt(v);
  if (c === 0x22 /* " */) return scanString(text, v);
  if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
    let depth = 0;
    let k = v;
    while (k < n) {
      const ch = text.charCodeAt(k);
      if (ch === 0x22) {
        k = scanString(text, k);
        continue;
      }
      if (ch === 0x7b || ch === 0x5b) depth++;
      else if (ch === 0x7d || ch === 0x5d) {
        depth--;
        if (depth === 0) return k + 1;
      }
      k++;
    }
    return n;
  }
  let k = v;
  while (k < n) {
    const ch = text.charCodeAt(k);
    if (ch === 0x2c || ch === 0x7d || ch === 0x5d || isJsonSpace(ch)) break;
    k++;
  }
  return k;
}

/** The key text between `from` and `to` (quotes excluded), unescaped when it has escapes. */
function jsonKey(text: string, from: number, to: number): string {
  const raw = text.slice(from, Math.max(from, to));
  if (!raw.includes('\\')) return raw;
  try {
    return JSON.parse(`"${raw}"`) as string;
  } catch {
    return raw;
  }
}

/**
 * Replaces the values of `name=value` pairs (separated by `&`) whose name is in `names`,
 * comparing names case-insensitively and percent-decoded; empty values stay empty.
 */
function redactPairs(names: ReadonlySet<string>, text: string, start: number): string {
  const n = text.length;
  let out = '';
  let copied = 0;
  let pos = start;
  // Searched forward only when passed, so a body of `&`s without `=` stays linear.
  let eq = text.indexOf('=', start);
  while (pos < n) {
    let end = text.indexOf('&', pos);
    if (end < 0) end = n;
    if (eq !== -1 && eq < pos) eq = text.indexOf('=', pos);
    if (eq >= 0 && eq + 1 < end && isSecretParam(names, text.slice(pos, eq))) {
      out += text.slice(copied, eq + 1) + REDACTED;
      copied = end;
    }
    pos = end + 1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

function isSecretParam(names: ReadonlySet<string>, name: string): boolean {
  if (isSecretKey(names, name)) return true;
  if (!name.includes('%') && !name.includes('+')) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    return false;
  }
  return isSecretKey(names, decoded);
}
