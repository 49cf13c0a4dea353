#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm run build` (scripts/setup.sh runs it).
import { main } from '../dist/cli.js';

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(`sidetrace: ${err?.message ?? err}`); process.exitCode = 1; },
);
