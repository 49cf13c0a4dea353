// What the agent benches share: synthetic nginx-like keep-alive traffic as the agent's capture
// events, and a revision's span pipeline (the replayer agent.ts builds) to turn them into spans.
import path from 'node:path';

/** nginx's answer: 200 with a 1 KiB body of `contentType`. */
export function nginxResponse(contentType = 'application/octet-stream', date = 'Sat, 21 Nov 2026 17:00:00 GMT') {
  return Buffer.from(
    `HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: ${date}\r\nContent-Type: ${contentType}\r\n` +
      `Content-Length: 1024\r\nConnection: keep-alive\r\n\r\n${'x'.repeat(1024)}`,
    'latin1',
  );
}

/**
 * Capture events of both sides (client pid 100 "wrk", server pid 200 "nginx") of `conns` keep-alive
 * connections, `requestsPerConn` exchanges each, interleaved by request as a busy node's ring has
 * them; timestamps 1 µs apart from `startNs`. Each response is one event, head and body, as the
 * kernel captures nginx's writev. `response` is a Buffer, or a function of the request's number
 * in the whole run (0, 1, ...) giving its response.
 */
export function keepAliveTraffic({ conns, requestsPerConn, request, response, address = '127.0.0.1', startNs = 1e12 }) {
  const events = [];
  let ts = startNs;
  const sides = [];
  for (let c = 0; c < conns; c++) {
    for (const role of ['client', 'server']) {
      const connId = 1 + 2 * c + (role === 'server' ? 1 : 0);
      const pid = role === 'client' ? 100 : 200;
      const local = { address, port: role === 'client' ? 40000 + c : 8080 };
      const remote = { address, port: role === 'client' ? 8080 : 40000 + c };
      events.push({ kind: 'open', connId, pid, tid: pid, fd: 5, tsNs: (ts += 1000), role, local, remote, comm: role === 'client' ? 'wrk' : 'nginx' });
      sides.push({ connId, pid, pos: { egress: 0, ingress: 0 } });
    }
  }
  const data = (s, direction, bytes) => {
    events.push({ kind: 'data', connId: s.connId, pid: s.pid, tid: s.pid, fd: 5, tsNs: (ts += 1000), direction, source: 'syscall', pos: s.pos[direction], size: bytes.length, data: bytes });
    s.pos[direction] += bytes.length;
  };
  for (let i = 0; i < requestsPerConn; i++) {
    for (let c = 0; c < conns; c++) {
      const client = sides[2 * c];
      const server = sides[2 * c + 1];
      const res = typeof response === 'function' ? response(i * conns + c) : response;
      data(client, 'egress', request);
      data(server, 'ingress', request);
      data(server, 'egress', res);
      data(client, 'ingress', res);
    }
  }
  return events;
}

/**
 * `dir`'s (a transpiled revision's) connection table and span replayer, wired as agent.ts wires
 * them: default policy, one process info object per pid (the agent's ProcessInfoCache gives one,
 * and resources are cached by it), named by the event's comm. `clockMs`: a fixed kernel-to-epoch
 * offset, or undefined for the machine's own. `onRecord` wraps the replay, e.g. to count records.
 */
export async function agentPipeline(dir, { sink, clockMs, onRecord = (replay, conn, rec) => replay(conn, rec) }) {
  const imp = (p) => import(path.resolve(dir, 'src', p));
  const { ConnTable } = await imp('bpf-fallback/conn-table.js');
  const { createAgentMetrics } = await imp('bpf-fallback/agent-metrics.js');
  const { Metrics } = await imp('telemetry/metrics.js');
  const { SpanReplayer } = await imp('bpf-fallback/spans.js');
  const { fixedClock, measureKernelClock } = await imp('bpf-fallback/clock.js');
  const { compilePolicy } = await imp('policy/parse.js');
  const { createProxyMetrics } = await imp('proxy/proxy-metrics.js');
  const policy = compilePolicy({});
  const infos = new Map();
  const replayer = new SpanReplayer({
    policy: () => policy,
    sink,
    metrics: createProxyMetrics(new Metrics()),
    clock: clockMs === undefined ? measureKernelClock() : fixedClock(clockMs),
    process: (pid, comm) => {
      let info = infos.get(pid);
      if (info === undefined) infos.set(pid, (info = { executableName: comm }));
      return info;
    },
  });
  const replay = (conn, rec) => replayer.replay(conn, rec);
  /** A fresh table (a run's own connection state) feeding the one replayer. */
  const newTable = () => new ConnTable({ metrics: createAgentMetrics(new Metrics()), onRecord: (conn, rec) => onRecord(replay, conn, rec) });
  return { newTable };
}
