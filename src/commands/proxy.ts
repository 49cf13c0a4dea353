// `sidetrace proxy`: parse flags, start the proxy, stop cleanly on SIGTERM/SIGINT (flushing spans).

import { ConfigError, parseProxyArgs, PROXY_USAGE } from '../proxy/config.js';
import { startProxy } from '../proxy/proxy.js';
import { ExportConfigError } from '../telemetry/otel-env.js';
import { waitForSignal } from './cli-support.js';

export async function run(argv: string[]): Promise<number> {
  let config;
  try {
    config = parseProxyArgs(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sidetrace proxy: ${err.message}\n\n${PROXY_USAGE}`);
      return 2;
    }
    throw err;
  }
  if (config === 'help') {
    process.stdout.write(PROXY_USAGE);
    return 0;
  }
  let proxy;
  try {
    proxy = await startProxy(config);
  } catch (err) {
    if (err instanceof ExportConfigError) {
      process.stderr.write(`sidetrace proxy: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const lines = proxy.listeners.map((l) => `  ${l.direction} ${l.address.address}:${l.address.port} -> ${l.upstream?.address}:${l.upstream?.port}`);
  process.stderr.write(
    `sidetrace proxy: service ${proxy.serviceName}; spans to ${proxy.exportConfig.exporter === 'otlp' ? proxy.exportConfig.endpoint : proxy.exportConfig.exporter}; admin http://${proxy.admin.address}:${proxy.admin.port}\n${lines.join('\n')}\n`,
  );
  await waitForSignal();
  await proxy.close();
  return 0;
}
