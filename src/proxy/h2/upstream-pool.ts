// One multiplexed h2c session per upstream endpoint, shared by every downstream connection
// going there; a session that got GOAWAY, failed or closed is replaced on the next request.

import http2 from 'node:http2';
import net from 'node:net';
import type { Endpoint } from '../exchange.js';

export interface UpstreamPoolOptions {
  settings: http2.Settings;
  /** Connection-level receive window, so one slow stream cannot stall the others' throughput. */
  connectionWindow: number;
  maxSessionMemory: number;
  maxHeaderListPairs: number;
  /** Called for every session-level error (counted by the handler; never thrown). */
  onSessionError: (err: Error) => void;
}

export class UpstreamPool {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  /** Work waiting for a new session's first SETTINGS from the upstream. */
  private readonly unsettled = new WeakMap<http2.ClientHttp2Session, Array<() => void>>();
  private readonly errors = new WeakMap<http2.ClientHttp2Session, Error>();

  constructor(private readonly opts: UpstreamPoolOptions) {}

  /** A live session to `ep`, connecting if needed. Streams opened before the connect completes are queued by node:http2. */
  session(ep: Endpoint): http2.ClientHttp2Session {
    const key = `${ep.address}:${ep.port}`;
    const cur = this.sessions.get(key);
    if (cur !== undefined && !cur.closed && !cur.destroyed) return cur;
    const host = ep.address.includes(':') ? `[${ep.address}]` : ep.address;
    const s = http2.connect(`http://${host}:${ep.port}`, {
      createConnection: () => net.connect({ host: ep.address, port: ep.port, noDelay: true }),
      settings: this.opts.settings,
      maxSessionMemory: this.opts.maxSessionMemory,
      maxHeaderListPairs: this.opts.maxHeaderListPairs,
    });
    this.sessions.set(key, s);
    const forget = (): void => {
      if (this.sessions.get(key) === s) this.sessions.delete(key);
    };
    s.on('connect', () => {
      try {
        s.setLocalWindowSize(this.opts.connectionWindow);
      } catch (err) {
        this.opts.onSessionError(err as Error);
      }
    });
    this.unsettled.set(s, []);
    const settle = (): void => {
      const queued = this.unsettled.get(s);
      this.unsettled.delete(s);
      if (queued !== undefined) for (const f of queued) f();
    };
    s.once('remoteSettings', settle);
    s.once('close', settle);
    s.on('error', (err) => {
      this.errors.set(s, err);
      forget();
      this.opts.onSessionError(err);
    });
    s.on('goaway', forget);
    s.on('close', forget);
    // Only the handler's work keeps the process alive, never an idle pooled connection.
    s.unref();
    return s;
  }

  /**
   * Runs `fn` once `s` knows the upstream's SETTINGS, at once if it already does. Until then
   * nghttp2 assumes 100 concurrent streams, so a burst on a fresh session would be answered
   * with REFUSED_STREAM by an upstream that allows fewer; after it, excess streams are queued.
   * Also runs `fn` if the session closes first, so the stream fails the normal way.
   */
  whenSettled(s: http2.ClientHttp2Session, fn: () => void): void {
    const queued = this.unsettled.get(s);
    if (queued === undefined) fn();
    else queued.push(fn);
  }

  /** The error that ended `s`, if one did (e.g. ECONNREFUSED). */
  errorOf(s: http2.ClientHttp2Session): Error | undefined {
    return this.errors.get(s);
  }

  /** Stop using `s` for new streams (e.g. its stream ids ran out); its streams finish. */
  retire(s: http2.ClientHttp2Session): void {
    for (const [key, cur] of this.sessions) if (cur === s) this.sessions.delete(key);
    if (!s.closed) s.close();
  }

  /** Close every session: streams in flight get `graceMs` to finish, then are cut. */
  async close(graceMs: number): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => closeSession(s, graceMs)));
  }
}

export function closeSession(s: http2.Http2Session, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    if (s.destroyed) return resolve();
    const timer = setTimeout(() => s.destroy(), graceMs);
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    s.close();
  });
}
