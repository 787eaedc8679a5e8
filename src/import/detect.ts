/**
 * Recognising a log's format from its first lines, for when `--from` is not given.
 *
 * Each format has a test of one line; the first non-blank lines (up to SAMPLE) are tried against
 * every format, and the format that recognises the most of them wins. The tests are written so
 * that no line of one format passes another's test by accident where it matters: native traces
 * have an operation name after the thread number, logalloc has `FUNCTION(ARGS)=RESULT` with no
 * blank before `=`, ltrace has one, mtrace pointers have `0x` and heaptrack's have none, and
 * malloclab traces start with four lines of one number each.
 */

export const FORMATS = [
  'native',
  'mtrace',
  'logalloc',
  'ltrace',
  'heaptrack',
  'malloclab',
] as const;
export type TraceFormat = (typeof FORMATS)[number];

/** The format a `--from` value names, or undefined. */
export function formatNamed(text: string): TraceFormat | undefined {
  return (FORMATS as readonly string[]).includes(text) ? (text as TraceFormat) : undefined;
}

/** Non-blank lines looked at. */
const SAMPLE = 40;

const OPS = 'malloc|calloc|realloc|memalign|valloc|pvalloc|free|malloc_trim|mallopt|exit';
const NATIVE = new RegExp(`^(@\\d+[ \\t]+)?\\d+[ \\t]+(${OPS})([ \\t]|$)`);
const MTRACE = /^(= (Start|End)$|(@ .*\] )?[-+<>!] (0x[0-9a-f]+|\(nil\))( (0x[0-9a-f]+|0))?$)/;
const HEAPTRACK =
  /^(v [0-9a-f]+ [0-9a-f]+|[xXImtiscRA] .*|\+ [0-9a-f]+ [0-9a-f]+ [0-9a-f]+|\+ [0-9a-f]+|- [0-9a-f]+|a [0-9a-f]+ [0-9a-f]+)$/;
const LOGALLOC = /^\d+ (\d+ )?[A-Za-z_]\w*\([^()]*\)(=\S+)?$/;
const LTRACE =
  /^(\d+ +|\[pid \d+\] +)?(\[0x[0-9a-f]+\] +)?([\d:.]+ +)?(([\w.+-]+->)?[\w@.]+\(.*(\) *= .*|<unfinished \.\.\.>)|<\.\.\. [\w@.]+ resumed>.*|--- .* ---|\+\+\+ .* \+\+\+)$/;
const NATIVE_START = /^(@\S*[ \t]+)?\d+[ \t]+[A-Za-z_]/;
const NUMBER = /^\s*\d+\s*$/;
const MALLOCLAB_REQUEST = /^\s*([ar]\s+\d+\s+\d+|f\s+\d+)\s*$/;

/** The format the first lines of a log show, or undefined when none fits. */
export function detectFormat(head: string): TraceFormat | undefined {
  const lines: string[] = [];
  for (const raw of head.split('\n').slice(0, 4 * SAMPLE)) {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      // Comments are native's, but prove little on their own: heaptrack has them too.
      continue;
    }
    lines.push(line);
    if (lines.length === SAMPLE) break;
  }
  // An empty trace (or one of comments only) is a native trace without events.
  if (lines.length === 0) return 'native';
  // A possibly cut last line (the head is a prefix of the file) is left out when there are others.
  if (lines.length > 1 && !head.endsWith('\n')) lines.pop();

  if (
    lines.length >= 4 &&
    lines.slice(0, 4).every((l) => NUMBER.test(l)) &&
    lines.slice(4).every((l) => MALLOCLAB_REQUEST.test(l))
  )
    return 'malloclab';
  const tests: Array<[TraceFormat, RegExp]> = [
    ['native', NATIVE],
    ['mtrace', MTRACE],
    ['heaptrack', HEAPTRACK],
    ['logalloc', LOGALLOC],
    ['ltrace', LTRACE],
  ];
  let best: TraceFormat | undefined;
  let bestScore = 0;
  for (const [format, re] of tests) {
    let score = 0;
    for (const l of lines) if (re.test(l)) score++;
    if (score > bestScore) {
      best = format;
      bestScore = score;
    }
  }
  // A format must account for most of the lines looked at, or it is a guess.
  if (bestScore * 2 > lines.length) return best;
  // Lines that start like native ones (a thread number, maybe a time) but do not parse are most
  // likely a native trace with mistakes, which the native reader reports precisely.
  return NATIVE_START.test(lines[0]!) ? 'native' : undefined;
}
