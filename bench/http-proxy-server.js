// The "plain Node proxy" a user might pick instead of sidetrace: node-http-proxy with a
// keep-alive agent (without one, every request opens an upstream connection and the comparison
// would be unfair to it). Usage: node bench/http-proxy-server.js LISTEN_PORT UPSTREAM_PORT
import http from 'node:http';
import httpProxy from 'http-proxy';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502);
  res.end();
});
http
  .createServer((req, res) => proxy.web(req, res))
  .listen(listenPort, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
