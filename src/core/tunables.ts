/**
 * Every way a program sets malloc's parameters: mallopt(), the GLIBC_TUNABLES string and the
 * legacy MALLOC_*_ environment variables, with glibc 2.36's ranges and quirks.
 *
 * - Tunables are read once, at malloc's initialisation (ptmalloc_init), and applied in glibc's
 *   order. A value outside a tunable's range is silently ignored. A GLIBC_TUNABLES entry wins over
 *   the tunable's environment alias whatever their order in the environment (__tunables_init).
 * - Numbers are parsed as _dl_strtoul does: decimal, 0x hex, leading-0 octal, an optional sign
 *   (a negative value wraps), trailing junk ignored; from 2.39 a value with trailing junk is
 *   refused, and an ill-formed GLIBC_TUNABLES string is ignored whole (profile.strictTunables).
 * - Setting top_pad, mmap_threshold, trim_threshold or mmap_max in any way switches the dynamic
 *   mmap threshold off (mp_.no_dyn_threshold).
 *
 * glibc: __libc_mallopt and the do_set_* helpers (malloc/malloc.c), ptmalloc_init and the
 * TUNABLE_CALLBACKs (malloc/arena.c), __tunables_init and parse_tunables (elf/dl-tunables.c),
 * elf/dl-tunables.list.
 */

import {
  M,
  MAX_FAST_SIZE,
  MAX_TCACHE_COUNT,
  MAX_TCACHE_SIZE,
  csize2tidx,
  largeCsize2tidx,
  maxFastFor,
  request2size,
} from './constants.js';
import { mallocConsolidate } from './free.js';
import type { Process } from './state.js';
import { DEFAULT_PROFILE, TCACHE_SMALL_BINS, tcacheMaxBins, type GlibcProfile } from './profile.js';

type TunableType = 'int32' | 'size_t';

interface TunableDef {
  /** Name after `glibc.malloc.` */
  name: string;
  type: TunableType;
  min?: bigint;
  max?: bigint;
  /** The legacy environment variable that sets the same tunable. */
  alias?: string;
  /** What it does, for --help and diagnostics. */
  doc: string;
}

const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const SIZE_MAX = 2n ** 64n - 1n;

/** elf/dl-tunables.list, the malloc namespace. */
const MALLOC_TUNABLES: readonly TunableDef[] = [
  {
    name: 'check',
    type: 'int32',
    min: 0n,
    max: 3n,
    alias: 'MALLOC_CHECK_',
    doc: 'only used by libc_malloc_debug.so; no effect on malloc itself',
  },
  {
    name: 'top_pad',
    type: 'size_t',
    alias: 'MALLOC_TOP_PAD_',
    doc: 'extra bytes asked of the system at each heap growth',
  },
  {
    name: 'perturb',
    type: 'int32',
    min: 0n,
    max: 255n,
    alias: 'MALLOC_PERTURB_',
    doc: 'fill allocated and freed memory with this byte',
  },
  {
    name: 'mmap_threshold',
    type: 'size_t',
    alias: 'MALLOC_MMAP_THRESHOLD_',
    doc: 'requests from this size on are mmapped',
  },
  {
    name: 'trim_threshold',
    type: 'size_t',
    alias: 'MALLOC_TRIM_THRESHOLD_',
    doc: 'top memory above this is returned by free()',
  },
  {
    name: 'mmap_max',
    type: 'int32',
    min: 0n,
    alias: 'MALLOC_MMAP_MAX_',
    doc: 'most chunks mmapped at once',
  },
  { name: 'arena_max', type: 'size_t', min: 1n, alias: 'MALLOC_ARENA_MAX', doc: 'most arenas' },
  {
    name: 'arena_test',
    type: 'size_t',
    min: 1n,
    alias: 'MALLOC_ARENA_TEST',
    doc: 'arenas created before arena_max is computed from the cores',
  },
  {
    name: 'tcache_max',
    type: 'size_t',
    doc: 'largest request cached in the tcache (at most 1032)',
  },
  { name: 'tcache_count', type: 'size_t', doc: 'chunks per tcache bin (at most 65535)' },
  {
    name: 'tcache_unsorted_limit',
    type: 'size_t',
    doc: 'unsorted chunks sorted while filling the tcache (0: no limit)',
  },
  {
    name: 'mxfast',
    type: 'size_t',
    min: 0n,
    doc: 'largest request kept in fastbins (at most 160)',
  },
  {
    name: 'hugetlb',
    type: 'size_t',
    min: 0n,
    doc: '1: madvise transparent huge pages; 2 or a size: MAP_HUGETLB',
  },
];

/** _dl_strtoul: the value a string gives as a uint64. */
export function dlStrtoul(str: string): bigint {
  return dlStrtoulEnd(str).value;
}

/**
 * _dl_strtoul with its end pointer: the value, and the index of the first character it did not
 * take (at an overflow, the digit that overflowed, with the value UINT64_MAX).
 */
function dlStrtoulEnd(str: string): { value: bigint; end: number } {
  const MAX = 2n ** 64n - 1n;
  let i = 0;
  while (str[i] === ' ' || str[i] === '\t') i++;
  let positive = true;
  if (str[i] === '-') {
    positive = false;
    i++;
  } else if (str[i] === '+') i++;
  const c0 = str.charCodeAt(i);
  if (!(c0 >= 48 && c0 <= 57)) return { value: 0n, end: i };
  let base = 10n;
  let maxDigit = 9;
  if (str[i] === '0') {
    if (str[i + 1] === 'x' || str[i + 1] === 'X') {
      base = 16n;
      i += 2;
    } else {
      base = 8n;
      maxDigit = 7;
    }
  }
  let result = 0n;
  for (; ; i++) {
    const c = str.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 48 + maxDigit) d = c - 48;
    else if (base === 16n && c >= 97 && c <= 102) d = c - 87;
    else if (base === 16n && c >= 65 && c <= 70) d = c - 55;
    else break;
    const next = result * base + BigInt(d);
    if (next > MAX) return { value: MAX, end: i };
    result = next;
  }
  return { value: positive ? result : BigInt.asUintN(64, -result), end: i };
}

/**
 * The name=value pairs of a GLIBC_TUNABLES string as 2.39's parse_tunables_string reads it (2.39
 * on: profile.strictTunables), the last of each name kept; null when the string is ill-formed and
 * glibc ignores all of it: a name that reaches the end without '=' (a trailing ':' is one, an
 * empty name), or a value with '=' in it.
 */
function strictTunablePairs(value: string): Map<string, string> | null {
  const pairs = new Map<string, string>();
  if (value === '') return pairs;
  let p = 0;
  for (;;) {
    const name = p;
    while (p < value.length && value[p] !== '=' && value[p] !== ':') p++;
    if (p === value.length) return null;
    if (value[p] === ':') {
      p++;
      continue;
    }
    const key = value.slice(name, p);
    const start = ++p;
    while (p < value.length && value[p] !== '=' && value[p] !== ':') p++;
    if (value[p] === '=') return null;
    pairs.set(key, value.slice(start, p));
    if (p === value.length) return pairs;
  }
}

/** Up to 2.38, what a value with characters after its number is read as (64K is 64), or null. */
function cutShort(raw: string, v: bigint, release: string): string | null {
  if (dlStrtoulEnd(raw).end === raw.length) return null;
  return `glibc ${release} reads ${v}, the number before '${raw.slice(dlStrtoulEnd(raw).end)}' (suffixes such as K are not understood)`;
}

/**
 * tunable_initialize / do_tunable_update_val: the accepted value, or undefined if out of range
 * or, with `strict` (2.39 on), not a number to its last character.
 */
function validate(def: TunableDef, raw: string, strict = false): bigint | undefined {
  const { value: u, end } = dlStrtoulEnd(raw);
  if (strict && end !== raw.length) return undefined;
  if (def.type === 'int32') {
    const v = BigInt.asIntN(64, u);
    const min = def.min ?? INT32_MIN;
    const max = def.max ?? INT32_MAX;
    return v < min || v > max ? undefined : v;
  }
  const min = def.min ?? 0n;
  const max = def.max ?? SIZE_MAX;
  return u < min || u > max ? undefined : u;
}

/** A setting glibc ignores, reported to the user rather than dropped silently. */
interface TunableNote {
  setting: string;
  reason: string;
}

interface ResolvedTunables {
  /** Accepted values by tunable name (without the glibc.malloc. prefix). */
  values: Map<string, bigint>;
  notes: TunableNote[];
}

/**
 * Reads the malloc tunables from an environment (NAME=VALUE pairs, as the process would see
 * them): GLIBC_TUNABLES first, then the aliases for what it did not set.
 */
export function resolveTunables(
  env: ReadonlyArray<readonly [string, string]>,
  profile: GlibcProfile = DEFAULT_PROFILE,
): ResolvedTunables {
  const values = new Map<string, bigint>();
  const notes: TunableNote[] = [];
  const release = profile.version;
  // glibc.malloc.hugetlb came with 2.35 and glibc.malloc.mxfast with 2.30: an older release does
  // not know them; mmap_max refuses negative values from 2.34; glibc.malloc.tcache_unsorted_limit
  // went with 2.44.
  const known = MALLOC_TUNABLES.filter(
    (d) =>
      (profile.hugetlbTunable || d.name !== 'hugetlb') &&
      (profile.mxfastTunable || d.name !== 'mxfast') &&
      (profile.unsortedStash || d.name !== 'tcache_unsorted_limit'),
  ).map((d) =>
    d.name === 'mmap_max' && !profile.mmapMaxTunableNonNegative ? { ...d, min: INT32_MIN } : d,
  );
  const byName = new Map(known.map((d) => [`glibc.malloc.${d.name}`, d]));
  const strict = profile.strictTunables;
  const bad = strict ? 'not a whole number, or out of range' : 'out of range';
  for (const [name, value] of env) {
    if (name !== 'GLIBC_TUNABLES') continue;
    if (strict) {
      // parse_tunables_string (2.39 on): the whole string, or nothing; the last of each name.
      const pairs = strictTunablePairs(value);
      if (pairs === null) {
        notes.push({
          setting: `GLIBC_TUNABLES=${value}`,
          reason: `ill-formed for glibc ${release} (a name without '=' at its end, or a value with '=' in it): glibc ignores all of it`,
        });
        continue;
      }
      for (const [tname, raw] of pairs) {
        const def = byName.get(tname);
        const item = `${tname}=${raw}`;
        if (def === undefined) {
          if (tname.startsWith('glibc.malloc.'))
            notes.push({
              setting: item,
              reason: `${tname} is not a glibc ${release} tunable: glibc ignores it`,
            });
          continue;
        }
        const v = validate(def, raw, true);
        if (v === undefined) notes.push({ setting: item, reason: `${bad}: glibc ignores it` });
        else values.set(def.name, v);
      }
      continue;
    }
    // parse_tunables: NAME=VALUE pairs separated by ':'; a name without '=' is skipped.
    for (const item of value.split(':')) {
      if (item === '') continue;
      const eq = item.indexOf('=');
      if (eq < 0) {
        notes.push({ setting: item, reason: 'no value: glibc skips it' });
        continue;
      }
      const tname = item.slice(0, eq);
      const def = byName.get(tname);
      if (def === undefined) {
        if (!tname.startsWith('glibc.malloc.')) continue; // other namespaces are not malloc's business
        notes.push({
          setting: item,
          reason: `${tname} is not a glibc ${release} tunable: glibc ignores it`,
        });
        continue;
      }
      const raw = item.slice(eq + 1);
      const v = validate(def, raw);
      if (v === undefined) notes.push({ setting: item, reason: 'out of range: glibc ignores it' });
      else {
        values.set(def.name, v);
        const cut = cutShort(raw, v, release);
        if (cut !== null) notes.push({ setting: item, reason: cut });
      }
    }
  }
  for (const [name, value] of env) {
    const def = known.find((d) => d.alias === name);
    if (def === undefined) {
      if (name.startsWith('MALLOC_') && name !== 'MALLOC_TRACE') {
        notes.push({
          setting: `${name}=${value}`,
          reason: `${name} is not read by glibc ${release}'s malloc`,
        });
      }
      continue;
    }
    if (values.has(def.name)) continue;
    const v = validate(def, value, strict);
    if (v === undefined)
      notes.push({ setting: `${name}=${value}`, reason: `${bad}: glibc ignores it` });
    else {
      values.set(def.name, v);
      const cut = strict ? null : cutShort(value, v, release);
      if (cut !== null) notes.push({ setting: `${name}=${value}`, reason: cut });
    }
  }
  const huge = values.get('hugetlb');
  if (huge !== undefined && huge >= 2n) {
    notes.push({
      setting: `glibc.malloc.hugetlb=${huge}`,
      reason: 'MAP_HUGETLB pools are not modelled; ptsim replays as if it were 0',
    });
  }
  // 2.43 on: glibc.malloc.mxfast is still a tunable, and sets nothing (no fastbins).
  if (values.has('mxfast') && !profile.fastbins)
    notes.push({
      setting: 'glibc.malloc.mxfast',
      reason: `glibc ${release} has no fastbins: it accepts the tunable and ignores it`,
    });
  const check = values.get('check');
  if (check !== undefined && !(profile.mallocCheckInLibc && check === 0n))
    notes.push(
      profile.mallocCheckInLibc
        ? {
            // ptmalloc_init of 2.33 and before: __malloc_check_init for a value other than 0.
            setting: 'glibc.malloc.check',
            reason: `switches on glibc ${release}'s checking hooks, which ptsim does not model; replayed without them`,
          }
        : {
            setting: 'glibc.malloc.check',
            reason: 'has effect only with libc_malloc_debug.so preloaded; ignored',
          },
    );
  return { values, notes };
}

/** The THP page size glibc reads from /sys/kernel/mm/transparent_hugepage/hpage_pmd_size on x86_64. */
const THP_PAGESIZE = 2 * 1024 * 1024;

/** ptmalloc_init's TUNABLE_GET sequence: applies what was set, in glibc's order. */
export function applyTunables(s: Process, t: ResolvedTunables): void {
  const v = t.values;
  const num = (name: string): number | undefined => {
    const x = v.get(name);
    return x === undefined ? undefined : Number(x);
  };
  const int32 = (name: string): number | undefined => {
    const x = v.get(name);
    return x === undefined ? undefined : Number(BigInt.asIntN(32, x));
  };
  let x: number | undefined;
  if ((x = num('top_pad')) !== undefined) setTopPad(s, x);
  if ((x = int32('perturb')) !== undefined) s.perturbByte = x;
  if ((x = num('mmap_threshold')) !== undefined) setMmapThreshold(s, x);
  if ((x = num('trim_threshold')) !== undefined) setTrimThreshold(s, x);
  if ((x = int32('mmap_max')) !== undefined) setMmapsMax(s, x);
  if ((x = num('arena_max')) !== undefined) s.mp.arenaMax = x;
  if ((x = num('arena_test')) !== undefined) s.mp.arenaTest = x;
  if ((x = num('tcache_max')) !== undefined) setTcacheMax(s, x);
  if ((x = num('tcache_count')) !== undefined) setTcacheCount(s, x);
  if ((x = num('tcache_unsorted_limit')) !== undefined) s.mp.tcacheUnsortedLimit = x;
  // 2.43 on: ptmalloc_init no longer reads glibc.malloc.mxfast (still a tunable).
  if ((x = num('mxfast')) !== undefined && s.profile.fastbins) setMxfast(s, x);
  if ((x = num('hugetlb')) !== undefined) {
    // do_set_hugetlb: 1 enables THP advice when the kernel's THP mode is "madvise" (assumed, as
    // on Debian); 2 and above need huge page pools, which ptsim does not model.
    if (x === 1) s.mp.thpPagesize = THP_PAGESIZE;
  }
}

function setTopPad(s: Process, v: number): number {
  s.mp.topPad = v;
  s.mp.noDynThreshold = true;
  return 1;
}
/** do_set_mmap_threshold: up to 2.34 refuses a threshold above HEAP_MAX_SIZE / 2. */
function setMmapThreshold(s: Process, v: number): number {
  if (v > s.profile.mmapThresholdLimit) return 0;
  s.mp.mmapThreshold = v;
  s.mp.noDynThreshold = true;
  return 1;
}
function setTrimThreshold(s: Process, v: number): number {
  s.mp.trimThreshold = v;
  s.mp.noDynThreshold = true;
  return 1;
}
function setMmapsMax(s: Process, v: number): number {
  s.mp.nMmapsMax = v;
  s.mp.noDynThreshold = true;
  return 1;
}
/**
 * do_set_tcache_max. From 2.42 (profile.tcacheLargeBins) a value up to 4 MiB or so is accepted:
 * above 1032 bytes it opens the large bins up to its chunk size.
 */
function setTcacheMax(s: Process, v: number): number {
  if (s.profile.tcacheLargeBins > 0) {
    if (v >= 2 ** 63) return 0;
    const nb = request2size(v);
    let idx = csize2tidx(nb);
    if (idx >= TCACHE_SMALL_BINS) idx = largeCsize2tidx(nb);
    if (idx >= tcacheMaxBins(s.profile)) return 0;
    if (idx < TCACHE_SMALL_BINS) s.mp.tcacheBins = idx + 1;
    s.mp.tcacheMaxBytes = nb + 1;
    return 1;
  }
  if (v > MAX_TCACHE_SIZE) return 0;
  s.mp.tcacheMaxBytes = v;
  s.mp.tcacheBins = csize2tidx(request2size(v)) + 1;
  return 1;
}
function setTcacheCount(s: Process, v: number): number {
  if (s.profile.tcacheCountBytes === 1) {
    // Up to 2.29 any value is taken, but a bin's signed char count stops tcache_put at 128.
    s.mp.tcacheCount = Math.min(v, 128);
    return 1;
  }
  if (v > MAX_TCACHE_COUNT) return 0;
  s.mp.tcacheCount = v;
  return 1;
}
function setMxfast(s: Process, v: number): number {
  // 2.43 on: no fastbins; M_MXFAST is accepted and sets nothing.
  if (!s.profile.fastbins) return 1;
  if (v > MAX_FAST_SIZE) return 0;
  s.globalMaxFast = maxFastFor(v);
  return 1;
}

/** (size_t) of a C int: negative values wrap. */
function sizeT(value: number): number {
  return value < 0 ? value + 2 ** 64 : value;
}

/**
 * __libc_mallopt after initialisation: consolidates the main arena's fastbins (for every
 * parameter, even an unknown one), then sets the parameter. Returns glibc's return value.
 */
export function doMallopt(s: Process, param: number, value: number): number {
  value = value | 0;
  if (s.profile.fastbins) mallocConsolidate(s, s.main);
  switch (param) {
    case M.MXFAST:
      return setMxfast(s, sizeT(value));
    case M.TRIM_THRESHOLD: {
      const r = setTrimThreshold(s, sizeT(value));
      // The program's own call sets every threshold of a watched replay (otherTrimThresholds).
      s.otherTrimThresholds.fill(s.mp.trimThreshold);
      return r;
    }
    case M.TOP_PAD:
      return setTopPad(s, sizeT(value));
    case M.MMAP_THRESHOLD:
      return setMmapThreshold(s, sizeT(value));
    case M.MMAP_MAX:
      return setMmapsMax(s, value);
    case M.CHECK_ACTION:
      return 1;
    case M.PERTURB:
      s.perturbByte = value;
      return 1;
    case M.ARENA_TEST:
      if (value > 0) s.mp.arenaTest = value;
      return 1;
    case M.ARENA_MAX:
      if (value > 0) s.mp.arenaMax = value;
      return 1;
    default:
      return 1;
  }
}
