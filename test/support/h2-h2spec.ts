// Runs h2spec (summerwind/h2spec, installed by scripts/setup.sh) and reads its JUnit report.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cachedTool } from './tools.js';

export interface H2specCase {
  /** `<section> <description>`, e.g. `http2/6.7 Sends a PING frame with ACK`. */
  id: string;
  outcome: 'passed' | 'failed' | 'skipped';
  detail: string;
}

/** Runs every h2spec case against 127.0.0.1:port (h2c). h2spec exits 1 when any case fails. */
export async function runH2spec(port: number, timeoutSec = 5): Promise<H2specCase[]> {
  const bin = cachedTool('h2spec');
  if (!existsSync(bin)) throw new Error(`h2spec not found at ${bin}: run scripts/setup.sh to install the test peers`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidetrace-h2spec-'));
  const report = path.join(dir, 'report.xml');
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(bin, ['-h', '127.0.0.1', '-p', String(port), '-o', String(timeoutSec), '-j', report], { timeout: 180_000 }, (err) => {
        if (err && err.code !== 1) reject(err);
        else resolve();
      });
    });
    return parseJunit(await readFile(report, 'latin1'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// The report embeds raw frame bytes (opaque PING data), so it is not well-formed XML: a
// regular expression over its fixed shape is more robust here than an XML parser.
function parseJunit(xml: string): H2specCase[] {
  const out: H2specCase[] = [];
  const re = /<testcase package="([^"]*)" classname="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m = re.exec(xml); m !== null; m = re.exec(xml)) {
    const body = (m[3] ?? '').trim();
    const outcome = body === '' ? 'passed' : body.startsWith('<skipped') ? 'skipped' : 'failed';
    out.push({ id: `${m[1]} ${unescape(m[2])}`, outcome, detail: body.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim() });
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
