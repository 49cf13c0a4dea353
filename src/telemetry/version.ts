// The sidetrace version, read once from package.json so spans, the resource and /config agree.

import { createRequire } from 'node:module';

// src/telemetry/ and dist/telemetry/ both sit two levels below package.json.
const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

export const VERSION: string = pkg.version;
