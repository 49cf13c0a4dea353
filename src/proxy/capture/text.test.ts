import { describe, expect, it } from 'vitest';
import { bodyValue, textContentType } from './text.js';

describe('textContentType', () => {
  it('recognises text formats', () => {
    for (const ct of [
      'text/plain',
      'text/html; charset=utf-8',
      'application/json',
      'Application/JSON',
      'application/vnd.api+json',
      'application/soap+xml',
      'application/xml',
      'application/x-www-form-urlencoded',
      'application/javascript',
      'application/x-ndjson',
    ]) {
      expect(textContentType(ct), ct).toBe(true);
    }
  });

  it('recognises binary formats', () => {
    for (const ct of ['image/png', 'application/octet-stream', 'application/grpc+proto', 'video/mp4']) {
      expect(textContentType(ct), ct).toBe(false);
    }
  });

  it('leaves unknown or missing types to sniffing', () => {
    expect(textContentType(undefined)).toBeUndefined();
    expect(textContentType('application/x-custom')).toBeUndefined();
    expect(textContentType('')).toBeUndefined();
  });
});

describe('bodyValue', () => {
  it('returns declared text as a string', () => {
    expect(bodyValue(Buffer.from('{"a":1}'), 'application/json', false)).toBe('{"a":1}');
  });

  it('decodes a latin1 charset', () => {
    expect(bodyValue(Buffer.from([0x63, 0x61, 0x66, 0xe9]), 'text/plain; charset=ISO-8859-1', false)).toBe('café');
  });

  it('keeps declared text that is not UTF-8 as bytes', () => {
    const buf = Buffer.from([0xff, 0xfe, 0x41]);
    expect(bodyValue(buf, 'text/plain', false)).toBe(buf);
  });

  it('keeps binary types as bytes even when printable', () => {
    const buf = Buffer.from('looks like text');
    const v = bodyValue(buf, 'application/octet-stream', false);
    expect(v).toBeInstanceOf(Uint8Array);
    expect(typeof v).not.toBe('string');
  });

  it('sniffs valid UTF-8 without control characters as text', () => {
    expect(bodyValue(Buffer.from('héllo\r\n\tworld'), undefined, false)).toBe('héllo\r\n\tworld');
  });

  it('sniffs control characters as binary', () => {
    const buf = Buffer.from([0x68, 0x00, 0x69]);
    expect(bodyValue(buf, undefined, false)).toBe(buf);
    expect(bodyValue(Buffer.from('a\x1bb'), 'application/x-custom', false)).toBeInstanceOf(Uint8Array);
  });

  it('sniffs invalid UTF-8 as binary', () => {
    expect(bodyValue(Buffer.from([0x61, 0xc3, 0x28]), undefined, false)).toBeInstanceOf(Uint8Array);
  });

  it('drops a multi-byte sequence cut by truncation instead of calling it binary', () => {
    const full = Buffer.from('abc€');
    const cut = full.subarray(0, full.length - 1);
    expect(bodyValue(cut, undefined, true)).toBe('abc');
    expect(bodyValue(cut, 'text/plain', true)).toBe('abc');
    expect(bodyValue(cut, undefined, false)).toBeInstanceOf(Uint8Array);
  });
});
