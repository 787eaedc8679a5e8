/**
 * glibc's own abort messages (malloc_printerr), for the corruption checks a trace can reach, such
 * as a double free. The model raises them as a GlibcAbort; the replay loop reports the message
 * with the event that caused it, exactly as glibc prints it before abort().
 */

export const GLIBC_ABORT = {
  FREE_INVALID_POINTER: 'free(): invalid pointer',
  FREE_INVALID_SIZE: 'free(): invalid size',
  DOUBLE_FREE_TCACHE: 'free(): double free detected in tcache 2',
  INVALID_NEXT_SIZE_FAST: 'free(): invalid next size (fast)',
  DOUBLE_FREE_FASTTOP: 'double free or corruption (fasttop)',
  DOUBLE_FREE_TOP: 'double free or corruption (top)',
  DOUBLE_FREE_OUT: 'double free or corruption (out)',
  DOUBLE_FREE_PREV: 'double free or corruption (!prev)',
  INVALID_NEXT_SIZE_NORMAL: 'free(): invalid next size (normal)',
  CORRUPTED_PREV_SIZE_CONSOLIDATING: 'corrupted size vs. prev_size while consolidating',
  MUNMAP_INVALID_POINTER: 'munmap_chunk(): invalid pointer',
  MREMAP_INVALID_POINTER: 'mremap_chunk(): invalid pointer',
  REALLOC_INVALID_POINTER: 'realloc(): invalid pointer',
  REALLOC_INVALID_OLD_SIZE: 'realloc(): invalid old size',
  REALLOC_INVALID_NEXT_SIZE: 'realloc(): invalid next size',
  CORRUPTED_TOP_SIZE: 'malloc(): corrupted top size',
  BREAK_ADJUSTED: 'break adjusted to free malloc space',
} as const;

export type GlibcAbortMessage = (typeof GLIBC_ABORT)[keyof typeof GLIBC_ABORT];

/** glibc would print `message` and abort the process here. */
export class GlibcAbort extends Error {
  readonly kind = 'glibc-abort' as const;
  constructor(readonly glibcMessage: GlibcAbortMessage) {
    super(glibcMessage);
    this.name = 'GlibcAbort';
  }
}

/** malloc_printerr */
export function mallocPrinterr(message: GlibcAbortMessage): never {
  throw new GlibcAbort(message);
}
