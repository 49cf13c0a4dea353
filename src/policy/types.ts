// Capture policy types: one schema shared by the proxy, the injector and the node agent.

/** The rule for one route after merging it over the policy's `default`. */
export interface CaptureRule {
  /** false: no span at all for matching requests (traffic and context still flow). */
  spans: boolean;
  requestBody: boolean;
  responseBody: boolean;
  /** Body bytes kept per direction; default 65536, at most 16 MiB. */
  maxBodyBytes: number;
  /** Header names to record (lowercase), or 'all'. Secrets are redacted either way. */
  requestHeaders: HeaderSelector;
  responseHeaders: HeaderSelector;
  redact: Redaction;
  /** Head sampling probability 0..1 for requests that are neither errors nor slow. */
  sample: number;
  /** Requests at least this slow are always kept, whatever `sample` says. */
  keepSlowerThanMs: number;
}

export type HeaderSelector = 'all' | ReadonlySet<string>;

/** All names lowercase. Built-in secrets (Authorization, Cookie, ...) are always included. */
export interface Redaction {
  headers: ReadonlySet<string>;
  query: ReadonlySet<string>;
  jsonKeys: ReadonlySet<string>;
  formFields: ReadonlySet<string>;
}

export interface RouteMatch {
  rule: CaptureRule;
  /** The matched path template (e.g. `/books/:id`), recorded as `http.route`. */
  route?: string;
}

export interface MatchInput {
  method: string;
  /** Path without the query string. */
  path: string;
  /** `package.Service/Method` for gRPC requests. */
  grpcMethod?: string;
}

export interface CompiledPolicy {
  match(input: MatchInput): RouteMatch;
  /** The effective policy as plain JSON (defaults filled in), served on /config. */
  readonly effective: unknown;
}

/** Raised for an invalid policy; `path` names the field, e.g. `routes[2].match.methods[0]`. */
export class PolicyError extends Error {
  readonly code = 'ST_POLICY_INVALID';
  constructor(readonly path: string, detail: string) {
    super(`invalid capture policy at ${path || '(root)'}: ${detail}`);
    this.name = 'PolicyError';
  }
}
