// Helpers shared by the commands. A module of their own: importing them from collect.ts would load
// the collector and grpc-js into the proxy and tap processes.

export function positiveInt(flag: string, text: string): number | undefined {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`sidetrace: ${flag} must be a positive integer, got "${text}"\n`);
    return undefined;
  }
  return n;
}

export function waitForSignal(cancel?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      cancel?.removeEventListener('abort', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
    // A caller that stops for another reason removes the listeners instead of leaking them.
    cancel?.addEventListener('abort', done, { once: true });
  });
}
