// Span attributes collected as key/value pairs and made into one object at span end. A span has
// 20–40 attributes, many under computed keys (headers, the agent's identity); added one by one,
// V8 turns such an object into a dictionary once it passes ~16 properties (measured 3x slower to
// build, and slower to walk when serialized). Instead every key sequence seen again gets a factory
// compiled once, an object literal, whose objects keep all their properties in-object.

import type { AttrValue, Attributes } from '../../telemetry/span.js';

type Make = (values: readonly AttrValue[]) => Attributes;

interface ShapeNode {
  /** The last step taken from here: spans of one kind take the same one, by the same key object. */
  lastKey: string | undefined;
  lastNext: ShapeNode | undefined;
  next: Map<string, ShapeNode> | undefined;
  make: Make | undefined;
  /** Spans that ended here before a factory was compiled. */
  seen: number;
}

/**
 * Key sequences come partly from the wire (header names), so the shape tree is bounded: past
 * MAX_NODES it starts afresh. A factory is compiled only for a sequence seen twice, so a stream
 * of one-off header sets costs a plain object each, not a compile each; and at most MAX_COMPILED
 * per tree (a few KiB of code each), later sequences taking the plain path until it starts afresh.
 */
const MAX_NODES = 16384;
const MAX_COMPILED = 512;
/** Longer sequences are rare; their objects are built property by property. */
const MAX_COMPILED_KEYS = 128;

let root: ShapeNode = newNode();
let nodes = 1;
let compiled = 0;

function newNode(): ShapeNode {
  return { lastKey: undefined, lastNext: undefined, next: undefined, make: undefined, seen: 0 };
}

/**
 * The key sequence a builder last finished with a factory, and that factory: spans of one source
 * (the agent's connection) mostly repeat their sequence, and comparing two arrays key by key is
 * cheaper than walking the shape tree node by node (each step a load that waits for the last).
 */
export class ShapeMemo {
  readonly keys: string[] = [];
  /** -1 until a sequence is kept: no span's can match. */
  n = -1;
  make: Make | undefined = undefined;
}

/**
 * A finished object's values and factory, kept to make the next object of the same key sequence
 * from when only the pairs from `at` on (`keys`) may differ (finishFromTemplate). Empty (values
 * undefined) until kept.
 */
export class AttributeTemplate {
  /** Undefined where the varying pairs go. */
  values: Array<AttrValue | undefined> | undefined = undefined;
  make: Make | undefined = undefined;
  at = 0;
  readonly keys: string[] = [];
  n = 0;

  clear(): void {
    this.values = undefined;
    this.make = undefined;
  }
}

/** Pairs of a builder kept to be added again (saveRun, addRun); its arrays are reused. */
export class AttributeRun {
  readonly keys: string[] = [];
  readonly values: AttrValue[] = [];
  n = 0;

  /** Empties the run and lets go of its values (its arrays keep their capacity). */
  clear(): void {
    const values = this.values as unknown[];
    for (let i = 0; i < this.n; i++) values[i] = undefined;
    this.n = 0;
  }
}

/**
 * One span's attributes in the order they are added. A key added again ends as assigning an
 * object property would: the later value, in the earlier place (a literal's duplicate keys and
 * the property-by-property path both do that). `finish` returns the object and empties the
 * builder for the next span.
 */
export class AttributeBuilder {
  private readonly keys: string[] = [];
  private readonly values: AttrValue[] = [];
  private n = 0;
  /** The factory the last finish made its object with (undefined: property by property). */
  private made: Make | undefined = undefined;

  get size(): number {
    return this.n;
  }

  add(key: string, value: AttrValue): void {
    this.keys[this.n] = key;
    this.values[this.n] = value;
    this.n++;
  }

  /** Position of `key` at or after `from`, or -1. */
  indexOf(key: string, from: number): number {
    const keys = this.keys;
    for (let i = from; i < this.n; i++) if (keys[i] === key) return i;
    return -1;
  }

  valueAt(index: number): AttrValue {
    return this.values[index];
  }

  /** Keeps the pairs added from index `from` on in `run`, to add them again with addRun. */
  saveRun(from: number, run: AttributeRun): void {
    const n = this.n - from;
    for (let i = 0; i < n; i++) {
      run.keys[i] = this.keys[from + i];
      run.values[i] = this.values[from + i];
    }
    run.n = n;
  }

  /** Adds the pairs saveRun kept: the same keys and the same value objects, in the same order. */
  addRun(run: AttributeRun): void {
    const { keys, values } = run;
    let at = this.n;
    for (let i = 0; i < run.n; i++, at++) {
      this.keys[at] = keys[i];
      this.values[at] = values[i];
    }
    this.n = at;
  }

  /**
   * Drops what a failed build left behind. Values past the end stay referenced until overwritten,
   * cheaper than clearing each time; bodies among them are let go of (forgetValues).
   */
  reset(): void {
    this.n = 0;
  }

  /**
   * Whether the builder holds exactly the pairs `template` may vary (the same keys, in order): then
   * finishFromTemplate makes the object of the template's sequence with them.
   */
  fitsTemplate(template: AttributeTemplate): boolean {
    const n = this.n;
    if (template.values === undefined || template.n !== n) return false;
    const keys = this.keys;
    const expected = template.keys;
    for (let i = 0; i < n; i++) if (keys[i] !== expected[i]) return false;
    return true;
  }

  /** The template's object with this builder's pairs in place of its varying ones (fitsTemplate). */
  finishFromTemplate(template: AttributeTemplate): Attributes {
    // The template's own array, its varying slots filled for the call and emptied after: no copy
    // (adding its pairs one by one and comparing every key in finish cost ~5 ns a pair).
    const values = template.values!;
    const at = template.at;
    const n = this.n;
    for (let i = 0; i < n; i++) values[at + i] = this.values[i];
    this.reset();
    const attrs = template.make!(values as AttrValue[]);
    for (let i = 0; i < n; i++) values[at + i] = undefined;
    return attrs;
  }

  /**
   * finish, keeping in `template` (when a factory made the object) its values and which pairs,
   * `from` to `to`, the next object may vary; else emptying it.
   */
  finishKeeping(template: AttributeTemplate, from: number, to: number, memo?: ShapeMemo): Attributes {
    const n = this.n;
    const values: Array<AttrValue | undefined> = this.values.slice(0, n);
    const keys = this.keys.slice(0, n);
    for (let i = from; i < to; i++) {
      template.keys[i - from] = keys[i];
      // Not kept: a body may be a view into a large capture buffer, which the template would pin.
      values[i] = undefined;
    }
    template.n = to - from;
    template.at = from;
    const attrs = this.finish(memo);
    this.forgetValues(from, to);
    template.values = values;
    // A sequence without a factory yet (seen once, or past MAX_COMPILED) is made as plainMake does.
    template.make = this.made ?? ((v) => plainMake(keys, n, v));
    return attrs;
  }

  /**
   * Lets go of the values of pairs `from` to `to` of the object just finished (bodies, which may
   * view a capture batch): objects made from a template fill only the builder's first slots, so
   * values past them would stay referenced for as long as a connection's spans repeat.
   */
  forgetValues(from: number, to: number): void {
    const values = this.values as unknown[];
    for (let i = from; i < to; i++) values[i] = undefined;
  }

  /** `memo`: where this source's last sequence is kept (ShapeMemo). */
  finish(memo?: ShapeMemo): Attributes {
    this.made = undefined;
    const n = this.n;
    const keys = this.keys;
    if (memo !== undefined && memo.n === n) {
      const last = memo.keys;
      let i = 0;
      while (i < n && last[i] === keys[i]) i++;
      if (i === n) {
        this.made = memo.make;
        const attrs = memo.make!(this.values);
        this.reset();
        return attrs;
      }
    }
    let node = root;
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      // Most steps repeat the node's last one: those store nothing (the tree lives in the old
      // generation, where every store takes the write barrier).
      if (node.lastKey === key) {
        node = node.lastNext!;
        continue;
      }
      let next = node.next?.get(key);
      if (next === undefined) {
        if (nodes >= MAX_NODES) {
          root = newNode();
          nodes = 1;
          compiled = 0;
          return this.plain();
        }
        next = newNode();
        nodes++;
        (node.next ??= new Map()).set(key, next);
      }
      node.lastKey = key;
      node.lastNext = next;
      node = next;
    }
    let make = node.make;
    if (make === undefined) {
      if (node.seen++ === 0 || compiled >= MAX_COMPILED) return this.plain();
      compiled++;
      make = node.make = compile(keys, n);
    }
    if (memo !== undefined) {
      for (let i = 0; i < n; i++) memo.keys[i] = keys[i];
      memo.n = n;
      memo.make = make;
    }
    this.made = make;
    const attrs = make(this.values);
    this.reset();
    return attrs;
  }

  private plain(): Attributes {
    const attrs = plainMake(this.keys, this.n, this.values);
    this.reset();
    return attrs;
  }
}

function plainMake(keys: readonly string[], n: number, values: readonly AttrValue[]): Attributes {
  const attrs: Attributes = {};
  for (let i = 0; i < n; i++) attrs[keys[i]] = values[i];
  return attrs;
}

/** False once the runtime refused to compile (node --disallow-code-generation-from-strings). */
let canCompile = true;

function compile(keys: readonly string[], n: number): Make {
  const fixed = keys.slice(0, n);
  const plain: Make = (values) => plainMake(fixed, n, values);
  // A quoted `"__proto__"` in a literal would set the prototype, not a property: such sequences
  // (and very long ones) keep the property-by-property path, which behaves as assignment does.
  if (!canCompile || n > MAX_COMPILED_KEYS || fixed.includes('__proto__')) return plain;
  let body = 'return {';
  for (let i = 0; i < n; i++) body += `${JSON.stringify(keys[i])}: v[${i}],`;
  try {
    // Keys enter the source only through JSON.stringify, so no key can be read as code.
    return new Function('v', body + '};') as Make;
  } catch {
    canCompile = false;
    return plain;
  }
}
