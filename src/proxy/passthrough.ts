// Opaque TCP relay for what the proxy does not parse: TLS, unknown protocols, server-first
// ports and detection timeouts. Bytes go through untouched, half-close and resets included.

import net from 'node:net';
import type { Endpoint } from './exchange.js';

/**
 * Relay `socket` to `upstream`, first sending the bytes detection already consumed.
 * A reset on one side resets the other (so peers see what they would see without us);
 * a FIN is forwarded as a FIN.
 */
export function relay(socket: net.Socket, initial: Buffer, upstream: Endpoint, onUpstreamError?: (err: Error) => void): void {
  const up = net.connect({ host: upstream.address, port: upstream.port, allowHalfOpen: true, noDelay: true });
  if (initial.length > 0) up.write(initial);
  // A FIN the client sent while we were still detecting is passed on too: pipe() ends the
  // destination at once when its source has already ended.
  splice(socket, up, onUpstreamError);
}

/** Pipe two connected sockets both ways, propagating FIN and RST. Also used for tunnels. */
export function splice(a: net.Socket, b: net.Socket, onBError?: (err: Error) => void): void {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => reset(b));
  b.on('error', (err) => {
    onBError?.(err);
    reset(a);
  });
  // A side that closed without a clean FIN (error, destroy, timeout) takes the other down with
  // a reset; after a clean FIN, pipe() has already forwarded it as end().
  a.on('close', (hadError) => {
    if (hadError || !a.readableEnded) reset(b);
  });
  b.on('close', (hadError) => {
    if (hadError || !b.readableEnded) reset(a);
  });
}

/** Close with RST rather than FIN, so the peer learns the other side failed. */
export function reset(s: net.Socket): void {
  if (s.destroyed) return;
  if (typeof s.resetAndDestroy === 'function' && s.readyState !== 'opening') s.resetAndDestroy();
  else s.destroy();
}
