// The capture-policy document schema (zod): validates a parsed YAML/JSON document and normalises
// it (methods uppercase, header names lowercase, templates parsed). Unknown keys are errors.
//
// Policy document (YAML or JSON; an empty document means all defaults):
//
//   default:                  # every field optional; the values shown are the built-in defaults, except redact's (examples)
//     spans: true             # false: no span for matching requests (traffic and context still flow)
//     requestBody: true
//     responseBody: true
//     maxBodyBytes: 65536     # body bytes kept per direction, integer 0..16777216 (16 MiB)
//     headers:                # headers to record, names case-insensitive; ["*"] = all
//       request: ["*"]
//       response: ["*"]
//     redact:                 # added to the built-in secrets, case-insensitive; values become REDACTED
//       headers: [x-api-key]  # built-in: authorization, proxy-authorization, cookie, set-cookie,
//                             #   and gRPC *-bin metadata named like auth/token/secret/key/password/...
//       query: [token]        # built-in: AWSAccessKeyId, Signature, sig, X-Goog-Signature, password,
//                             #   passwd, token, access_token, refresh_token, api_key, apikey, secret, client_secret
//       jsonKeys: [password]  # built-in (JSON keys and form fields): password, passwd, secret, token,
//       formFields: [password] #  access_token, refresh_token, client_secret, api_key, apikey
//     sample: 1.0             # head-sampling probability 0..1
//     keepSlowerThanMs: 500   # always keep requests at least this slow (errors are always kept)
//   routes:                   # first match wins; fields not set inherit from default
//     - match: { path: /healthz }                    # exact path (query string excluded)
//       spans: false
//     - match: { pathPrefix: /static/ }              # plain string prefix
//       responseBody: false
//     - match: { pathTemplate: "/books/:id", methods: [GET, PUT] }  # sets http.route
//       sample: 0.1
//     - match: { grpc: "shop.Cart/AddItem" }         # or "shop.Cart/*" for a whole service
//       maxBodyBytes: 1048576
//
// A match has exactly one of path | pathPrefix | pathTemplate | grpc, plus optional `methods`.
// In a template `:name` matches one non-empty segment and a final `*` the rest of the path.
// A route's `redact` lists add to the default's; its `headers.request`/`response` replace them.

import * as z from 'zod';
import { parsePathTemplate, type TemplateSegment } from './match.js';
import type { HeaderSelector } from './types.js';

const MAX_BODY_BYTES = 16 * 1024 * 1024;

// RFC 9110 token: header names and methods.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const headerName = z.string().regex(TOKEN, 'not a valid header name (RFC 9110 token)').transform((s) => s.toLowerCase());

const headerSelector = z.array(headerName).transform((names, ctx): HeaderSelector => {
  const star = names.indexOf('*');
  if (star < 0) return new Set(names);
  if (names.length === 1) return 'all';
  ctx.issues.push({ code: 'custom', message: '"*" (all headers) cannot be combined with header names', input: names, path: [star] });
  return z.NEVER;
});

const secretName = z.string().min(1, 'must not be empty').transform((s) => s.toLowerCase());

const ruleFields = {
  spans: z.boolean().optional(),
  requestBody: z.boolean().optional(),
  responseBody: z.boolean().optional(),
  maxBodyBytes: z.number().int().min(0).max(MAX_BODY_BYTES).optional(),
  headers: z.strictObject({ request: headerSelector.optional(), response: headerSelector.optional() }).optional(),
  redact: z
    .strictObject({
      headers: z.array(headerName).optional(),
      query: z.array(secretName).optional(),
      jsonKeys: z.array(secretName).optional(),
      formFields: z.array(secretName).optional(),
    })
    .optional(),
  sample: z.number().min(0).max(1).optional(),
  keepSlowerThanMs: z.number().min(0).optional(),
};

const path = z.string().startsWith('/', 'must start with "/"');

const pathTemplate = z.string().transform((template, ctx): { template: string; segments: TemplateSegment[] } => {
  const parsed = parsePathTemplate(template);
  if (typeof parsed === 'string') {
    ctx.issues.push({ code: 'custom', message: parsed, input: template });
    return z.NEVER;
  }
  return { template, segments: parsed };
});

// `package.Service/Method`, `package.Service/*`; a leading "/" (the HTTP/2 :path form) is accepted.
const GRPC_PATTERN = /^\/?([A-Za-z_][A-Za-z0-9_.]*)\/([A-Za-z_][A-Za-z0-9_]*|\*)$/;
const grpc = z.string().transform((value, ctx): { service: string; method: string | undefined } => {
  const m = GRPC_PATTERN.exec(value);
  if (m === null) {
    ctx.issues.push({ code: 'custom', message: 'must be "package.Service/Method" or "package.Service/*"', input: value });
    return z.NEVER;
  }
  return { service: m[1]!, method: m[2] === '*' ? undefined : m[2]! };
});

const method = z.string().regex(TOKEN, 'not a valid HTTP method (RFC 9110 token)').transform((s) => s.toUpperCase());

const KINDS = ['path', 'pathPrefix', 'pathTemplate', 'grpc'] as const;

const match = z
  .strictObject({
    path: path.optional(),
    pathPrefix: path.optional(),
    pathTemplate: pathTemplate.optional(),
    grpc: grpc.optional(),
    methods: z.array(method).min(1, 'must list at least one method (omit it for any method)').optional(),
  })
  .superRefine((m, ctx) => {
    const set = KINDS.filter((k) => m[k] !== undefined);
    if (set.length !== 1) {
      const found = set.length === 0 ? 'none' : set.join(', ');
      ctx.addIssue({ code: 'custom', message: `needs exactly one of path, pathPrefix, pathTemplate, grpc (found: ${found})` });
    }
  });

const ruleSchema = z.strictObject(ruleFields);
const routeSchema = z.strictObject({ match, ...ruleFields });
export const policySchema = z.strictObject({
  default: ruleSchema.optional(),
  routes: z.array(routeSchema).optional(),
});

export type RuleDoc = z.output<typeof ruleSchema>;
type RouteDoc = z.output<typeof routeSchema>;
export type MatchDoc = RouteDoc['match'];
