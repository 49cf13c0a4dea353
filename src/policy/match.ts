// Route matching for the capture policy. Everything is compiled at parse time; `match()` runs on
// every request, so it walks the path by index (no split, no regex) and returns pre-built results.

import type { MatchInput, RouteMatch } from './types.js';

/** One segment of a path template: a literal, `:name` (one non-empty segment) or a final `*`. */
export type TemplateSegment =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'rest' };

export type MatchSpec =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'pathPrefix'; readonly prefix: string }
  | { readonly kind: 'pathTemplate'; readonly template: string; readonly segments: readonly TemplateSegment[] }
  /** `method` undefined: every method of `service`. */
  | { readonly kind: 'grpc'; readonly service: string; readonly method: string | undefined };

export interface CompiledRoute {
  readonly spec: MatchSpec;
  /** Uppercase HTTP methods, or undefined for any. */
  readonly methods: ReadonlySet<string> | undefined;
  readonly result: RouteMatch;
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses `/books/:id/*`; returns an error message instead of segments when the template is malformed. */
export function parsePathTemplate(template: string): TemplateSegment[] | string {
  if (!template.startsWith('/')) return 'must start with "/"';
  if (/[?#]/.test(template)) return 'must not contain "?" or "#" (query and fragment are not matched)';
  const parts = template.slice(1).split('/');
  const segments: TemplateSegment[] = [];
  const names = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const last = i === parts.length - 1;
    if (part === '*') {
      if (!last) return `"*" is only allowed as the last segment (segment ${i + 1})`;
      segments.push({ kind: 'rest' });
    } else if (part.startsWith(':')) {
      const name = part.slice(1);
      if (!PARAM_NAME.test(name)) return `parameter "${part}" needs a name of letters, digits and "_" (segment ${i + 1})`;
      if (names.has(name)) return `parameter ":${name}" appears twice`;
      names.add(name);
      segments.push({ kind: 'param', name });
    } else {
      if (part.includes('*')) return `"*" must be a whole segment (segment ${i + 1})`;
      if (part === '' && !last) return `empty segment ${i + 1} ("//")`;
      segments.push({ kind: 'literal', text: part });
    }
  }
  return segments;
}

/** First match wins; `fallback` (the default rule) when no route matches. */
export function createMatcher(routes: readonly CompiledRoute[], fallback: RouteMatch): (input: MatchInput) => RouteMatch {
  return (input) => {
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.methods !== undefined && !r.methods.has(input.method)) continue;
      if (specMatches(r.spec, input)) return r.result;
    }
    return fallback;
  };
}

function specMatches(spec: MatchSpec, input: MatchInput): boolean {
  switch (spec.kind) {
    case 'path':
      return input.path === spec.path;
    case 'pathPrefix':
      return input.path.startsWith(spec.prefix);
    case 'pathTemplate':
      return templateMatches(spec.segments, input.path);
    case 'grpc': {
      const g = input.grpcMethod;
      if (g === undefined) return false;
      const s = spec.service.length;
      if (!g.startsWith(spec.service) || g.charCodeAt(s) !== 0x2f /* / */) return false;
      return spec.method === undefined ? g.length > s + 1 : g.length === s + 1 + spec.method.length && g.endsWith(spec.method);
    }
  }
}

function templateMatches(segments: readonly TemplateSegment[], path: string): boolean {
  if (path.charCodeAt(0) !== 0x2f /* / */) return false;
  const n = path.length;
  let pos = 1;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg.kind === 'rest') return true;
    let end = path.indexOf('/', pos);
    if (end < 0) end = n;
    if (seg.kind === 'literal') {
      if (end - pos !== seg.text.length || !path.startsWith(seg.text, pos)) return false;
    } else if (end === pos) {
      return false;
    }
    if (i === segments.length - 1) return end === n;
    if (end === n) return false;
    pos = end + 1;
  }
  return false;
}
