// Records real traffic for agent tests: a loopback TCP relay between a real client and a real
// server that keeps every chunk in arrival order, as the kernel would see the client's writes
// (egress) and reads (ingress). Connections are recorded separately, in accept order.

import net from 'node:net';
import type { Write } from './synthetic.js';

export interface Recorder {
  port: number;
  /** Per relayed connection, its chunks from the client's side. */
  readonly connections: Write[][];
  /** Resolves once every relayed connection has closed on both sides. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

export async function recordTraffic(target: number): Promise<Recorder> {
  const connections: Write[][] = [];
  const open = new Set<Promise<void>>();
  const server = net.createServer((down) => {
    const writes: Write[] = [];
    connections.push(writes);
    const up = net.connect(target, '127.0.0.1');
    const done = new Promise<void>((resolve) => {
      let closed = 0;
      const onClose = () => {
        if (++closed === 2) resolve();
      };
      down.on('close', onClose);
      up.on('close', onClose);
    });
    open.add(done);
    void done.then(() => open.delete(done));
    down.on('data', (d: Buffer) => {
      writes.push({ direction: 'egress', data: Buffer.from(d) });
      up.write(d);
    });
    up.on('data', (d: Buffer) => {
      writes.push({ direction: 'ingress', data: Buffer.from(d) });
      down.write(d);
    });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    settled: async () => {
      while (open.size > 0) await Promise.all([...open]);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
