// Header names compared without a lowercased copy of each: parsers hand over fresh strings, and
// lowercasing one allocates where comparing it takes a few instructions.

/** `name.toLowerCase() === lower` for a same-length `name`, ASCII case folded as HTTP does. */
export function equalsLower(name: string, lower: string): boolean {
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}
