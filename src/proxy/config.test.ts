import { describe, expect, it } from 'vitest';
import { ConfigError, parseEndpoint, parseProxyArgs, type ProxyConfig } from './config.js';

describe('parseProxyArgs', () => {
  it('parses repeatable listeners and every flag', () => {
    const c = parseProxyArgs([
      '--inbound', '127.0.0.1:8080=127.0.0.1:5000',
      '--inbound', '[::1]:8081=localhost:5001',
      '--outbound', ':9000=10.0.0.1:80',
      '--service-name', 'books', '--otlp-endpoint', 'http://jaeger:4317', '--policy', '/etc/p.yaml',
      '--admin', '0.0.0.0:15001', '--console', '--server-first-ports', '5432,6379', '--detect-timeout-ms', '250',
    ]) as ProxyConfig;
    expect(c.listeners).toEqual([
      { direction: 'inbound', listen: { address: '127.0.0.1', port: 8080 }, upstream: { address: '127.0.0.1', port: 5000 } },
      { direction: 'inbound', listen: { address: '::1', port: 8081 }, upstream: { address: 'localhost', port: 5001 } },
      { direction: 'outbound', listen: { address: '127.0.0.1', port: 9000 }, upstream: { address: '10.0.0.1', port: 80 } },
    ]);
    expect(c).toMatchObject({ serviceName: 'books', otlpEndpoint: 'http://jaeger:4317', policyFile: '/etc/p.yaml', console: true, detectTimeoutMs: 250 });
    expect(c.admin).toEqual({ address: '0.0.0.0', port: 15001 });
    expect([...c.serverFirstPorts]).toEqual([5432, 6379]);
  });

  it('has production defaults: admin on loopback, server-first database ports', () => {
    const c = parseProxyArgs(['--inbound', '8080=5000']) as ProxyConfig;
    expect(c.admin).toEqual({ address: '127.0.0.1', port: 15000 });
    expect([...c.serverFirstPorts]).toEqual([3306, 5432, 6379, 9042]);
    expect(c.console).toBe(false);
    expect(c.serviceName).toBeUndefined();
  });

  const bad: Array<[string[], string]> = [
    [[], '--inbound/--outbound'],
    [['--inbound', '8080'], '--inbound'],
    [['--inbound', '8080=host'], '--inbound UPSTREAM'],
    [['--inbound', 'x:99999=1'], '--inbound LISTEN'],
    [['--outbound', '1=h:p'], '--outbound UPSTREAM'],
    [['--inbound', '1=2', '--admin', 'nope'], '--admin'],
    [['--inbound', '1=2', '--server-first-ports', '5432,x'], '--server-first-ports'],
    [['--inbound', '1=2', '--detect-timeout-ms', '0'], '--detect-timeout-ms'],
    [['--inbound', '1=2', '--service-name', ' '], '--service-name'],
    [['--inbound', '1=2', '--bogus'], 'flags'],
  ];
  it.each(bad)('rejects %j naming %s', (argv, flag) => {
    let err: unknown;
    try {
      parseProxyArgs(argv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).flag).toBe(flag);
    expect((err as Error).message.startsWith(flag)).toBe(true);
  });

  it('parses endpoint forms', () => {
    expect(parseEndpoint('f', '[::1]:80')).toEqual({ address: '::1', port: 80 });
    expect(parseEndpoint('f', 'svc.ns.svc:8080')).toEqual({ address: 'svc.ns.svc', port: 8080 });
    expect(parseEndpoint('f', '15000')).toEqual({ address: '127.0.0.1', port: 15000 });
  });
});
