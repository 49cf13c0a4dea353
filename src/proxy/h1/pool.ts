// Keep-alive upstream connections, pooled per endpoint and shared by all downstream connections:
// reuse is what keeps a Node proxy at thousands rather than hundreds of requests per second.

import net from 'node:net';
import type { Endpoint } from '../exchange.js';

/** The transaction currently using an upstream connection; gets that socket's events. */
export interface UpstreamOwner {
  upstreamData(chunk: Buffer): void;
  /** FIN from upstream. */
  upstreamEnd(): void;
  upstreamClose(error: NodeJS.ErrnoException | undefined): void;
  upstreamDrain(): void;
}

export interface PoolOptions {
  /** Idle connections kept per endpoint; more are closed. */
  maxIdlePerEndpoint: number;
  /** Idle connections close after this long; below Node's 5 s server keep-alive so we close first. */
  idleTimeoutMs: number;
}

export class UpstreamConn {
  owner: UpstreamOwner | null = null;
  /** Set when taken from the idle list: the server may have closed it meanwhile. */
  reused = false;
  error: NodeJS.ErrnoException | undefined;
  idle = false;

  constructor(
    readonly socket: net.Socket,
    readonly key: string,
    private readonly pool: UpstreamPool,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    socket.on('error', this.onError);
    socket.on('drain', this.onDrain);
    socket.on('timeout', this.onTimeout);
  }

  /** Takes the socket out of pool management for good (tunnels): no listeners of ours remain. */
  detach(): net.Socket {
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onClose);
    s.off('error', this.onError);
    s.off('drain', this.onDrain);
    s.off('timeout', this.onTimeout);
    this.owner = null;
    return s;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.owner) this.owner.upstreamData(chunk);
    // Bytes on an idle connection belong to no request: it can never be trusted again.
    else this.socket.destroy();
  };

  private readonly onEnd = (): void => {
    if (this.owner) this.owner.upstreamEnd();
    else this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.pool.forget(this);
    const owner = this.owner;
    this.owner = null;
    owner?.upstreamClose(this.error);
  };

  private readonly onError = (e: NodeJS.ErrnoException): void => {
    this.error ??= e;
  };

  private readonly onDrain = (): void => {
    this.owner?.upstreamDrain();
  };

  private readonly onTimeout = (): void => {
    if (this.idle) this.socket.destroy();
  };
}

export class UpstreamPool {
  private readonly idleByKey = new Map<string, UpstreamConn[]>();
  private closed = false;

  constructor(private readonly opts: PoolOptions) {}

  /**
   * An idle connection to `ep` (most recently used first, the least likely to be stale) or a new
   * one. `key` names the endpoint (`address:port`), computed once per downstream connection.
   */
  acquire(ep: Endpoint, key: string, owner: UpstreamOwner): UpstreamConn {
    const list = this.idleByKey.get(key);
    while (list !== undefined && list.length > 0) {
      const c = list.pop()!;
      c.idle = false;
      if (c.socket.destroyed || c.socket.readyState !== 'open') {
        c.socket.destroy();
        continue;
      }
      c.socket.setTimeout(0);
      c.reused = true;
      c.owner = owner;
      return c;
    }
    const socket = net.connect({ host: ep.address, port: ep.port, allowHalfOpen: true, noDelay: true });
    const c = new UpstreamConn(socket, key, this);
    c.owner = owner;
    return c;
  }

  /** Returns a connection whose last response was fully read and which did not say close. */
  release(c: UpstreamConn, keepAliveSec: number): void {
    c.owner = null;
    const s = c.socket;
    let list = this.idleByKey.get(c.key);
    if (this.closed || s.destroyed || s.readyState !== 'open' || (list !== undefined && list.length >= this.opts.maxIdlePerEndpoint)) {
      s.destroySoon();
      return;
    }
    if (list === undefined) {
      list = [];
      this.idleByKey.set(c.key, list);
    }
    // Honour the server's advertised keep-alive timeout, leaving a second's margin (as undici does).
    const hinted = keepAliveSec > 1 ? keepAliveSec * 1000 - 1000 : Infinity;
    c.idle = true;
    s.setTimeout(Math.min(this.opts.idleTimeoutMs, hinted));
    if (s.isPaused()) s.resume();
    list.push(c);
  }

  forget(c: UpstreamConn): void {
    if (!c.idle) return;
    c.idle = false;
    const list = this.idleByKey.get(c.key);
    const i = list ? list.indexOf(c) : -1;
    if (i >= 0) list!.splice(i, 1);
  }

  close(): void {
    this.closed = true;
    for (const list of this.idleByKey.values()) {
      for (const c of list.splice(0)) {
        c.idle = false;
        c.socket.destroy();
      }
    }
  }
}
