import type { ExportResponse, IExporterTransport } from '@opentelemetry/otlp-exporter-base';
import { describe, expect, it } from 'vitest';
import { retryDelayMs } from './grpc-h2-transport.js';
import { RetryingTransport } from './retrying-transport.js';

/** Answers each send with the next scripted response, recording the timeout it was given. */
function scripted(...answers: ExportResponse[]) {
  const timeouts: number[] = [];
  const transport: IExporterTransport = {
    send: (_data, timeoutMillis) => {
      timeouts.push(timeoutMillis);
      return Promise.resolve(answers[Math.min(timeouts.length - 1, answers.length - 1)]);
    },
    shutdown: () => {},
  };
  return { transport, timeouts };
}

const DATA = new Uint8Array(8);
const retryable = (retryInMillis?: number): ExportResponse => ({ status: 'retryable', error: new Error('14 UNAVAILABLE'), retryInMillis });

describe('RetryingTransport', () => {
  it('retries a retryable answer after the delay asked for, with the time left of the deadline', async () => {
    const { transport, timeouts } = scripted(retryable(20), retryable(20), { status: 'success' });
    const t0 = performance.now();
    const r = await new RetryingTransport(transport).send(DATA, 1000);
    expect(r.status).toBe('success');
    expect(timeouts).toHaveLength(3);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(38);
    expect(timeouts[1]).toBeLessThan(1000);
    expect(timeouts[2]).toBeLessThan(timeouts[1]);
  });

  it('does not retry failures, nor past the deadline', async () => {
    const failing = scripted({ status: 'failure', error: new Error('3 INVALID_ARGUMENT') });
    expect((await new RetryingTransport(failing.transport).send(DATA, 1000)).status).toBe('failure');
    expect(failing.timeouts).toHaveLength(1);
    // The default first backoff (about 1 s) does not fit in 300 ms: the answer is returned as is.
    const late = scripted(retryable());
    const t0 = performance.now();
    expect((await new RetryingTransport(late.transport).send(DATA, 300)).status).toBe('retryable');
    expect(late.timeouts).toHaveLength(1);
    // Well under the ~1 s a retry would have taken, with room for a loaded 2-core machine.
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('gives up after 5 retries', async () => {
    const { transport, timeouts } = scripted(retryable(1));
    expect((await new RetryingTransport(transport).send(DATA, 5000)).status).toBe('retryable');
    expect(timeouts).toHaveLength(6);
  });

  it('stopRetrying ends a wait for a retry at once, and no retry starts after it', async () => {
    const { transport, timeouts } = scripted(retryable(10_000));
    const retrying = new RetryingTransport(transport);
    const p = retrying.send(DATA, 20_000);
    await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    retrying.stopRetrying();
    expect((await p).status).toBe('retryable');
    // Well under the 10 s retry delay it cut short, with room for a loaded machine.
    expect(performance.now() - t0).toBeLessThan(500);
    expect(timeouts).toHaveLength(1);
    expect((await retrying.send(DATA, 20_000)).status).toBe('retryable');
    expect(timeouts).toHaveLength(2);
  });
});

describe('retryDelayMs', () => {
  // google.rpc.Status{code: 8, details: [Any{RetryInfo{retry_delay: 1.5 s}}]}, base64 as in grpc-status-details-bin.
  const typeUrl = Buffer.from('type.googleapis.com/google.rpc.RetryInfo');
  const duration = Buffer.from([0x08, 0x01, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01]); // 1 s + 500,000,000 ns
  const retryInfo = Buffer.concat([Buffer.from([0x0a, duration.length]), duration]);
  const any = Buffer.concat([Buffer.from([0x0a, typeUrl.length]), typeUrl, Buffer.from([0x12, retryInfo.length]), retryInfo]);
  const status = Buffer.concat([Buffer.from([0x08, 0x08, 0x1a, any.length]), any]);

  it('reads RetryInfo.retry_delay', () => {
    expect(retryDelayMs(status.toString('base64'))).toBe(1500);
  });

  it('is undefined without RetryInfo or for garbage', () => {
    expect(retryDelayMs(Buffer.from([0x08, 0x08]).toString('base64'))).toBeUndefined();
    expect(retryDelayMs(Buffer.from([0x1a, 0x40, 0x01]).toString('base64'))).toBeUndefined();
  });
});
