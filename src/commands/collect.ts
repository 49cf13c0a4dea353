// `sidetrace collect`: the embedded OTLP backend and trace viewer, until Ctrl-C.

import { parseArgs } from 'node:util';
import { AddressError, startCollector } from '../collector/collector.js';
import { DEFAULT_MAX_BATCH_BYTES } from '../collector/otlp-server.js';
import { positiveInt, waitForSignal } from './cli-support.js';

const USAGE = `usage: sidetrace collect [flags]

An OTLP/gRPC receiver with a bounded in-memory store and a local trace viewer.

  --otlp ADDR           OTLP gRPC listen address (default 127.0.0.1:4317)
  --ui ADDR             viewer listen address (default 127.0.0.1:16686); "off" disables it
  --max-spans N         spans kept in memory; the oldest traces go first (default 100000)
  --max-memory-mb N     approximate memory for stored spans and their bodies (default 512)
  --max-batch-bytes N   largest Export request accepted (default ${DEFAULT_MAX_BATCH_BYTES})
  --jsonl FILE          also append every span to FILE as one JSON object per line
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        otlp: { type: 'string', default: '127.0.0.1:4317' },
        ui: { type: 'string', default: '127.0.0.1:16686' },
        'max-spans': { type: 'string', default: '100000' },
        'max-memory-mb': { type: 'string', default: '512' },
        'max-batch-bytes': { type: 'string', default: String(DEFAULT_MAX_BATCH_BYTES) },
        jsonl: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`sidetrace collect: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const maxSpans = positiveInt('--max-spans', values['max-spans']);
  const maxBatchBytes = positiveInt('--max-batch-bytes', values['max-batch-bytes']);
  const maxMemoryMb = positiveInt('--max-memory-mb', values['max-memory-mb']);
  if (maxSpans === undefined || maxBatchBytes === undefined || maxMemoryMb === undefined) return 2;
  let collector;
  try {
    collector = await startCollector({
      otlp: values.otlp,
      ui: values.ui === 'off' ? null : values.ui,
      maxSpans,
      maxBytes: maxMemoryMb * 1024 * 1024,
      maxBatchBytes,
      jsonl: values.jsonl,
    });
  } catch (err) {
    if (!(err instanceof AddressError)) throw err;
    process.stderr.write(`sidetrace collect: ${err.message}\n`);
    return 2;
  }
  process.stdout.write(`sidetrace collect: OTLP gRPC on ${collector.otlp.address}\n`);
  if (collector.uiUrl) process.stdout.write(`sidetrace collect: viewer at ${collector.uiUrl}\n`);
  await waitForSignal();
  await collector.close();
  return 0;
}
