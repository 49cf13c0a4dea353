// Retries of one export, between the official export delegate and the wire transport.
// otlp-exporter-base has this wrapper (createRetryingTransport) but does not export it (its
// package "exports" map offers only the delegates), and the official gRPC exporter does not
// retry at all; this is the same loop with the same constants, over the retryable set of the
// OTLP exporter spec that the transport reports as 'retryable'. One difference: once the queue
// is shutting down, no retry is scheduled and pending ones end now, so a pod being terminated does
// not wait out a failing backend batch after batch.

import type { ExportResponse, IExporterTransport } from '@opentelemetry/otlp-exporter-base';

// otlp-exporter-base retrying-transport.ts (0.223)
const MAX_ATTEMPTS = 5;
const INITIAL_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const BACKOFF_MULTIPLIER = 1.5;
const JITTER = 0.2;

export class RetryingTransport implements IExporterTransport {
  private stopping = false;
  private readonly waiting = new Set<() => void>();

  constructor(private readonly transport: IExporterTransport) {}

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const deadline = Date.now() + timeoutMillis;
    let result = await this.transport.send(data, timeoutMillis);
    let backoff = INITIAL_BACKOFF_MS;
    for (let retries = MAX_ATTEMPTS; result.status === 'retryable' && retries > 0 && !this.stopping; retries--) {
      const jittered = Math.max(Math.min(backoff * (1 + JITTER * (2 * Math.random() - 1)), MAX_BACKOFF_MS), 0);
      backoff *= BACKOFF_MULTIPLIER;
      const wait = result.retryInMillis ?? jittered;
      // The server's delay or the backoff would end past the export's deadline: give up now.
      if (wait > deadline - Date.now()) break;
      if (!(await this.sleep(wait))) break;
      result = await this.transport.send(data, deadline - Date.now());
    }
    return result;
  }

  /** Shutdown has begun: no more retries; exports waiting for one return their last result. */
  stopRetrying(): void {
    this.stopping = true;
    for (const wake of this.waiting) wake();
  }

  shutdown(): void {
    this.stopRetrying();
    this.transport.shutdown();
  }

  /** Resolves true after `ms`, false if stopRetrying() came first. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.waiting.delete(wake);
        resolve(!this.stopping);
      };
      const timer = setTimeout(wake, ms);
      this.waiting.add(wake);
    });
  }
}
