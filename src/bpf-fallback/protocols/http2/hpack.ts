// HPACK header block decoding (RFC 7541): integers, Huffman strings, static and dynamic tables.
// Hand-written because it is the agent's hot path and npm's HPACK packages are stream-shaped and
// unmaintained. A decoder that joined a connection mid-way (or lost a header block) no longer
// knows its dynamic table: it then decodes what it can (static references and literals) and
// says the block was incomplete, instead of guessing.

import type { RawHeaders } from '../../../proxy/exchange.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_TABLE } from './hpack-tables.js';

export class HpackError extends Error {
  readonly code = 'ST_HPACK_INVALID';
  constructor(detail: string, readonly offset: number) {
    super(`invalid HPACK block at byte ${offset}: ${detail}`);
    this.name = 'HpackError';
  }
}

export interface DecodedBlock {
  headers: RawHeaders;
  /** False when some fields referenced dynamic-table entries this decoder does not know. */
  complete: boolean;
}

const ENTRY_OVERHEAD = 32;
/** A header block's decoded size limit: beyond it the block is rejected (memory bound). */
const MAX_DECODED_BYTES = 256 * 1024;

export class HpackDecoder {
  /** Newest first. */
  private readonly entries: Array<readonly [string, string]> = [];
  private size = 0;
  private maxSize: number;

  /** `synced` false: this decoder did not see the connection's start (table contents unknown). */
  constructor(
    public synced = true,
    private readonly limit = 64 * 1024,
  ) {
    this.maxSize = Math.min(4096, limit);
  }

  get tableBytes(): number {
    return this.size;
  }

  /** The table's contents are lost (a block was not decoded). */
  desync(): void {
    this.synced = false;
    this.entries.length = 0;
    this.size = 0;
  }

  decode(block: Buffer): DecodedBlock {
    const headers: RawHeaders = [];
    let complete = true;
    let decoded = 0;
    const cursor = { pos: 0 };
    while (cursor.pos < block.length) {
      const at = cursor.pos;
      const b = block[at];
      let name: string | undefined;
      let value: string;
      if (b & 0x80) {
        const index = readInt(block, cursor, 7);
        const entry = this.lookup(index, at);
        if (entry === undefined) {
          complete = false;
          continue;
        }
        headers.push(entry[0], entry[1]);
        decoded += entry[0].length + entry[1].length;
        if (decoded > MAX_DECODED_BYTES) throw new HpackError('decoded headers too large', at);
        continue;
      }
      if ((b & 0xe0) === 0x20) {
        const size = readInt(block, cursor, 5);
        if (size > this.limit) throw new HpackError(`table size update ${size} above ${this.limit}`, at);
        this.maxSize = size;
        this.evict(0);
        continue;
      }
      const indexing = (b & 0xc0) === 0x40;
      const nameIndex = readInt(block, cursor, indexing ? 6 : 4);
      if (nameIndex === 0) name = readString(block, cursor);
      else {
        const entry = this.lookup(nameIndex, at);
        name = entry?.[0];
      }
      value = readString(block, cursor);
      decoded += (name?.length ?? 0) + value.length;
      if (decoded > MAX_DECODED_BYTES) throw new HpackError('decoded headers too large', at);
      if (name === undefined) {
        complete = false;
        if (indexing) this.add('', value);
        continue;
      }
      if (indexing) this.add(name, value);
      headers.push(name, value);
    }
    return { headers, complete };
  }

  private lookup(index: number, at: number): readonly [string, string] | undefined {
    if (index === 0) throw new HpackError('index 0', at);
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const entry = this.entries[index - STATIC_TABLE.length - 1];
    if (entry === undefined || (entry[0] === '' && !this.synced)) {
      if (this.synced) throw new HpackError(`index ${index} beyond the dynamic table`, at);
      return undefined;
    }
    return entry;
  }

  private add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      this.entries.length = 0;
      this.size = 0;
      return;
    }
    this.evict(size);
    this.entries.unshift([name, value]);
    this.size += size;
  }

  private evict(room: number): void {
    while (this.size + room > this.maxSize && this.entries.length > 0) {
      const e = this.entries.pop()!;
      this.size -= e[0].length + e[1].length + ENTRY_OVERHEAD;
    }
  }
}

function readInt(buf: Buffer, cursor: { pos: number }, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  let value = buf[cursor.pos++] & max;
  if (value < max) return value;
  let shift = 0;
  for (;;) {
    if (cursor.pos >= buf.length) throw new HpackError('truncated integer', cursor.pos);
    const b = buf[cursor.pos++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return value;
    if (shift > 28) throw new HpackError('integer too large', cursor.pos);
  }
}

function readString(buf: Buffer, cursor: { pos: number }): string {
  if (cursor.pos >= buf.length) throw new HpackError('missing string', cursor.pos);
  const huffman = (buf[cursor.pos] & 0x80) !== 0;
  const length = readInt(buf, cursor, 7);
  const start = cursor.pos;
  const end = start + length;
  if (end > buf.length) throw new HpackError(`string of ${length} bytes runs past the block`, start);
  cursor.pos = end;
  return huffman ? huffmanDecode(buf, start, end) : buf.toString('latin1', start, end);
}

// The Huffman code as a binary tree in flat arrays: node n's children are at 2n and 2n+1;
// a child value >= 0 is a node, -1 - symbol is a leaf.
const TREE = buildTree();

function buildTree(): Int32Array {
  const tree = new Int32Array(2 * 512).fill(0);
  let nodes = 1;
  const insert = (code: number, length: number, symbol: number) => {
    let node = 0;
    for (let i = length - 1; i >= 0; i--) {
      const bit = (code >>> i) & 1;
      const slot = 2 * node + bit;
      if (i === 0) tree[slot] = -1 - symbol;
      else {
        if (tree[slot] === 0) tree[slot] = nodes++;
        node = tree[slot];
      }
    }
  };
  for (let s = 0; s < 256; s++) insert(HUFFMAN_CODES[s], HUFFMAN_LENGTHS[s], s);
  insert(0x3fffffff, 30, 256);
  return tree;
}

export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  let out = '';
  let node = 0;
  let depth = 0;
  let allOnes = true;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1;
      const next = TREE[2 * node + b];
      depth++;
      allOnes = allOnes && b === 1;
      if (next < 0) {
        const symbol = -1 - next;
        if (symbol === 256) throw new HpackError('EOS in Huffman string', i);
        out += String.fromCharCode(symbol);
        node = 0;
        depth = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code', i);
      } else node = next;
    }
  }
  // Padding: fewer than 8 bits, all ones (the EOS prefix).
  if (depth > 7 || !allOnes) throw new HpackError('invalid Huffman padding', end);
  return out;
}
