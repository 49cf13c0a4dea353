// Strings kept in the capture caches: V8 keeps one flat copy of each property name, so a string
// made one (once, on a cache miss) compares with other keys by pointer and never pins the large
// header text a parser's slice of it points into.

export function internalize(s: string): string {
  return Object.keys({ [s]: 0 })[0];
}
