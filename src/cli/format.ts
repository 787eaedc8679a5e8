/**
 * The readable form of a replay summary: short, ordered as a reader asks the questions (how much
 * is resident, where, what glibc itself reports, what it cost).
 */

import type { MeasuredSample } from '../replay/measured.js';
import type { ReplaySummary } from '../replay/replay.js';
import type { TraceHeader } from '../trace/types.js';
import type { ArenaReport } from '../core/stats.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 2101248 -> "2.00 MiB (2,101,248 B)" */
export function formatBytes(n: number): string {
  const exact = `${n.toLocaleString('en-US')} B`;
  if (Math.abs(n) < 1024) return exact;
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)} ${UNITS[u]} (${exact})`;
}

/**
 * The most arenas arena_get2 lets exist: arena_max when set; else 8 per CPU (64-bit), except that
 * the limit is only fixed once there are more than arena_test arenas, so that arena_test + 1 can
 * exist even when that is more (one CPU and the default arena_test of 8 allow 9).
 */
function arenaLimit(cores: number, arenaMax: number, arenaTest: number): string {
  if (arenaMax !== 0) return `limit: ${arenaMax}, set by arena_max`;
  const cpus = `${cores} CPU${cores === 1 ? '' : 's'}`;
  const perCpu = 8 * cores;
  if (arenaTest + 1 > perCpu)
    return `glibc's limit: ${arenaTest + 1}, as arena_test is ${arenaTest}; 8 per CPU with ${cpus} would be ${perCpu}`;
  return `glibc's limit: ${perCpu} with ${cpus}`;
}

export function formatSummary(
  name: string,
  s: ReplaySummary,
  _header: TraceHeader | null,
  cores: number,
  arenas: ArenaReport[],
  arenaMax = 0,
  arenaTest = 8,
): string {
  const m = s.mallinfo2;
  const sc = s.syscalls;
  const lines = [
    `${name}: ${s.events.toLocaleString('en-US')} events replayed on a model of glibc 2.36 malloc (x86_64)`,
    '',
    `  resident (RSS) at the end   ${formatBytes(s.rss)}`,
    `  resident at its peak        ${formatBytes(s.peakRss)}${s.peakEvent >= 0 ? `, after event ${s.peakEvent}` : ''}`,
    `  heap (program break)        ${formatBytes(s.brk)} above the initial break; main arena holds ${formatBytes(s.heap)}`,
    `  mmapped chunks              ${formatBytes(s.mmapped)} in ${m.hblks} chunk${m.hblks === 1 ? '' : 's'}`,
    `  live blocks                 ${s.liveBlocks.toLocaleString('en-US')} holding ${formatBytes(s.liveBytes)} requested`,
    `  arenas                      ${arenas.length} (${arenaLimit(cores, arenaMax, arenaTest)})`,
    ...(arenas.length > 1
      ? arenas.map(
          (a) =>
            `    arena ${String(a.index).padStart(2)}${a.index === 0 ? ' (main)' : '       '}  ${pad(a.systemBytes)} bytes in ${a.heaps} heap${a.heaps === 1 ? ' ' : 's'}, ${pad(a.inUseBytes)} in use, ${pad(a.residentBytes)} resident, ${a.threads} thread${a.threads === 1 ? '' : 's'}`,
        )
      : []),
    '',
    '  mallinfo2():',
    `    arena    ${pad(m.arena)}  bytes from brk/heaps      ordblks  ${pad(m.ordblks)}  free chunks (incl. top)`,
    `    uordblks ${pad(m.uordblks)}  in use (incl. tcache)     fordblks ${pad(m.fordblks)}  free (incl. top)`,
    `    hblks    ${pad(m.hblks)}  mmapped chunks            hblkhd   ${pad(m.hblkhd)}  bytes mmapped`,
    `    smblks   ${pad(m.smblks)}  fastbin chunks            fsmblks  ${pad(m.fsmblks)}  bytes in fastbins`,
    `    keepcost ${pad(m.keepcost)}  top chunk                 usmblks  ${pad(m.usmblks)}`,
    '',
    `  system calls: brk ${sc.brk}, mmap ${sc.mmap}, munmap ${sc.munmap}, mremap ${sc.mremap}, mprotect ${sc.mprotect}, madvise ${sc.madvise}, getrandom ${sc.getrandom}`,
    `  page faults (first touches): ${s.pageFaults.toLocaleString('en-US')}`,
  ];
  if (s.touch !== 'full' || s.measured !== undefined) lines.push('', ...touchLines(s));
  if (s.warnings > 0) lines.push(`  warnings: ${s.warnings} (see above)`);
  if (s.abort !== undefined)
    lines.push(
      '',
      `  glibc would abort at event ${s.abort.event} (line ${s.abort.line}): ${s.abort.message}`,
    );
  else if (s.rss > 2 * s.liveBytes + 65536) {
    lines.push(
      '',
      `  glibc keeps ${formatBytes(s.rss - s.liveBytes)} more than the program holds; to see where and why: ptsim explain ${name}`,
    );
  }
  return lines.join('\n') + '\n';
}

/** What the program was taken to write, and the trace's own measurements beside the replay's. */
function touchLines(s: ReplaySummary): string[] {
  const lines = [
    `  program writes              ${
      s.touch === 'recorded'
        ? "blocks under 4096 bytes whole, larger ones the pages of the trace's #:touch records (--touch recorded)"
        : s.touch === 'none'
          ? "nothing: only glibc's own writes make pages resident, a lower bound (--touch none)"
          : 'every requested byte, right after the call (--touch full)'
    }`,
  ];
  const m = s.measured;
  if (m !== undefined) {
    lines.push(
      `  measured by the recording   ${m.samples.toLocaleString('en-US')} #:rss sample${m.samples === 1 ? '' : 's'}; beside each, the replay's RSS at the same point`,
      `    last sample               ${sampleLine(m.last)}`,
      `    highest RssAnon           ${sampleLine(m.peak)}`,
    );
  }
  return lines;
}

function sampleLine(x: MeasuredSample): string {
  const where = x.event < 0 ? 'before the first event' : `after event ${x.event}`;
  const mark = x.mark === null ? '' : ` (mark ${x.mark})`;
  const heap = x.heap === null ? '' : `, allocator's memory ${formatBytes(x.heap)}`;
  return `${where}${mark}: RssAnon ${formatBytes(x.anon)}${heap}; replay ${formatBytes(x.modelled)}`;
}

function pad(n: number): string {
  return String(n).padStart(12);
}
