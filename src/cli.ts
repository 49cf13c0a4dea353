// Entry point: `sidetrace <command> [flags]`. Each command lives in src/commands/<name>.ts and
// is loaded on demand, so `sidetrace proxy` never pays for the demo's or the agent's modules.

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number | void> }> }> = {
  proxy: { summary: 'run the L7 tracing proxy (sidecar)', load: () => import('./commands/proxy.js') },
  demo: { summary: 'run example services behind sidetrace and report what it finds', load: () => import('./commands/demo.js') },
  collect: { summary: 'run the embedded OTLP collector and trace viewer', load: () => import('./commands/collect.js') },
  tap: { summary: 'stream live requests from proxies\' admin endpoints', load: () => import('./commands/tap.js') },
  agent: { summary: 'trace every process on this node from the kernel (eBPF node agent)', load: () => import('./commands/agent.js') },
};

export async function main(argv: string[]): Promise<number | void> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`sidetrace: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const mod = await cmd.load();
  return mod.run(rest);
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return `usage: sidetrace <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun "sidetrace <command> --help" for a command's flags.\n`;
}
