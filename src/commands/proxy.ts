// Placeholder while the command is being built (replaced by its implementation).
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('sidetrace proxy: not built yet\n');
  return 1;
}
