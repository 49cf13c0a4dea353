// The viewer: one static page with plain JS (no build step, no framework) over the JSON API.
// Kept in a TS module so the compiled CLI carries it without copying assets.

export const VIEWER_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sidetrace traces</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  :root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --err:#d92d20; --ok:#2e90fa; --bg:#f8f9fb; }
  * { box-sizing: border-box; }
  body { margin:0; font:13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { background:#101828; color:#fff; padding:8px 16px; display:flex; gap:16px; align-items:baseline; }
  header h1 { font-size:16px; margin:0; }
  header span { color:#98a2b3; }
  main { display:flex; min-height:calc(100vh - 38px); }
  #search { width:260px; padding:12px 16px; border-right:1px solid var(--line); background:#fff; }
  #search label { display:block; margin:10px 0 3px; color:var(--muted); font-size:12px; }
  #search input, #search select { width:100%; padding:5px 6px; border:1px solid #d0d5dd; border-radius:4px; font:inherit; }
  #search .row { display:flex; gap:8px; }
  #search button { margin-top:14px; width:100%; padding:7px; border:0; border-radius:4px; background:#155eef; color:#fff; font-weight:600; cursor:pointer; }
  #content { flex:1; padding:12px 16px; overflow:auto; }
  .msg { color:var(--muted); padding:8px 0; }
  .error-msg { color:var(--err); }
  .trace-row { background:#fff; border:1px solid var(--line); border-radius:6px; padding:8px 10px; margin-bottom:8px; cursor:pointer; }
  .trace-row:hover { border-color:#84adff; }
  .trace-row .title { font-weight:600; display:flex; justify-content:space-between; }
  .trace-row .meta { color:var(--muted); margin-top:2px; }
  .badge { display:inline-block; border-radius:8px; padding:0 6px; font-size:11px; font-weight:600; background:#eef4ff; color:#3538cd; margin-right:4px; }
  .badge.err { background:#fee4e2; color:var(--err); }
  .trace-head { display:flex; gap:16px; align-items:baseline; margin-bottom:8px; }
  .trace-head h2 { font-size:15px; margin:0; }
  .trace-head a { color:#155eef; cursor:pointer; }
  .waterfall { background:#fff; border:1px solid var(--line); border-radius:6px; }
  .span-row { display:flex; align-items:center; border-bottom:1px solid var(--line); cursor:pointer; min-height:24px; }
  .span-row:hover, .span-row.selected { background:#eff4ff; }
  .span-row .label { width:38%; padding:3px 8px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
  .span-row .label .svc { font-weight:600; }
  .span-row .label .svc.err { color:var(--err); }
  .span-row .lane { flex:1; position:relative; height:24px; margin-right:8px; }
  .span-row .bar { position:absolute; top:6px; height:12px; border-radius:2px; background:var(--ok); min-width:2px; }
  .span-row .bar.err { background:var(--err); }
  .span-row .dur { width:64px; padding-right:8px; text-align:right; font-size:11px; color:var(--muted); white-space:nowrap; }
  #detail { margin-top:12px; background:#fff; border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
  #detail h3 { margin:0 0 6px; font-size:14px; }
  #detail h4 { margin:12px 0 4px; font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
  #detail table { border-collapse:collapse; width:100%; }
  #detail td { border-top:1px solid var(--line); padding:3px 6px; vertical-align:top; font-family:ui-monospace, Menlo, monospace; font-size:12px; word-break:break-all; }
  #detail td.k { width:32%; color:var(--muted); }
  pre.body { background:#f2f4f7; border-radius:4px; padding:8px; margin:0 0 6px; white-space:pre-wrap; word-break:break-all; max-height:320px; overflow:auto; font-size:12px; }
</style>
</head>
<body>
<header><h1>sidetrace</h1><span>embedded trace viewer</span><span id="stats"></span></header>
<main>
  <form id="search" autocomplete="off">
    <label for="service">Service</label>
    <select id="service" name="service"><option value="">(all services)</option></select>
    <label for="operation">Operation</label>
    <select id="operation" name="operation"><option value="">(all operations)</option></select>
    <label for="tags">Tags</label>
    <input id="tags" name="tags" placeholder="error=true http.response.status_code=500">
    <div class="row">
      <div><label for="minDuration">Min duration</label><input id="minDuration" name="minDuration" placeholder="500ms"></div>
      <div><label for="maxDuration">Max duration</label><input id="maxDuration" name="maxDuration" placeholder="2s"></div>
    </div>
    <label for="limit">Limit results</label>
    <input id="limit" name="limit" type="number" min="1" max="1000" value="20">
    <button id="find" type="submit">Find Traces</button>
  </form>
  <section id="content"><div class="msg">Choose a service and press Find Traces.</div></section>
</main>
<script>
"use strict";
var $ = function (id) { return document.getElementById(id); };
var lastResults = null;

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmtDur(us) {
  if (us >= 1e6) return (us / 1e6).toFixed(2) + 's';
  if (us >= 1000) return (us / 1000).toFixed(us >= 1e5 ? 0 : 1) + 'ms';
  return us + 'µs';
}
function api(path) {
  return fetch(path).then(function (r) {
    return r.json().then(function (body) {
      if (!r.ok) throw new Error(body.errors && body.errors[0] ? body.errors[0].msg : 'HTTP ' + r.status);
      return body;
    });
  });
}
function tagValue(span, key) {
  for (var i = 0; i < span.tags.length; i++) if (span.tags[i].key === key) return span.tags[i].value;
  return undefined;
}
function isError(span) {
  var e = tagValue(span, 'error');
  return e === true || e === 'true' || tagValue(span, 'otel.status_code') === 'ERROR';
}
// logfmt-style "k=v k2=\"a b\"" into an object, as Jaeger's search box takes it.
function parseTags(text) {
  var out = {}, re = /([^\s=]+)=("([^"]*)"|\S*)/g, m;
  while ((m = re.exec(text))) out[m[1]] = m[3] !== undefined ? m[3] : m[2];
  return out;
}
function loadServices() {
  return api('/api/services').then(function (body) {
    var sel = $('service'), keep = sel.value;
    sel.length = 1;
    body.data.forEach(function (s) { sel.add(new Option(s, s)); });
    sel.value = keep;
  });
}
function loadOperations() {
  var svc = $('service').value;
  return api('/api/operations' + (svc ? '?service=' + encodeURIComponent(svc) : '')).then(function (body) {
    var sel = $('operation');
    sel.length = 1;
    var seen = {};
    body.data.forEach(function (o) { if (!seen[o.name]) { seen[o.name] = 1; sel.add(new Option(o.name, o.name)); } });
  });
}
function loadStats() {
  api('/api/stats').then(function (s) { $('stats').textContent = s.traces + ' traces, ' + s.spans + ' spans'; }, function () {});
}
function search(ev) {
  if (ev) ev.preventDefault();
  var p = new URLSearchParams();
  ['service', 'operation', 'minDuration', 'maxDuration', 'limit'].forEach(function (k) { var v = $(k).value.trim(); if (v) p.set(k, v); });
  var tags = parseTags($('tags').value);
  if (Object.keys(tags).length) p.set('tags', JSON.stringify(tags));
  var content = $('content');
  content.replaceChildren(el('div', 'msg', 'Searching…'));
  api('/api/traces?' + p.toString()).then(function (body) {
    lastResults = body.data;
    if (location.hash) history.pushState(null, '', location.pathname);
    renderResults();
  }, function (err) {
    content.replaceChildren(el('div', 'msg error-msg', err.message));
  });
}
function rootOf(trace) {
  var ids = {};
  trace.spans.forEach(function (s) { ids[s.spanID] = 1; });
  var roots = trace.spans.filter(function (s) { return !s.references.length || !ids[s.references[0].spanID]; });
  return roots.sort(function (a, b) { return a.startTime - b.startTime; })[0] || trace.spans[0];
}
function traceBounds(trace) {
  var start = Infinity, end = 0;
  trace.spans.forEach(function (s) { start = Math.min(start, s.startTime); end = Math.max(end, s.startTime + s.duration); });
  return { start: start, end: end };
}
function renderResults() {
  var content = $('content');
  content.replaceChildren();
  if (!lastResults || !lastResults.length) { content.append(el('div', 'msg', 'No traces found.')); return; }
  content.append(el('div', 'msg', lastResults.length + ' traces'));
  lastResults.forEach(function (t) {
    var root = rootOf(t), b = traceBounds(t);
    var errors = t.spans.filter(isError).length;
    var row = el('div', 'trace-row');
    row.dataset.traceId = t.traceID;
    var title = el('div', 'title');
    title.append(el('span', '', t.processes[root.processID].serviceName + ': ' + root.operationName), el('span', '', fmtDur(b.end - b.start)));
    var meta = el('div', 'meta');
    meta.append(el('span', 'badge', t.spans.length + ' spans'));
    if (errors) meta.append(el('span', 'badge err', errors + ' errors'));
    var svcs = {};
    t.spans.forEach(function (s) { svcs[t.processes[s.processID].serviceName] = 1; });
    meta.append(document.createTextNode(Object.keys(svcs).join(', ') + ' · ' + new Date(b.start / 1000).toLocaleTimeString() + ' · ' + t.traceID));
    row.append(title, meta);
    row.addEventListener('click', function () { openTrace(t.traceID, true); });
    content.append(row);
  });
}
function openTrace(id, push) {
  if (push) history.pushState(null, '', '#/trace/' + id);
  var content = $('content');
  content.replaceChildren(el('div', 'msg', 'Loading trace…'));
  api('/api/traces/' + id).then(function (body) { renderTrace(body.data[0]); }, function (err) {
    content.replaceChildren(el('div', 'msg error-msg', err.message));
  });
}
function renderTrace(trace) {
  var content = $('content');
  content.replaceChildren();
  var b = traceBounds(trace), total = Math.max(1, b.end - b.start);
  var head = el('div', 'trace-head');
  var back = el('a', '', '← results');
  back.addEventListener('click', function () { history.pushState(null, '', location.pathname); renderResults(); });
  var root = rootOf(trace);
  head.append(back, el('h2', '', trace.processes[root.processID].serviceName + ': ' + root.operationName),
    el('span', 'msg', fmtDur(total) + ' · ' + trace.spans.length + ' spans · ' + trace.traceID));
  content.append(head);
  // Depth-first order so children sit under their parent, as in Jaeger's timeline.
  var children = {}, ids = {};
  trace.spans.forEach(function (s) { ids[s.spanID] = 1; });
  trace.spans.forEach(function (s) {
    var p = s.references.length && ids[s.references[0].spanID] ? s.references[0].spanID : '';
    (children[p] = children[p] || []).push(s);
  });
  var ordered = [];
  (function walk(parent, depth) {
    (children[parent] || []).sort(function (x, y) { return x.startTime - y.startTime; }).forEach(function (s) {
      ordered.push({ span: s, depth: depth });
      walk(s.spanID, depth + 1);
    });
  })('', 0);
  var wf = el('div', 'waterfall');
  var detail = el('div');
  detail.id = 'detail';
  detail.append(el('div', 'msg', 'Click a span to see its headers and bodies.'));
  ordered.forEach(function (item) {
    var s = item.span, err = isError(s);
    var row = el('div', 'span-row');
    row.dataset.spanId = s.spanID;
    var label = el('div', 'label');
    label.style.paddingLeft = (8 + item.depth * 14) + 'px';
    label.append(el('span', 'svc' + (err ? ' err' : ''), trace.processes[s.processID].serviceName), document.createTextNode(' ' + s.operationName));
    var lane = el('div', 'lane');
    var left = (s.startTime - b.start) / total * 100, width = s.duration / total * 100;
    var bar = el('div', 'bar' + (err ? ' err' : ''));
    bar.style.left = left + '%';
    bar.style.width = width + '%';
    lane.append(bar);
    row.append(label, lane, el('span', 'dur', fmtDur(s.duration)));
    row.addEventListener('click', function () {
      wf.querySelectorAll('.span-row.selected').forEach(function (r) { r.classList.remove('selected'); });
      row.classList.add('selected');
      renderDetail(detail, trace, s);
    });
    wf.append(row);
  });
  content.append(wf, detail);
  var firstErr = ordered.filter(function (i) { return isError(i.span); }).pop();
  if (firstErr) wf.querySelector('[data-span-id="' + firstErr.span.spanID + '"]').click();
}
function prettyBody(v) {
  var text = String(v);
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
}
function headerValue(v) {
  if (typeof v === 'string' && v.charAt(0) === '[') { try { return JSON.parse(v).join('\n'); } catch (e) { /* plain text */ } }
  return String(v);
}
function table(rows) {
  var t = el('table');
  rows.forEach(function (r) {
    var tr = el('tr');
    tr.append(el('td', 'k', r[0]), el('td', 'v', r[1]));
    t.append(tr);
  });
  return t;
}
function renderDetail(detail, trace, s) {
  detail.replaceChildren();
  detail.append(el('h3', '', trace.processes[s.processID].serviceName + ': ' + s.operationName + ' (' + fmtDur(s.duration) + ')'));
  var groups = { 'Request headers': [], 'Response headers': [], Attributes: [] }, bodies = [];
  s.tags.forEach(function (t) {
    if (t.key.indexOf('http.request.header.') === 0) groups['Request headers'].push([t.key.slice(20), headerValue(t.value)]);
    else if (t.key.indexOf('http.response.header.') === 0) groups['Response headers'].push([t.key.slice(21), headerValue(t.value)]);
    else if (/body/.test(t.key) && !/size|truncated|length/.test(t.key)) bodies.push(t);
    else groups.Attributes.push([t.key, String(t.value)]);
  });
  if (bodies.length) {
    detail.append(el('h4', '', 'Bodies'));
    bodies.forEach(function (t) {
      detail.append(el('div', 'msg', t.key));
      detail.append(el('pre', 'body', prettyBody(t.value)));
    });
  }
  Object.keys(groups).forEach(function (g) {
    if (!groups[g].length) return;
    detail.append(el('h4', '', g), table(groups[g]));
  });
  if (s.logs.length) {
    detail.append(el('h4', '', 'Events'));
    detail.append(table(s.logs.map(function (l) {
      return [new Date(l.timestamp / 1000).toISOString(), l.fields.map(function (f) { return f.key + '=' + f.value; }).join(' ')];
    })));
  }
  var proc = trace.processes[s.processID];
  detail.append(el('h4', '', 'Process'), table(proc.tags.map(function (t) { return [t.key, String(t.value)]; })));
}
function fromHash() {
  var m = /^#\/trace\/([0-9a-f]+)$/.exec(location.hash);
  if (m) openTrace(m[1], false);
  else if (lastResults) renderResults();
}
$('search').addEventListener('submit', search);
$('service').addEventListener('change', loadOperations);
window.addEventListener('popstate', fromHash);
loadServices().then(loadOperations).then(loadStats).then(fromHash);
</script>
</body>
</html>
`;
