// Process-wide counters, rendered as Prometheus text on the admin listener.
// Hand-written rather than prom-client: a handful of monotonic counters on the hot path
// must be a property increment, with no label hashing or registry lookups per request.

export interface CounterDef {
  name: string;
  help: string;
}

export class Counter {
  value = 0;
  constructor(readonly name: string, readonly help: string, readonly labels: Readonly<Record<string, string>> = {}) {}
  inc(n = 1): void {
    this.value += n;
  }
}

export class Gauge {
  constructor(readonly name: string, readonly help: string, readonly read: () => number) {}
}

/** A registry of counters; one per process (see `metrics` below), tests may make their own. */
export class Metrics {
  private readonly counters: Counter[] = [];
  private readonly gauges: Gauge[] = [];

  counter(name: string, help: string, labels: Record<string, string> = {}): Counter {
    const key = labelKey(labels);
    const existing = this.counters.find((c) => c.name === name && labelKey(c.labels) === key);
    if (existing) return existing;
    const c = new Counter(name, help, labels);
    this.counters.push(c);
    return c;
  }

  gauge(name: string, help: string, read: () => number): Gauge {
    const g = new Gauge(name, help, read);
    this.gauges.push(g);
    return g;
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): string {
    const out: string[] = [];
    const seen = new Set<string>();
    for (const c of this.counters) {
      if (!seen.has(c.name)) {
        seen.add(c.name);
        out.push(`# HELP ${c.name} ${c.help}`, `# TYPE ${c.name} counter`);
        for (const s of this.counters) {
          if (s.name === c.name) out.push(`${s.name}${renderLabels(s.labels)} ${s.value}`);
        }
      }
    }
    for (const g of this.gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`, `${g.name} ${g.read()}`);
    }
    return out.join('\n') + '\n';
  }

  /** Value of a counter (sum over its label sets when labels are omitted); for tests and reports. */
  get(name: string, labels?: Record<string, string>): number {
    let sum = 0;
    const key = labels ? labelKey(labels) : undefined;
    for (const c of this.counters) {
      if (c.name === name && (key === undefined || labelKey(c.labels) === key)) sum += c.value;
    }
    return sum;
  }
}

function labelKey(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function renderLabels(labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return '';
  return '{' + keys.map((k) => `${k}="${labels[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',') + '}';
}
