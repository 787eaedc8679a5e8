/**
 * The brk-failure fallback of sysmalloc, which the differential suite cannot reach (the native
 * replayer does not block the program break). Expected figures are glibc 2.36's with the break
 * blocked by a mapping and mmap disabled (M_MMAP_MAX 0), measured by test/native/probes.test.ts
 * ('the brk-failure fallback'): docs/glibc-facts.md#brk-fallback, #brk-fallback-later. 2.36 passes
 * sysmalloc_mmap_fallback's size arguments the wrong way round, so the first fallback is rounded
 * to 1 MiB.
 */

import { describe, expect, it } from 'vitest';
import { libcMalloc, mallopt, mallocUsableSize } from '../../src/core/api.js';
import { M } from '../../src/core/constants.js';
import { Process } from '../../src/core/state.js';
import { Kernel } from '../../src/kernel/kernel.js';
import { mallinfo2 } from '../../src/core/stats.js';
import { checkProcess } from '../../src/core/check.js';

describe('sysmalloc when the break cannot grow', () => {
  it('falls back to mmap: 4 MiB the first time (1 MiB rounding), page-rounded afterwards', () => {
    const s = new Process(new Kernel({ maxBrk: 0x21000 }));
    mallopt(s, M.MMAP_MAX, 0);
    libcMalloc(s, 24);
    expect(s.kernel.brkEnd - s.kernel.brkBase).toBe(0x21000);
    const brkCalls = s.kernel.syscalls.brk;

    const a = libcMalloc(s, 3 << 20);
    expect(s.kernel.syscalls.brk).toBe(brkCalls + 1); // the failed brk
    expect(s.kernel.syscalls.mmap).toBe(1);
    expect(s.kernel.mappings.at(-1)!.end - s.kernel.mappings.at(-1)!.start).toBe(4 << 20);
    expect(s.main.systemMem).toBe(0x21000 + (4 << 20));
    expect(s.main.contiguous).toBe(false);
    expect(mallocUsableSize(s, a)).toBe((3 << 20) + 8);
    // The old top was fenced off and freed into the unsorted bin.
    expect(mallinfo2(s).ordblks).toBe(2);

    libcMalloc(s, 3 << 20);
    const m = s.kernel.mappings;
    expect(m.some((x) => x.end - x.start === 0x321000)).toBe(true);
    expect(s.main.systemMem).toBe(0x21000 + (4 << 20) + 0x321000);
    expect(s.ck.size[s.main.top]).toBe(135152);
    checkProcess(s, 1);
  });
});
