// The OTel resource every sidetrace span carries: service.name, OTEL_RESOURCE_ATTRIBUTES,
// telemetry.sdk.*, and k8s.* from the downward-API env vars the injector sets.
// Pure over an env object, so the proxy, the agent and tests build it the same way.

import { parseKeyValueList, KeyValueListError } from './key-value-list.js';
import { VERSION } from './version.js';

/** A k8s resource attribute and where the injector puts it in the sidecar's env. */
export interface K8sEnvVar {
  /** The variable the injector sets. */
  env: string;
  /** Commonly used names read when `env` is unset (e.g. apps that set POD_NAME themselves). */
  fallbacks: readonly string[];
  attribute: string;
  /** Downward-API fieldPath for `valueFrom.fieldRef`; absent when the injector sets a literal value. */
  fieldPath?: string;
}

/** The single list of k8s env vars: the injector renders these, resource detection reads them. */
export const K8S_RESOURCE_ENV: readonly K8sEnvVar[] = [
  { env: 'SIDETRACE_POD_NAME', fallbacks: ['POD_NAME'], attribute: 'k8s.pod.name', fieldPath: 'metadata.name' },
  { env: 'SIDETRACE_POD_NAMESPACE', fallbacks: ['POD_NAMESPACE'], attribute: 'k8s.namespace.name', fieldPath: 'metadata.namespace' },
  { env: 'SIDETRACE_POD_UID', fallbacks: ['POD_UID'], attribute: 'k8s.pod.uid', fieldPath: 'metadata.uid' },
  { env: 'SIDETRACE_NODE_NAME', fallbacks: ['NODE_NAME'], attribute: 'k8s.node.name', fieldPath: 'spec.nodeName' },
  // The traced app's container, not the sidecar's; the injector knows it and sets a literal.
  { env: 'SIDETRACE_CONTAINER_NAME', fallbacks: [], attribute: 'k8s.container.name' },
  // The downward API cannot see owners; the injector resolves the Deployment and sets a literal.
  { env: 'SIDETRACE_DEPLOYMENT_NAME', fallbacks: [], attribute: 'k8s.deployment.name' },
];

export const DEFAULT_SERVICE_NAME = 'unknown_service:sidetrace';

export interface ResourceInfo {
  serviceName: string;
  attributes: Record<string, string>;
  /** Problems that did not stop startup (e.g. an invalid OTEL_RESOURCE_ATTRIBUTES, ignored). */
  warnings: string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Precedence, lowest first: k8s env vars, OTEL_RESOURCE_ATTRIBUTES (the user's explicit word),
 * then service.name resolved as flag > OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES > default
 * (OTel SDK spec), then telemetry.sdk.*, which describe sidetrace itself and cannot be overridden.
 */
export function detectResource(env: Env, flags: { serviceName?: string } = {}): ResourceInfo {
  const warnings: string[] = [];
  const attributes: Record<string, string> = {};

  for (const v of K8S_RESOURCE_ENV) {
    const value = nonEmpty(env[v.env]) ?? firstSet(env, v.fallbacks);
    if (value !== undefined) attributes[v.attribute] = value;
  }

  const raw = env.OTEL_RESOURCE_ATTRIBUTES;
  if (raw !== undefined && raw.trim() !== '') {
    try {
      Object.assign(attributes, parseKeyValueList('OTEL_RESOURCE_ATTRIBUTES', raw));
    } catch (err) {
      // Spec: on any error the entire variable is discarded and the error reported.
      if (!(err instanceof KeyValueListError)) throw err;
      warnings.push(`${err.message}; the whole variable is ignored`);
    }
  }

  const serviceName =
    nonEmpty(flags.serviceName) ?? nonEmpty(env.OTEL_SERVICE_NAME) ?? nonEmpty(attributes['service.name']) ?? DEFAULT_SERVICE_NAME;
  attributes['service.name'] = serviceName;
  attributes['telemetry.sdk.name'] = 'sidetrace';
  attributes['telemetry.sdk.language'] = 'nodejs';
  attributes['telemetry.sdk.version'] = VERSION;

  return { serviceName, attributes, warnings };
}

/** An environment value trimmed, or undefined when unset or blank (the spec treats both as unset). */
export function nonEmpty(s: string | undefined): string | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  return t === '' ? undefined : t;
}

function firstSet(env: Env, names: readonly string[]): string | undefined {
  for (const n of names) {
    const v = nonEmpty(env[n]);
    if (v !== undefined) return v;
  }
  return undefined;
}
