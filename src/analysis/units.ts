/** Byte counts for people, as the explanation prints them: 3 significant figures, binary units. */
export function shortBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
  return n < 0 ? `-${s}` : s;
}

/**
 * 1234567 -> "1,234,567"; exact for any integer a double or bigint holds. The separators are put
 * in here: toLocaleString's first call loads the locale's data, some 25 ms of a command that
 * prints one count. (A number that is not whole is rare here, and left to toLocaleString.)
 */
export function thousands(n: number | bigint): string {
  if (typeof n === 'number' && !Number.isInteger(n)) return n.toLocaleString('en-US');
  const digits = BigInt(n).toString();
  const sign = digits.startsWith('-') ? '-' : '';
  const d = sign === '' ? digits : digits.slice(1);
  let out = d.slice(0, ((d.length - 1) % 3) + 1);
  for (let i = out.length; i < d.length; i += 3) out += `,${d.slice(i, i + 3)}`;
  return sign + out;
}
