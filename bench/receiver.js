// Starts bench/otlp-receiver.js, the benches' span sink, as a pinned child and speaks its IPC
// protocol: it sends {port} once listening; on 'count' it answers {spans, requests, decodeErrors}.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnPinned } from './procs.js';

const RECEIVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'otlp-receiver.js');

/**
 * The receiver on `core`, logging to logFile, once listening: {port, count(), child}. The child
 * goes into `children` at once, so the caller's cleanup stops it even if it never listens.
 */
export async function startReceiver(core, logFile, children) {
  const child = spawnPinned(core, process.execPath, [RECEIVER], { logFile, ipc: true });
  children.push(child);
  const exited = new Promise((resolve, reject) => child.once('exit', (code) => reject(new Error(`otlp receiver exited ${code}`))));
  // The exit listener outlives the start; the rejection is only wanted while waiting for the port.
  exited.catch(() => {});
  const first = await Promise.race([nextMessage(child, 10_000), exited]);
  return {
    child,
    port: first.port,
    count: () => {
      child.send('count');
      return nextMessage(child, 5_000);
    },
  };
}

function nextMessage(child, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('otlp receiver did not answer')), timeoutMs);
    child.once('message', (m) => { clearTimeout(timer); resolve(m); });
  });
}
