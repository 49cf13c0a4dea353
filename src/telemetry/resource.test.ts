import { describe, expect, it } from 'vitest';
import { DEFAULT_SERVICE_NAME, K8S_RESOURCE_ENV, detectResource } from './resource.js';
import { VERSION } from './version.js';

describe('detectResource: service.name precedence (flag > OTEL_SERVICE_NAME > OTEL_RESOURCE_ATTRIBUTES > default)', () => {
  const table: [string, Record<string, string>, string | undefined, string][] = [
    ['nothing set', {}, undefined, DEFAULT_SERVICE_NAME],
    ['resource attributes', { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-ra' }, undefined, 'from-ra'],
    ['OTEL_SERVICE_NAME beats resource attributes', { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-ra', OTEL_SERVICE_NAME: 'from-env' }, undefined, 'from-env'],
    ['flag beats both', { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-ra', OTEL_SERVICE_NAME: 'from-env' }, 'from-flag', 'from-flag'],
    ['blank OTEL_SERVICE_NAME is unset', { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-ra', OTEL_SERVICE_NAME: '  ' }, undefined, 'from-ra'],
    ['empty flag is unset', { OTEL_SERVICE_NAME: 'from-env' }, '', 'from-env'],
  ];
  for (const [what, env, flag, expected] of table) {
    it(what, () => {
      const r = detectResource(env, { serviceName: flag });
      expect(r.serviceName).toBe(expected);
      expect(r.attributes['service.name']).toBe(expected);
    });
  }
});

describe('detectResource: OTEL_RESOURCE_ATTRIBUTES', () => {
  it('parses and percent-decodes keys and values, trims spaces, skips empty entries', () => {
    const r = detectResource({ OTEL_RESOURCE_ATTRIBUTES: ' team = pay%2Cments ,, k%3Dey=v%20w,unicode=caf%C3%A9,plus=a+b' });
    expect(r.warnings).toEqual([]);
    expect(r.attributes).toMatchObject({ team: 'pay,ments', 'k=ey': 'v w', unicode: 'café', plus: 'a+b' });
  });

  for (const [what, raw, needle] of [
    ['an entry without "="', 'a=1,broken,c=3', 'entry 1 "broken" has no "="'],
    ['an empty key', 'a=1,=2', 'empty key'],
    ['bad percent-encoding', 'a=1,b=%E0%A4%A', 'bad percent-encoding'],
  ] as const) {
    it(`ignores the whole variable with a warning on ${what}`, () => {
      const r = detectResource({ OTEL_RESOURCE_ATTRIBUTES: raw, OTEL_SERVICE_NAME: 'svc' });
      expect(r.attributes.a).toBeUndefined();
      expect(r.attributes['service.name']).toBe('svc');
      expect(r.warnings).toHaveLength(1);
      expect(r.warnings[0]).toContain('invalid OTEL_RESOURCE_ATTRIBUTES');
      expect(r.warnings[0]).toContain(needle);
      expect(r.warnings[0]).toContain('ignored');
    });
  }

  it('telemetry.sdk.* describe sidetrace and cannot be overridden', () => {
    const r = detectResource({ OTEL_RESOURCE_ATTRIBUTES: 'telemetry.sdk.name=fake,telemetry.sdk.version=9' });
    expect(r.attributes['telemetry.sdk.name']).toBe('sidetrace');
    expect(r.attributes['telemetry.sdk.language']).toBe('nodejs');
    expect(r.attributes['telemetry.sdk.version']).toBe(VERSION);
  });
});

describe('detectResource: k8s attributes from the injector env', () => {
  it('reads every SIDETRACE_* variable in K8S_RESOURCE_ENV', () => {
    const env: Record<string, string> = {};
    for (const v of K8S_RESOURCE_ENV) env[v.env] = `value-of-${v.env}`;
    const r = detectResource(env);
    for (const v of K8S_RESOURCE_ENV) expect(r.attributes[v.attribute]).toBe(`value-of-${v.env}`);
    expect(Object.keys(r.attributes).filter((k) => k.startsWith('k8s.')).sort()).toEqual(
      ['k8s.container.name', 'k8s.deployment.name', 'k8s.namespace.name', 'k8s.node.name', 'k8s.pod.name', 'k8s.pod.uid'],
    );
  });

  it('falls back to the common POD_NAME / POD_NAMESPACE / NODE_NAME names; SIDETRACE_* wins', () => {
    const r = detectResource({ POD_NAME: 'p1', POD_NAMESPACE: 'ns1', NODE_NAME: 'n1', SIDETRACE_POD_NAME: 'p2' });
    expect(r.attributes['k8s.pod.name']).toBe('p2');
    expect(r.attributes['k8s.namespace.name']).toBe('ns1');
    expect(r.attributes['k8s.node.name']).toBe('n1');
  });

  it('sets only what the env gives, and OTEL_RESOURCE_ATTRIBUTES overrides detected values', () => {
    const r = detectResource({ SIDETRACE_POD_NAMESPACE: 'shop', OTEL_RESOURCE_ATTRIBUTES: 'k8s.namespace.name=override' });
    expect(r.attributes['k8s.pod.name']).toBeUndefined();
    expect('k8s.pod.uid' in r.attributes).toBe(false);
    expect(r.attributes['k8s.namespace.name']).toBe('override');
  });

  it('gives the injector downward-API field paths for the pod fields', () => {
    const byEnv = Object.fromEntries(K8S_RESOURCE_ENV.map((v) => [v.env, v.fieldPath]));
    expect(byEnv).toMatchObject({
      SIDETRACE_POD_NAME: 'metadata.name',
      SIDETRACE_POD_NAMESPACE: 'metadata.namespace',
      SIDETRACE_POD_UID: 'metadata.uid',
      SIDETRACE_NODE_NAME: 'spec.nodeName',
    });
  });
});
