// Optional JSON-lines output: one StoredSpan per line, appended as batches arrive.

import fs from 'node:fs';
import type { StoredSpan } from './model.js';

export interface JsonlWriter {
  write(spans: readonly StoredSpan[]): void;
  close(): Promise<void>;
}

export function openJsonl(path: string): JsonlWriter {
  const out = fs.createWriteStream(path, { flags: 'a' });
  let failure: Error | undefined;
  out.on('error', (err) => {
    failure = err;
    process.stderr.write(`sidetrace collect: ST_JSONL_WRITE: cannot write ${path}: ${err.message}\n`);
  });
  return {
    write(spans) {
      if (failure || spans.length === 0) return;
      let text = '';
      for (const s of spans) text += JSON.stringify(s) + '\n';
      out.write(text);
    },
    close: () => new Promise<void>((resolve) => out.end(() => resolve())),
  };
}
