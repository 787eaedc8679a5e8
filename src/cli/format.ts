/**
 * The readable form of a replay summary: short, ordered as a reader asks the questions (how much
 * is resident, where, what glibc itself reports, what it cost).
 */

import type { MeasuredSample } from '../replay/measured.js';
import type { ReplaySummary } from '../replay/replay.js';
import type { TraceHeader } from '../trace/types.js';
import type { ArenaReport } from '../core/stats.js';
import { count, formatBytes, plural } from './numbers.js';
import { profileFor } from '../core/profile.js';

/**
 * The most arenas arena_get2 lets exist: arena_max when set; else 8 per CPU (64-bit), except that
 * the limit is only fixed once there are more than arena_test arenas, so that arena_test + 1 can
 * exist even when that is more (one CPU and the default arena_test of 8 allow 9). glibc 2.44:
 * one per CPU, and at least arena_test (profile.arenaLimitPerCpu false).
 */
function arenaLimit(cores: number, arenaMax: number, arenaTest: number, glibc: string): string {
  if (arenaMax !== 0) return `limit: ${arenaMax}, set by arena_max`;
  const cpus = plural(cores, 'CPU');
  if (profileFor(glibc)?.profile.arenaLimitPerCpu === false) {
    if (arenaTest > cores)
      return `glibc's limit: ${arenaTest}, as arena_test is ${arenaTest}; one per CPU with ${cpus} would be ${cores}`;
    return `glibc's limit: ${cores}, one per CPU`;
  }
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
    `${name}: ${plural(s.events, 'event')} replayed on a model of glibc ${s.glibc}${s.glibcUnverified === true ? ' (unverified)' : ''} malloc (x86_64)`,
    '',
    `  resident (RSS) at the end   ${formatBytes(s.rss)}`,
    `  resident at its peak        ${formatBytes(s.peakRss)}${s.peakEvent >= 0 ? `, after event ${s.peakEvent}` : ''}`,
    `  heap (program break)        ${formatBytes(s.brk)} above the initial break; main arena holds ${formatBytes(s.heap)}`,
    `  mmapped chunks              ${formatBytes(s.mmapped)} in ${plural(m.hblks, 'chunk')}`,
    `  live blocks                 ${count(s.liveBlocks)} holding ${formatBytes(s.liveBytes)} requested`,
    `  arenas                      ${arenas.length} (${arenaLimit(cores, arenaMax, arenaTest, s.glibc)})`,
    ...(arenas.length > 1
      ? arenas.map(
          (a) =>
            `    arena ${String(a.index).padStart(2)}${a.index === 0 ? ' (main)' : '       '}  ${pad(a.systemBytes)} bytes in ${`${plural(a.heaps, 'heap')},`.padEnd(9)}${pad(a.inUseBytes)} in use, ${pad(a.residentBytes)} resident, ${plural(a.threads, 'thread')}`,
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
    `  system calls: brk ${count(sc.brk)}, mmap ${count(sc.mmap)}, munmap ${count(sc.munmap)}, mremap ${count(sc.mremap)}, mprotect ${count(sc.mprotect)}, madvise ${count(sc.madvise)}, getrandom ${count(sc.getrandom)}`,
    `  page faults (first touches): ${count(s.pageFaults)}`,
  ];
  if (s.touch !== 'full' || s.measured !== undefined) lines.push('', ...touchLines(s));
  if (s.warnings > 0) lines.push(`  warnings: ${count(s.warnings)} (see above)`);
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
      `  measured by the recording   ${plural(m.samples, '#:rss sample')}; beside each, the replay's RSS at the same point`,
      `    last sample               ${sampleLine(m.last)}`,
      `    ${`highest ${m.peak.anon === null ? 'whole RSS' : 'RssAnon'}`.padEnd(26)}${sampleLine(m.peak)}`,
    );
    if (m.last.anon === null || m.peak.anon === null)
      lines.push(
        "    (the whole RSS, total=, is all the process held, as top shows it: the replay's RSS is the allocator's memory alone, and the difference is the rest of the process: code, libraries, stacks, the recorder's own memory; a replay above it makes pages resident that the program did not write)",
      );
  }
  return lines;
}

function sampleLine(x: MeasuredSample): string {
  const where = x.event < 0 ? 'before the first event' : `after event ${x.event}`;
  const mark = x.mark === null ? '' : ` (mark ${x.mark})`;
  const heap = x.heap === null ? '' : `, allocator's memory ${formatBytes(x.heap)}`;
  if (x.anon === null) {
    const rest = x.total! - x.modelled;
    // More in the replay than in the whole process: the replay wrote pages the program did not.
    const diff =
      rest < 0
        ? `${formatBytes(-rest)} more than the whole process held`
        : `the rest of the process ${formatBytes(rest)}`;
    return `${where}${mark}: whole RSS ${formatBytes(x.total!)}${heap}; replay ${formatBytes(x.modelled)}, ${diff}`;
  }
  const rec = x.recorder === null ? '' : `, of which the recorder's own ${formatBytes(x.recorder)}`;
  const total = x.total === undefined ? '' : `, whole RSS ${formatBytes(x.total)}`;
  return `${where}${mark}: RssAnon ${formatBytes(x.anon)}${rec}${total}${heap}; replay ${formatBytes(x.modelled)}`;
}

/** A mallinfo2 field as glibc's struct holds it (digits only, as a C program would print it). */
function pad(n: number): string {
  return String(n).padStart(12);
}
