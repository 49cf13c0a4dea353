// HTTP/2 error codes (RFC 9113 §7) by name, for `error.type` values like 'RST_STREAM:CANCEL'.

const NAMES: readonly string[] = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

/** The RFC name of an h2 error code; unknown codes (extensions) as `0x<hex>`. */
export function rstCodeName(code: number): string {
  return NAMES[code] ?? `0x${code.toString(16)}`;
}
