import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import type { Attributes } from '../../telemetry/span.js';
import { AttributeBuilder, AttributeRun, AttributeTemplate, ShapeMemo } from './attributes.js';

/** Builds the same pairs several times: the first objects come the plain way, later ones compiled. */
function buildTimes(times: number, fill: (b: AttributeBuilder) => void): Attributes[] {
  const b = new AttributeBuilder();
  const out: Attributes[] = [];
  for (let i = 0; i < times; i++) {
    fill(b);
    out.push(b.finish());
  }
  return out;
}

describe('AttributeBuilder', () => {
  it('makes the same object, keys in insertion order, whether compiled or not', () => {
    const made = buildTimes(3, (b) => {
      b.add('http.request.method', 'GET');
      b.add('url.path', '/a');
      b.add('http.request.header.x-a', ['1']);
      b.add('server.port', 8080);
      b.add('sidetrace.capture.partial', true);
      b.add('http.response.body.content', new Uint8Array([1, 2]));
    });
    for (const attrs of made) {
      expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
      expect(Object.keys(attrs)).toEqual(['http.request.method', 'url.path', 'http.request.header.x-a', 'server.port', 'sidetrace.capture.partial', 'http.response.body.content']);
      expect(attrs).toEqual({
        'http.request.method': 'GET',
        'url.path': '/a',
        'http.request.header.x-a': ['1'],
        'server.port': 8080,
        'sidetrace.capture.partial': true,
        'http.response.body.content': new Uint8Array([1, 2]),
      });
    }
    // Objects never share values through the builder's scratch arrays.
    expect(made[1]['http.request.header.x-a']).not.toBe(made[2]['http.request.header.x-a']);
  });

  it('a key added again ends as property assignment leaves it: later value, earlier place', () => {
    for (const attrs of buildTimes(3, (b) => {
      b.add('a.b', 1);
      b.add('c.d', 2);
      b.add('a.b', 3);
      b.add('e.f', 4);
    })) {
      expect(Object.entries(attrs)).toEqual([['a.b', 3], ['c.d', 2], ['e.f', 4]]);
    }
  });

  it('finds a key only at or after a position', () => {
    const b = new AttributeBuilder();
    b.add('x', 1);
    b.add('y', 2);
    expect(b.indexOf('x', 0)).toBe(0);
    expect(b.indexOf('x', 1)).toBe(-1);
    expect(b.indexOf('y', 1)).toBe(1);
    expect(b.valueAt(1)).toBe(2);
    expect(b.size).toBe(2);
    b.finish();
    expect(b.size).toBe(0);
  });

  it('keeps keys that a literal would misread as own properties', () => {
    for (const attrs of buildTimes(3, (b) => {
      b.add('quote"and\\slash', 1);
      b.add('123', 2);
      b.add('constructor', 3);
    })) {
      expect(attrs['quote"and\\slash']).toBe(1);
      expect(attrs['123']).toBe(2);
      expect(Object.prototype.hasOwnProperty.call(attrs, 'constructor')).toBe(true);
      expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
    }
  });

  it('treats __proto__ as assignment does, compiled or not', () => {
    const made = buildTimes(3, (b) => {
      b.add('a', 1);
      b.add('__proto__', 'x');
    });
    const assigned: Attributes = {};
    assigned['a'] = 1;
    assigned['__proto__'] = 'x';
    for (const attrs of made) {
      expect(Object.keys(attrs)).toEqual(Object.keys(assigned));
      expect(Object.getPrototypeOf(attrs)).toBe(Object.getPrototypeOf(assigned));
    }
  });

  it('reset drops a half-built span', () => {
    const b = new AttributeBuilder();
    b.add('left', 'over');
    b.reset();
    b.add('k', 'v');
    expect(b.finish()).toEqual({ k: 'v' });
  });

  // Before the test below, whose fresh tree lets the last test compile again.
  it('stays correct past the bound on compiled shapes', () => {
    const b = new AttributeBuilder();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 600; i++) {
        b.add('shape', i);
        b.add(`many-${i}`, round);
        expect(b.finish()).toEqual({ shape: i, [`many-${i}`]: round });
      }
    }
  });

  it('stays correct when the shape tree fills up and starts afresh', () => {
    const b = new AttributeBuilder();
    for (let i = 0; i < 20_000; i++) {
      b.add('fixed', i);
      b.add(`one-off-${i}`, i);
      const attrs = b.finish();
      expect(Object.keys(attrs)).toEqual(['fixed', `one-off-${i}`]);
    }
    const again = buildTimes(3, (x) => x.add('fixed', 0));
    expect(again[2]).toEqual({ fixed: 0 });
  });

  // Last: once refused, the module builds every object property by property.
  it('builds property by property where the runtime refuses to compile code', () => {
    let refusals = 0;
    vi.stubGlobal('Function', function refused() {
      refusals++;
      throw new EvalError('Code generation from strings disallowed for this context');
    });
    try {
      for (const attrs of buildTimes(3, (b) => {
        b.add('never.compiled', 1);
        b.add('still.right', 'yes');
      })) {
        expect(attrs).toEqual({ 'never.compiled': 1, 'still.right': 'yes' });
      }
      expect(refusals).toBe(1);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('makes the same objects through a ShapeMemo and a saved run as without, for any key sequences', () => {
    // Sequences from a few keys, each finished at least twice so that factories get compiled.
    const seq = fc.array(fc.constantFrom('a', 'b', 'c', 'url.path', 'a'), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(fc.array(seq, { minLength: 1, maxLength: 10 }), fc.nat(3), (seqs, saveFrom) => {
        const memo = new ShapeMemo();
        const run = new AttributeRun();
        const withMemo = new AttributeBuilder();
        const plain = new AttributeBuilder();
        for (const keys of [...seqs, ...seqs]) {
          keys.forEach((k, i) => plain.add(k, i));
          keys.forEach((k, i) => withMemo.add(k, i));
          // A run saved from this sequence, added again, must give the same pairs.
          const from = Math.min(saveFrom, withMemo.size);
          withMemo.saveRun(from, run);
          withMemo.reset();
          keys.slice(0, from).forEach((k, i) => withMemo.add(k, i));
          withMemo.addRun(run);
          expect(Object.entries(withMemo.finish(memo))).toEqual(Object.entries(plain.finish()));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('makes from a template the objects finish makes, for any key sequences and varying pairs', () => {
    // Each step builds a sequence; when the builder holds exactly the template's varying pairs
    // (fitsTemplate), the object made from the template must be finish's for the whole sequence.
    const seq = fc.array(fc.constantFrom('a', 'b', 'c', 'url.path', 'a'), { minLength: 1, maxLength: 6 });
    // Most steps repeat the last one's keys and varying range, with other varying values.
    // Some repeat it with a varying key changed: only fitsTemplate's key compare can tell.
    const step = fc.record({ again: fc.boolean(), swap: fc.boolean(), keys: seq, from: fc.nat(6), to: fc.nat(6), value: fc.constantFrom(1, 'x', ['y']) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 12 }), (steps) => {
        const template = new AttributeTemplate();
        const memo = new ShapeMemo();
        const b = new AttributeBuilder();
        const plain = new AttributeBuilder();
        /** The whole sequence the template was last kept with. */
        let keptKeys: string[] = [];
        let last = steps[0];
        for (const s of steps) {
          const { keys: lastKeys, from: f, to: t } = s.again ? last : s;
          const value = s.value;
          last = s.again ? last : s;
          const from = Math.min(f, lastKeys.length);
          const to = Math.max(from, Math.min(t, lastKeys.length));
          const keys = s.again && s.swap && from < to ? lastKeys.map((k, i) => (i === from ? `${k}'` : k)) : lastKeys;
          const val = (i: number) => (from <= i && i < to ? value : i);
          keys.forEach((k, i) => plain.add(k, val(i)));
          const expected = Object.entries(plain.finish());
          // The varying pairs alone, as build records bodies first.
          for (let i = from; i < to; i++) b.add(keys[i], val(i));
          // The pairs around the varying ones are the template's: build ensures that (its runs all
          // repeat), so the test does it here before asking fitsTemplate.
          const around = template.at === from && keptKeys.length === keys.length && keys.every((k, i) => (i >= from && i < to) || k === keptKeys[i]);
          const fits = around && b.fitsTemplate(template);
          if (fits) {
            expect(Object.entries(b.finishFromTemplate(template))).toEqual(expected);
          } else {
            b.reset();
            keys.forEach((k, i) => b.add(k, val(i)));
            expect(Object.entries(b.finishKeeping(template, from, to, memo))).toEqual(expected);
            keptKeys = keys;
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
