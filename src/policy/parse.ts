// Turns a policy document (YAML or JSON text, or an already-parsed object) into a CompiledPolicy:
// validates it (schema.ts), merges each route over the default and pre-builds every match result.

import { parseDocument } from 'yaml';
import type * as z from 'zod';
import { createMatcher, type CompiledRoute, type MatchSpec } from './match.js';
import { BUILTIN_REDACT_BODY_KEYS, BUILTIN_REDACT_HEADERS, BUILTIN_REDACT_QUERY } from './redact.js';
import { policySchema, type MatchDoc, type RuleDoc } from './schema.js';
import { PolicyError, type CaptureRule, type CompiledPolicy, type HeaderSelector, type Redaction, type RouteMatch } from './types.js';

const BUILTIN_RULE: CaptureRule = {
  spans: true,
  requestBody: true,
  responseBody: true,
  maxBodyBytes: 65536,
  requestHeaders: 'all',
  responseHeaders: 'all',
  redact: {
    headers: new Set(BUILTIN_REDACT_HEADERS),
    query: new Set(BUILTIN_REDACT_QUERY),
    jsonKeys: new Set(BUILTIN_REDACT_BODY_KEYS),
    formFields: new Set(BUILTIN_REDACT_BODY_KEYS),
  },
  sample: 1,
  keepSlowerThanMs: 500,
};

/** Parses YAML or JSON (JSON is YAML); an empty document yields the default policy. */
export function parsePolicy(text: string): CompiledPolicy {
  const doc = parseDocument(text);
  const err = doc.errors[0];
  if (err !== undefined) {
    // The first line already says where ("... at line 2, column 1:"); errors are logged as one line.
    throw new PolicyError('', `not valid YAML or JSON: ${err.message.split('\n')[0]!.replace(/:$/, '')}`);
  }
  let obj: unknown;
  try {
    obj = doc.toJS();
  } catch (e) {
    // e.g. too many alias expansions (a "billion laughs" document).
    throw new PolicyError('', `not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  return compilePolicy(obj ?? {});
}

/** Validates and compiles an already-parsed document. */
export function compilePolicy(obj: unknown): CompiledPolicy {
  const parsed = policySchema.safeParse(obj);
  if (!parsed.success) throw toPolicyError(parsed.error);
  const doc = parsed.data;
  const defaultRule = mergeRule(BUILTIN_RULE, doc.default ?? {});
  const fallback: RouteMatch = Object.freeze({ rule: defaultRule, route: undefined });
  const routes: CompiledRoute[] = [];
  const effectiveRoutes: unknown[] = [];
  for (const r of doc.routes ?? []) {
    const { match, ...fields } = r;
    const rule = mergeRule(defaultRule, fields);
    const spec = toSpec(match);
    const route = spec.kind === 'pathTemplate' ? spec.template : undefined;
    routes.push({ spec, methods: match.methods && new Set(match.methods), result: Object.freeze({ rule, route }) });
    effectiveRoutes.push({ match: matchToJson(match), ...ruleToJson(rule) });
  }
  const effective = { default: ruleToJson(defaultRule), routes: effectiveRoutes };
  return { match: createMatcher(routes, fallback), effective };
}

let cachedDefault: CompiledPolicy | undefined;

/** The built-in policy: everything recorded, built-in secrets redacted, no sampling. */
export function defaultPolicy(): CompiledPolicy {
  cachedDefault ??= compilePolicy({});
  return cachedDefault;
}

function mergeRule(base: CaptureRule, doc: RuleDoc): CaptureRule {
  return Object.freeze({
    spans: doc.spans ?? base.spans,
    requestBody: doc.requestBody ?? base.requestBody,
    responseBody: doc.responseBody ?? base.responseBody,
    maxBodyBytes: doc.maxBodyBytes ?? base.maxBodyBytes,
    requestHeaders: doc.headers?.request ?? base.requestHeaders,
    responseHeaders: doc.headers?.response ?? base.responseHeaders,
    // Additive: a route can never un-redact a secret the default (or the built-ins) hides.
    redact: doc.redact === undefined ? base.redact : mergeRedaction(base.redact, doc.redact),
    sample: doc.sample ?? base.sample,
    keepSlowerThanMs: doc.keepSlowerThanMs ?? base.keepSlowerThanMs,
  });
}

function mergeRedaction(base: Redaction, add: NonNullable<RuleDoc['redact']>): Redaction {
  const union = (a: ReadonlySet<string>, b: string[] | undefined): ReadonlySet<string> => (b === undefined ? a : new Set([...a, ...b]));
  return Object.freeze({
    headers: union(base.headers, add.headers),
    query: union(base.query, add.query),
    jsonKeys: union(base.jsonKeys, add.jsonKeys),
    formFields: union(base.formFields, add.formFields),
  });
}

function toSpec(m: MatchDoc): MatchSpec {
  if (m.path !== undefined) return { kind: 'path', path: m.path };
  if (m.pathPrefix !== undefined) return { kind: 'pathPrefix', prefix: m.pathPrefix };
  if (m.pathTemplate !== undefined) return { kind: 'pathTemplate', ...m.pathTemplate };
  // The schema guarantees exactly one kind is set.
  const g = m.grpc!;
  return { kind: 'grpc', service: g.service, method: g.method };
}

/** The effective policy is itself a valid policy document (parsePolicy accepts it back). */
function matchToJson(m: MatchDoc): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (m.path !== undefined) out.path = m.path;
  if (m.pathPrefix !== undefined) out.pathPrefix = m.pathPrefix;
  if (m.pathTemplate !== undefined) out.pathTemplate = m.pathTemplate.template;
  if (m.grpc !== undefined) out.grpc = `${m.grpc.service}/${m.grpc.method ?? '*'}`;
  if (m.methods !== undefined) out.methods = m.methods;
  return out;
}

function ruleToJson(rule: CaptureRule): Record<string, unknown> {
  const headers = (h: HeaderSelector): string[] => (h === 'all' ? ['*'] : [...h]);
  return {
    spans: rule.spans,
    requestBody: rule.requestBody,
    responseBody: rule.responseBody,
    maxBodyBytes: rule.maxBodyBytes,
    headers: { request: headers(rule.requestHeaders), response: headers(rule.responseHeaders) },
    redact: {
      headers: [...rule.redact.headers],
      query: [...rule.redact.query],
      jsonKeys: [...rule.redact.jsonKeys],
      formFields: [...rule.redact.formFields],
    },
    sample: rule.sample,
    keepSlowerThanMs: rule.keepSlowerThanMs,
  };
}

function toPolicyError(error: z.ZodError): PolicyError {
  const issue = error.issues[0]!;
  let path = formatPath(issue.path);
  let detail = issue.message;
  if (issue.code === 'unrecognized_keys') {
    // Name the offending key itself, so a typo points at the typo.
    path = formatPath([...issue.path, issue.keys[0]!]);
    detail = 'unknown field' + (issue.keys.length > 1 ? ` (also unknown: ${issue.keys.slice(1).join(', ')})` : '');
  }
  const more = error.issues.length - 1;
  return new PolicyError(path, more > 0 ? `${detail} (and ${more} more problem${more > 1 ? 's' : ''})` : detail);
}

/** `['routes', 2, 'match', 'methods', 0]` → `routes[2].match.methods[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_$][\w$]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}
