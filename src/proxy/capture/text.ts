// Text or binary: text bodies are recorded as strings (and can be redacted), binary bodies as
// OTLP bytes. The declared content type decides when it names a text format; otherwise the
// bytes are sniffed.

import { isUtf8 } from 'node:buffer';
import { internalize } from './intern.js';

/** true: a text type; false: a known binary type; undefined: decide by sniffing. */
export function textContentType(contentType: string | undefined): boolean | undefined {
  if (contentType === undefined) return undefined;
  const semi = contentType.indexOf(';');
  const mime = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  if (mime === '') return undefined;
  if (mime.startsWith('text/')) return true;
  if (mime.endsWith('+json') || mime.endsWith('+xml') || mime.endsWith('json')) return true;
  switch (mime) {
    case 'application/xml':
    case 'application/x-www-form-urlencoded':
    case 'application/javascript':
    case 'application/ecmascript':
    case 'application/graphql':
    case 'application/yaml':
    case 'application/x-yaml':
      return true;
  }
  if (mime.startsWith('image/') || mime.startsWith('audio/') || mime.startsWith('video/') || mime.startsWith('font/')) return false;
  if (mime === 'application/octet-stream' || mime.startsWith('application/grpc') || mime === 'application/protobuf' || mime === 'application/x-protobuf') {
    return false;
  }
  return undefined;
}

/** Length of `buf` without an incomplete UTF-8 sequence at its end (a truncation artefact). */
function completeUtf8Length(buf: Buffer): number {
  const n = buf.length;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const b = buf[n - back];
    if ((b & 0xc0) !== 0x80) {
      // Lead byte: how long should its sequence be?
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      return need > back ? n - back : n;
    }
  }
  return n;
}

function hasControlChars(buf: Buffer, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const b = buf[i];
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return true;
  }
  return false;
}

function isLatin1Charset(contentType: string): boolean {
  return /charset\s*=\s*"?(iso-8859-1|latin1|us-ascii|windows-1252)/i.test(contentType);
}

export interface ContentTypeClass {
  text: boolean | undefined;
  latin1: boolean;
}

/**
 * A service sends the same few content types on every response: each is classified once, and
 * kept in direct-mapped slots (a map would hash every fresh header string in a runtime call).
 * A collision only costs classifying again.
 */
const SLOTS = 64;
const slotType: Array<string | undefined> = new Array<string | undefined>(SLOTS).fill(undefined);
const slotClass: Array<ContentTypeClass | undefined> = new Array<ContentTypeClass | undefined>(SLOTS).fill(undefined);

/** What bodyValue needs to know of a content type; one object per type while it stays cached. */
export function classifyContentType(contentType: string): ContentTypeClass {
  const len = contentType.length;
  const slot = (len * 31 + contentType.charCodeAt(len >> 1) * 7 + contentType.charCodeAt(len - 1)) & (SLOTS - 1);
  if (slotType[slot] === contentType) return slotClass[slot]!;
  const text = textContentType(contentType);
  const c: ContentTypeClass = { text, latin1: text === true && isLatin1Charset(contentType) };
  slotType[slot] = internalize(contentType);
  slotClass[slot] = c;
  return c;
}

/**
 * The recorded value of a body: a string for text, the bytes otherwise. `truncated` lets a
 * sequence cut at the capture limit be dropped instead of making the body look binary. `known`:
 * contentType's classifyContentType, when the caller kept it (a slot lookup compares strings).
 */
export function bodyValue(buf: Buffer, contentType: string | undefined, truncated: boolean, known?: ContentTypeClass): string | Uint8Array {
  const c = known ?? (contentType === undefined ? undefined : classifyContentType(contentType));
  const declared = c?.text;
  if (declared === false) return buf;
  const end = truncated ? completeUtf8Length(buf) : buf.length;
  const whole = end === buf.length ? buf : buf.subarray(0, end);
  if (declared === true) {
    if (c!.latin1) return buf.toString('latin1');
    return isUtf8(whole) ? whole.toString('utf8') : buf;
  }
  return isUtf8(whole) && !hasControlChars(whole, end) ? whole.toString('utf8') : buf;
}
