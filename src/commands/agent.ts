// `sidetrace agent`: parse flags, open the kernel capture (native addon), run the agent until
// SIGTERM/SIGINT, then detach and flush spans.

import { AGENT_USAGE, AgentConfigError, parseAgentArgs } from '../bpf-fallback/agent-config.js';
import { startAgent, type CaptureSource } from '../bpf-fallback/agent.js';
import type { AgentCaptureOptions } from '../bpf-fallback/native.js';
import { ExportConfigError } from '../telemetry/otel-env.js';
import { waitForSignal } from './cli-support.js';

export async function run(argv: string[]): Promise<number> {
  let config;
  try {
    config = parseAgentArgs(argv);
  } catch (err) {
    if (err instanceof AgentConfigError) {
      process.stderr.write(`sidetrace agent: ${err.message}\n\n${AGENT_USAGE}`);
      return 2;
    }
    throw err;
  }
  if (config === 'help') {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  let source: CaptureSource;
  try {
    // The agent's own pid is skipped in the kernel: its span export would otherwise be copied
    // through the ring buffer and decoded only for startAgent to discard it.
    source = await openCapture({ skipUids: config.skipUids, skipPorts: config.skipPorts, skipPids: [process.pid], maxPayloadBytes: config.captureBytes, tls: config.tls });
  } catch (err) {
    // The addon names what is missing (capability, BTF, tracefs) in its message; its "open with
    // tls: false" is this command's --no-tls.
    const message = (err as Error).message.replace('open with tls: false', 'run with --no-tls (TLS plaintext is then not captured)');
    process.stderr.write(`sidetrace agent: cannot start kernel capture: ${message}\n`);
    return 1;
  }
  let agent;
  try {
    agent = await startAgent(config, source);
  } catch (err) {
    await source.close();
    if (err instanceof ExportConfigError || (err as { code?: string }).code === 'ST_ADMIN_LISTEN') {
      process.stderr.write(`sidetrace agent: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  }
  const target = agent.exportConfig.exporter === 'otlp' ? agent.exportConfig.endpoint : agent.exportConfig.exporter;
  process.stderr.write(`sidetrace agent: tracing; spans to ${target}${agent.admin ? `; admin http://${agent.admin.address}:${agent.admin.port}` : ''}\n`);
  await waitForSignal();
  await agent.close();
  return 0;
}

async function openCapture(opts: AgentCaptureOptions): Promise<CaptureSource> {
  // Loaded on demand: the addon is only needed (and only loadable, as root) by this command.
  const { openAgentCapture } = await import('../bpf-fallback/native.js');
  for (let attempt = 1; ; attempt++) {
    try {
      return openAgentCapture(opts);
    } catch (err) {
      // The kernel answers EAGAIN while other BPF programs load at the same moment: try again.
      if (attempt >= 5 || !/temporarily unavailable/i.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}
