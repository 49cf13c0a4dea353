// Puts each demo service behind its own sidetrace proxy, as a sidecar would sit in its pod:
// an inbound listener in front of the app and one outbound listener per dependency. Explicit
// listeners on loopback ports, so no root, iptables or cluster is needed.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProxy, type RunningProxy } from '../proxy/proxy.js';
import { DEFAULT_DETECT_TIMEOUT_MS, DEFAULT_SERVER_FIRST_PORTS } from '../proxy/config.js';
import type { Endpoint } from '../proxy/exchange.js';
import type { RunningService, ServiceSpec } from './service.js';

export interface Sidecar {
  service: string;
  inbound: Endpoint;
  admin: Endpoint;
  proxy: RunningProxy;
}

const LOOPBACK_ANY: Endpoint = { address: '127.0.0.1', port: 0 };

/**
 * The demo's capture policy: every route named by a path template, so spans read
 * "POST /books/order" rather than "POST", with bodies and headers recorded (the defaults).
 */
export function writeDemoPolicy(specs: readonly ServiceSpec[]): { file: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidetrace-demo-'));
  const file = path.join(dir, 'policy.json');
  const paths = [...new Set(specs.flatMap((s) => Object.keys(s.routes)))].sort();
  const doc = { routes: paths.map((p) => ({ match: { pathTemplate: p } })) };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2));
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Starts sidecars callees first, so each outbound listener can point at its callee's inbound one. */
export async function startSidecars(apps: readonly RunningService[], otlpEndpoint: string, policyFile: string): Promise<Sidecar[]> {
  const byName = new Map(apps.map((a) => [a.spec.name, a]));
  const started = new Map<string, Sidecar>();
  const order = calleesFirst(apps.map((a) => a.spec));
  try {
    for (const spec of order) {
      const app = byName.get(spec.name)!;
      const proxy = await startProxy(
        {
          listeners: [
            { direction: 'inbound', listen: LOOPBACK_ANY, upstream: { address: '127.0.0.1', port: app.port } },
            ...spec.calls.map((callee) => ({ direction: 'outbound' as const, listen: LOOPBACK_ANY, upstream: started.get(callee)!.inbound })),
          ],
          serviceName: spec.name,
          otlpEndpoint,
          policyFile,
          admin: LOOPBACK_ANY,
          console: false,
          serverFirstPorts: new Set(DEFAULT_SERVER_FIRST_PORTS),
          detectTimeoutMs: DEFAULT_DETECT_TIMEOUT_MS,
        },
        // The demo's own settings, not whatever OTEL_* the user's shell carries.
        { env: {}, log: (line) => process.stderr.write(`[${spec.name}] ${line}\n`) },
      );
      const [inbound, ...outbound] = proxy.listeners;
      spec.calls.forEach((callee, i) => app.outbound.set(callee, outbound[i].address));
      started.set(spec.name, { service: spec.name, inbound: inbound.address, admin: proxy.admin, proxy });
    }
  } catch (err) {
    await Promise.allSettled([...started.values()].map((s) => s.proxy.close()));
    throw err;
  }
  return order.map((s) => started.get(s.name)!);
}

function calleesFirst(specs: readonly ServiceSpec[]): ServiceSpec[] {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const out: ServiceSpec[] = [];
  const seen = new Set<string>();
  const visit = (s: ServiceSpec, trail: string[]): void => {
    if (seen.has(s.name)) return;
    if (trail.includes(s.name)) throw new Error(`ST_DEMO_CYCLE: services call each other in a loop: ${[...trail, s.name].join(' → ')}`);
    for (const c of s.calls) {
      const callee = byName.get(c);
      if (!callee) throw new Error(`ST_DEMO_UNKNOWN_SERVICE: ${s.name} calls unknown service ${c}`);
      visit(callee, [...trail, s.name]);
    }
    seen.add(s.name);
    out.push(s);
  };
  for (const s of specs) visit(s, []);
  return out;
}
