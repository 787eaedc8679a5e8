/*
 * replay: replays a ptsim trace on this machine's real glibc malloc and writes the same fidelity
 * log and summary as `ptsim replay`, so the tests can compare the simulator with the real thing
 * event by event. Written for glibc 2.36 on x86_64 Linux; used only by the tests.
 *
 *   replay TRACE --events OUT.jsonl --summary OUT.json [--stats OUT.txt] [--info OUT.xml]
 *          [--no-peak | --rss] [--no-events] [--name DISPLAY] [--verify-rss]
 *          [--rss-by auto|faults|rescans] [--touch recorded|full|none]
 *
 * By default the allocator's RSS is measured after every event for the summary's peakRss; --rss
 * also writes it on each log line ("rss", after "brk"); --no-peak measures only at the end (peakRss
 * is then the final RSS); --verify-rss checks every event's figure against a full page count and
 * dies at the first difference. --rss-by says how the per-event figure is kept: auto (the
 * default) samples page faults while that is cheaper than rescanning the heaps, faults samples
 * them always, rescans never (as when perf_event_open is not available). The summary says which
 * ("rssBy": "faults" when sampling was available, else "rescans"), how many events needed a full
 * scan ("fullScans") and how many were measured from samples ("sampledEvents").
 *
 * Exit status: 0 done; 2 a mistake in the trace (FILE:LINE: ... on stderr); 3 refused to run
 * (the heap was already used, or /proc/self/pagemap or glibc's main arena cannot be read);
 * 4 a resource failure of the replayer itself. When glibc aborts (a double free it detects), the
 * process dies of SIGABRT after writing {"events":N,"abort":true} as the summary, N being the
 * number of events completed (the aborting event's index); a SIGSEGV or SIGBUS (say, a double
 * free of an mmapped chunk, whose header is gone) leaves {"events":N,"signal":"SIGSEGV"}.
 *
 * Keeping the measured heap clean
 * -------------------------------
 * The replayer must not allocate from the heap it measures, yet glibc itself does: in glibc 2.36
 * pthread_create has the creating thread calloc the new thread's DTV (_dl_allocate_tls, 288-byte
 * chunk), stdio allocates its buffers on first use, fopen allocates the FILE. This executable
 * therefore defines malloc, free, calloc, realloc and the memalign family itself, serving them from
 * a private mmap'd pool. glibc's manual ("Replacing malloc") guarantees that libc and the dynamic
 * loader then use these for all their internal allocations, so none of them reach glibc's arenas.
 * The replayed calls reach glibc's allocator through its exported entry points __libc_malloc,
 * __libc_calloc, ... which are the real implementations. (In a recorded program the DTV and stdio
 * allocations go through malloc like any other call, so they are part of the trace already; the
 * replayer must not add its own.)
 *
 * Threads
 * -------
 * Each trace thread is a real pthread; the thread of the first event is the process's main thread
 * (glibc attaches the main arena to the thread that initialises malloc, and our start-up check runs
 * mallinfo2 -> ptmalloc_init on the main thread). So the main arena is the main thread's even when
 * another trace thread allocates first, as in a program: there the main thread created that thread,
 * and pthread_create's calloc of the new thread's DTV initialised malloc in the main thread
 * (docs/glibc-facts.md#main-thread-arena). Events run strictly in trace order: a baton (one
 * futex word per thread) is handed to the thread of the next event, so exactly one thread is ever
 * inside the allocator. `N exit` makes thread N return from its start routine, which runs
 * __libc_thread_freeres -> __malloc_arena_thread_freeres (tcache flushed, arena put on the free
 * list); the main thread joins it before the next event. The main thread itself cannot be torn
 * down that way: glibc 2.36 runs no __libc_thread_freeres for a main thread that calls pthread_exit
 * (see __libc_start_call_main), and that function is not exported, so an exit of the first trace
 * thread only ends its trace thread number, as pthread_exit on the main thread would.
 *
 * Resident memory
 * ---------------
 * The program's writes follow the touch model ptsim's --touch names (docs/trace-format.md,
 * "Extensions"), with memset (program_write): `full` (the default, unless the trace says `# touches recorded`)
 * writes every requested byte right after each call (fidelity-log.md); `recorded` (the default
 * for a trace that says so) writes blocks of 4096 bytes or more only where their `#:touch`
 * records say, right after the event the records follow, before it is measured, and smaller
 * blocks whole, and from a `# touches incomplete from here` line on, as `full` does (the large
 * blocks live there written whole); `none` writes nothing. glibc's own writes are glibc's.
 * `#:rss` lines are skipped.
 * RSS counts
 * pages of the allocator's memory (the main heap [B0, brk), each heap of the other arenas, each
 * live mmapped chunk) that /proc/self/pagemap shows present and exclusively mapped (mincore would
 * also count the shared zero page that a read of untouched memory maps). The final `rss` is such
 * a full count. After every event the figure comes from a bitmap of the heaps' resident pages,
 * kept up to date without scanning the heaps while they are big: the page faults of every replay
 * thread are sampled with perf_event_open, one sample per fault with its address, and counted;
 * the faulted pages that lie in the heaps are looked up in pagemap and added, and the ranges that
 * a lowered break, a shrunk heap or a deleted heap gave back are taken out (malloc_trim, which
 * discards pages inside free chunks, gets a full scan). While the heaps are small, rescanning
 * them after an event that faulted is cheaper, and sampling is switched off. Mmapped chunks are
 * counted once, after the event that creates them. A scan costs about 35 ns a page; sampling adds
 * 0.3 to 0.5 us to a fault of 2 to 3 us. See "RSS after every event" below for the details and
 * the fallback. THP is disabled for the process (PR_SET_THP_DISABLE) so that no huge page changes
 * residency behind glibc's back, nor maps many pages with one fault.
 *
 * Other glibc versions
 * --------------------
 * The same source runs on Debian's builds of glibc 2.31 to 2.44 (test/helpers/glibc-builds.ts),
 * under their own loader: what differs is read at run time (struct malloc_state lost its
 * fastbins in 2.43, see ms_layout; before 2.35 the loader moves the break when GLIBC_TUNABLES
 * is set, see tunables_copy), or at compile time for a glibc without mallinfo2 (before 2.33),
 * which needs a binary built against its own headers and libraries anyway. The summary's
 * "glibc" is gnu_get_libc_version(). The rest (heap_info's first four fields, HEAP_MAX_SIZE,
 * the mmapped chunk's prev_size as its offset in the mapping, the arena ring) is the same in all.
 *
 * Not replayed: malloc-check (libc_malloc_debug.so would be bypassed by the __libc_* calls) and
 * hugetlb tunables (heap_for_ptr here assumes 64 MiB heaps).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <link.h>
#include <linux/futex.h>
#include <linux/perf_event.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* glibc's allocator proper, exported next to the public names we interpose. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

#if !__GLIBC_PREREQ(2, 33)
/*
 * Built against a glibc older than 2.33 (a replayer for glibc 2.31, built with that glibc's own
 * headers and libraries): there is no mallinfo2, so its figures come from mallinfo, whose int
 * fields glibc fills from size_t sums that wrap modulo 2^32. Read back as unsigned they are exact
 * up to 4 GiB (as signed ints they would turn negative past 2 GiB); the summary says
 * "mallinfoBy":"mallinfo" so that a reader knows the limit.
 */
#define MALLINFO_BY_MALLINFO 1
struct mallinfo2 {
  size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};
static struct mallinfo2 mallinfo2(void) {
  struct mallinfo m = mallinfo();
  struct mallinfo2 r = {(unsigned)m.arena,   (unsigned)m.ordblks,  (unsigned)m.smblks,   (unsigned)m.hblks,
                        (unsigned)m.hblkhd,  (unsigned)m.usmblks,  (unsigned)m.fsmblks,  (unsigned)m.uordblks,
                        (unsigned)m.fordblks, (unsigned)m.keepcost};
  return r;
}
#endif

#define EXIT_TRACE 2
#define EXIT_REFUSE 3
#define EXIT_RESOURCE 4

#define PAGE 4096UL
/* Layout facts of glibc 2.36 on x86_64 (malloc/malloc.c, malloc/arena.c). The same from 2.26
   to 2.42; glibc 2.43 removed the fastbins (have_fastchunks and fastbinsY[10], 88 bytes) from
   struct malloc_state, which moves everything after flags: the offsets are variables, set from
   the running glibc's version before main_arena is looked for (see ms_layout). heap_info's first
   four fields and HEAP_MAX_SIZE have not changed from 2.26 to 2.44. */
#define HEAP_MAX ((uintptr_t)64 << 20) /* HEAP_MAX_SIZE: heaps are 64 MiB-aligned */
static uintptr_t ms_top = 96;          /* struct malloc_state: top */
static uintptr_t ms_bins = 112;        /* bins[] */
static uintptr_t ms_next = 2160;       /* next (the ring of arenas) */
static uintptr_t ms_size = 2200;
#define MS_TOP ms_top
#define MS_BINS ms_bins
#define MS_NEXT ms_next
#define MS_SIZE ms_size
#define HI_AR_PTR 0                    /* heap_info: ar_ptr, prev, size, mprotect_size */
#define HI_PREV 8
#define HI_SIZE 16
#define HI_MPROTECT 24
#define IS_MMAPPED 2
#define NON_MAIN_ARENA 4

#define WORD(addr) (*(const uintptr_t *)(uintptr_t)(addr))

static void die(int code, const char *msg) __attribute__((noreturn));

/* ------------------------------------------------------------------------------------------ */
/* The private pool behind the interposed malloc family.                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * A bump allocator over one large MAP_NORESERVE reservation: only touched pages cost memory.
 * Every block has a 16-byte header holding its requested size (for realloc). free gives memory
 * back only when the block is the most recent one; libc and ld.so allocate little. The first call
 * may come from the dynamic loader before main, while the process is still single-threaded, so
 * the lazy initialisation needs no lock; the bump itself is a CAS because a thread starting up
 * can allocate while its creator runs.
 */
#define POOL_BYTES ((uintptr_t)4 << 30)
static uintptr_t pool_base, pool_end, pool_top;
static unsigned long foreign_frees;

static void pool_init(void) {
  if (pool_base) return;
  void *m = mmap(NULL, POOL_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) die(EXIT_RESOURCE, "replay: cannot map the private allocation pool\n");
  pool_base = (uintptr_t)m;
  pool_end = pool_base + POOL_BYTES;
  pool_top = pool_base;
}

static inline int in_pool(const void *p) { return pool_base && (uintptr_t)p - pool_base < POOL_BYTES; }

static void *pool_alloc(size_t size, size_t align) {
  if (!pool_base) pool_init();
  if (size > POOL_BYTES) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t sz = (size + 15) & ~(uintptr_t)15;
  uintptr_t old = __atomic_load_n(&pool_top, __ATOMIC_RELAXED), user, end;
  do {
    user = (old + 16 + align - 1) & ~(uintptr_t)(align - 1);
    end = user + sz;
    if (end > pool_end) {
      errno = ENOMEM;
      return NULL;
    }
  } while (!__atomic_compare_exchange_n(&pool_top, &old, end, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
  ((size_t *)user)[-2] = size;
  return (void *)user;
}

static inline size_t pool_size(const void *p) { return ((const size_t *)p)[-2]; }

static void pool_free(void *p) {
  uintptr_t u = (uintptr_t)p;
  uintptr_t end = u + ((pool_size(p) + 15) & ~(uintptr_t)15);
  /* Only the most recent block can be taken back. */
  __atomic_compare_exchange_n(&pool_top, &end, u - 16, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static size_t pow2_at_least(size_t a) {
  size_t p = 16;
  while (p < a && p) p <<= 1;
  return p;
}

void *malloc(size_t size) { return pool_alloc(size, 16); }

void free(void *p) {
  if (!p) return;
  if (in_pool(p)) {
    pool_free(p);
    return;
  }
  /* Not ours: memory glibc's allocator handed out. Should never happen; pass it on and count. */
  __atomic_add_fetch(&foreign_frees, 1, __ATOMIC_RELAXED);
  __libc_free(p);
}

void *calloc(size_t n, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  void *p = pool_alloc(bytes, 16);
  if (p) memset(p, 0, bytes); /* a rolled-back block may be dirty */
  return p;
}

void *realloc(void *p, size_t size) {
  if (!p) return pool_alloc(size, 16);
  if (!in_pool(p)) {
    __atomic_add_fetch(&foreign_frees, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, size);
  }
  size_t old = pool_size(p);
  if (size <= old) return p;
  void *q = pool_alloc(size, 16);
  if (q) memcpy(q, p, old);
  return q;
}

void *memalign(size_t align, size_t size) { return pool_alloc(size, pow2_at_least(align)); }
void *aligned_alloc(size_t align, size_t size) { return pool_alloc(size, pow2_at_least(align)); }
void *valloc(size_t size) { return pool_alloc(size, PAGE); }
void *pvalloc(size_t size) { return pool_alloc(size ? (size + PAGE - 1) & ~(PAGE - 1) : PAGE, PAGE); }

int posix_memalign(void **out, size_t align, size_t size) {
  if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0 || align == 0) return EINVAL;
  void *p = pool_alloc(size, pow2_at_least(align));
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Output: the fidelity log goes through one big buffer, written with write() only.             */
/* ------------------------------------------------------------------------------------------ */

#define LOG_CAP (1u << 20)
static char log_buf[LOG_CAP];
static size_t log_len;
static int fd_events = -1, fd_summary = -1, fd_pagemap = -1;
static unsigned long events_done; /* events completed (= log lines written) */

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return; /* nothing sensible to do from here (we may be in a signal handler) */
    p += w;
    n -= (size_t)w;
  }
}

static void log_flush(void) {
  if (fd_events >= 0 && log_len) write_all(fd_events, log_buf, log_len);
  log_len = 0;
}

static void die(int code, const char *msg) {
  log_flush();
  write_all(2, msg, strlen(msg));
  _exit(code);
}

static inline char *put_u64(char *o, uint64_t v) {
  char t[20];
  int n = 0;
  do {
    t[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *o++ = t[--n];
  return o;
}

static inline char *put_i64(char *o, int64_t v) {
  if (v < 0) {
    *o++ = '-';
    return put_u64(o, -(uint64_t)v);
  }
  return put_u64(o, (uint64_t)v);
}

static inline char *put_lit(char *o, const char *s, size_t n) {
  memcpy(o, s, n);
  return o + n;
}
#define PUT(o, lit) put_lit(o, lit, sizeof(lit) - 1)

/* ------------------------------------------------------------------------------------------ */
/* Token keys and the table of live tokens (its code follows the parser).                      */
/* ------------------------------------------------------------------------------------------ */

/*
 * Live tokens sit in a small open-addressing table (linear probing, backward-shift deletion)
 * whose entries carry the first 16 bytes of the key, so a lookup touches one or two cache lines
 * and not the trace. A freed token goes to an append-only log (the graves), read only when a
 * free or realloc names a token that is not live: a double free, or a mistake in the trace.
 */
struct tok {
  uint64_t k0, k1;  /* the key's first 16 bytes, zero-padded */
  const char *key;  /* the whole key, in the mapped trace */
  void *ptr;        /* the real block; NULL when the real call returned NULL */
  uint64_t req;     /* its requested size, for the realloc touch */
  uint32_t len, hash;
  int32_t mm;       /* index in the mmapped-chunk registry, or -1 */
  uint32_t used;
  uint64_t pad;
};
struct grave {
  const char *key;
  uint64_t len;
  void *ptr; /* freeing this token again frees this address again */
  uint64_t req;
};
struct key {
  const char *s;
  uint32_t n, h;
  uint64_t k0, k1;
};

static struct tok *live;
static uint64_t live_mask, live_n;
static struct grave *graves;
static uint64_t n_graves, max_graves;

/* Reading 16 bytes from any key is safe: the trace is followed by a page of zeros. */
static inline void key_of(struct key *k, const char *s, uint32_t n) {
  uint64_t w0, w1, h;
  memcpy(&w0, s, 8);
  memcpy(&w1, s + 8, 8);
  if (n < 8) {
    w0 &= ~0ull >> (64 - 8 * n);
    w1 = 0;
  } else if (n < 16) {
    w1 = n == 8 ? 0 : w1 & ~0ull >> (128 - 8 * n);
  }
  h = (w0 ^ (uint64_t)n * 0x9E3779B97F4A7C15ull) * 0xff51afd7ed558ccdull;
  h = (h ^ (h >> 32) ^ w1) * 0xc4ceb9fe1a85ec53ull;
  for (uint32_t i = 16; i < n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (n - i < 8) w &= ~0ull >> (64 - 8 * (n - i));
    h = (h ^ (h >> 29) ^ w) * 0xff51afd7ed558ccdull;
  }
  h ^= h >> 32;
  h *= 0x9E3779B97F4A7C15ull;
  h ^= h >> 29;
  k->s = s;
  k->n = n;
  k->h = (uint32_t)h;
  k->k0 = w0;
  k->k1 = w1;
}

static inline int key_eq(const struct key *a, const struct key *b) {
  return a->n == b->n && a->k0 == b->k0 && a->k1 == b->k1 && (a->n <= 16 || memcmp(a->s + 16, b->s + 16, a->n - 16) == 0);
}

/* ------------------------------------------------------------------------------------------ */
/* The trace: mapped read-only with a zeroed page behind it, parsed by hand.                   */
/* ------------------------------------------------------------------------------------------ */

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_MEMALIGN, OP_VALLOC, OP_PVALLOC, OP_FREE, OP_TRIM, OP_MALLOPT, OP_EXIT };
static const char *const op_name[] = {"malloc", "calloc", "realloc", "memalign", "valloc",
                                      "pvalloc", "free", "malloc_trim", "mallopt", "exit"};
static const unsigned char op_len[] = {6, 6, 7, 8, 6, 7, 4, 11, 7, 4};

struct event {
  uint64_t index, line;
  uint32_t tid;
  int op;
  uint64_t n1, n2; /* SIZE / NMEMB,SIZE / ALIGN,SIZE / PAD */
  int param, value; /* mallopt */
  struct key in, out; /* the tokens taken and returned */
  int has_in, has_out;  /* 0 for the NULL token, or none */
};

static const char *trace_name;
static const char *tp, *tend; /* parse cursor and end of the mapped trace */
static uint64_t cur_line, next_index;
static struct event cur; /* the event being run; handed between threads with the baton */

static void trace_error(uint64_t line, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void trace_error(uint64_t line, const char *fmt, ...) {
  char msg[1024];
  int n = snprintf(msg, sizeof msg, "%s:%llu: ", trace_name, (unsigned long long)line);
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(msg + n, sizeof msg - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof msg - 2) n = (int)sizeof msg - 2;
  msg[n++] = '\n';
  msg[n] = 0;
  die(EXIT_TRACE, msg);
}

static void map_trace(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    char m[600];
    snprintf(m, sizeof m, "replay: cannot open %s: %s\n", path, strerror(errno));
    die(EXIT_TRACE, m);
  }
  struct stat st;
  if (fstat(fd, &st) < 0) die(EXIT_RESOURCE, "replay: fstat failed\n");
  size_t size = (size_t)st.st_size;
  /* Reserve the file's pages plus one zero page, then map the file over the start: every field
     can then be read 8 bytes at a time and the text ends in NUL bytes. */
  size_t span = ((size + PAGE - 1) & ~(PAGE - 1)) + PAGE;
  char *base = mmap(NULL, span, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) die(EXIT_RESOURCE, "replay: cannot map the trace\n");
  if (size > 0 && mmap(base, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED)
    die(EXIT_RESOURCE, "replay: cannot map the trace\n");
  close(fd);
  /* Fault the whole file in now: page faults inside the timed loop made it slow and erratic
     (MAP_POPULATE did not populate this mapping). */
  volatile char sink = 0;
  for (size_t o = 0; o < size; o += PAGE) sink ^= base[o];
  (void)sink;
  tp = base;
  tend = base + size;
}

/* The first min(n, 8) bytes of s as a word (the zero page behind the trace makes the read safe). */
static inline uint64_t word8(const char *s, size_t n) {
  uint64_t w;
  memcpy(&w, s, 8);
  return n >= 8 ? w : w & ~(~0ull << (8 * n));
}

static uint64_t op_word[OP_EXIT + 1];

static void init_op_words(void) {
  for (int i = 0; i <= OP_EXIT; i++) {
    char b[16] = {0};
    memcpy(b, op_name[i], op_len[i]);
    op_word[i] = word8(b, op_len[i]);
  }
}

static inline int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Next field: a run of bytes above ' '. Returns its start; *e gets its end. */
static inline const char *field(const char **e) {
  const char *p = tp;
  while (is_blank(*p)) p++;
  const char *s = p;
  for (;;) { /* 8 bytes at a time: the first byte below '!' ends the field */
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t stop = (w - 0x2121212121212121ull) & ~w & 0x8080808080808080ull;
    if (stop) {
      p += __builtin_ctzll(stop) >> 3;
      break;
    }
    p += 8;
  }
  *e = p;
  tp = p;
  return s;
}

static inline int parse_u64(const char *s, const char *e, uint64_t *out) {
  uint64_t v = 0;
  if (s == e) return 0;
  if (e - s > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (s += 2; s < e; s++) {
      unsigned c = (unsigned char)*s, d;
      if (c - '0' < 10) d = c - '0';
      else if ((c | 0x20) - 'a' < 6) d = (c | 0x20) - 'a' + 10;
      else return 0;
      if (v >> 60) return 0;
      v = v << 4 | d;
    }
  } else if (e - s <= 19) { /* cannot overflow */
    for (; s < e; s++) {
      unsigned d = (unsigned)(unsigned char)*s - '0';
      if (d > 9) return 0;
      v = v * 10 + d;
    }
  } else {
    for (; s < e; s++) {
      unsigned d = (unsigned)(unsigned char)*s - '0';
      if (d > 9) return 0;
      if (v > (UINT64_MAX - d) / 10) return 0;
      v = v * 10 + d;
    }
  }
  *out = v;
  return 1;
}

static int parse_int(const char *s, const char *e, int *out) {
  int neg = 0;
  uint64_t v;
  if (s < e && (*s == '-' || *s == '+')) neg = *s++ == '-';
  if (!parse_u64(s, e, &v)) return 0;
  if (neg ? v > (uint64_t)INT_MAX + 1 : v > (uint64_t)INT_MAX) return 0;
  *out = neg ? (int)-(int64_t)v : (int)v;
  return 1;
}

static inline __attribute__((always_inline)) uint64_t num_arg(const char *what) {
  const char *e, *s = field(&e);
  uint64_t v;
  if (s == e) trace_error(cur_line, "%s: missing %s", op_name[cur.op], what);
  if (!parse_u64(s, e, &v)) trace_error(cur_line, "%s: bad %s '%.*s'", op_name[cur.op], what, (int)(e - s), s);
  return v;
}

/* `0` (or any spelling of the number zero) is NULL. */
static inline int null_token(const char *s, uint32_t n) {
  uint32_t i = 0;
  if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) i = 2;
  for (; i < n; i++)
    if (s[i] != '0') return 0;
  return 1;
}

static inline __attribute__((always_inline)) void token_arg(struct key *k, int *has, const char *what) {
  const char *e, *s = field(&e);
  if (s == e) trace_error(cur_line, "%s: missing %s", op_name[cur.op], what);
  if (e - s > 0xffff) trace_error(cur_line, "%s: token too long", op_name[cur.op]);
  uint32_t n = (uint32_t)(e - s);
  *has = !null_token(s, n);
  if (*has) {
    key_of(k, s, n);
    __builtin_prefetch(&live[k->h & live_mask]); /* its table entry is needed soon */
  }
}

static const struct {
  const char *name;
  int value;
} mallopt_params[] = {
    {"M_MXFAST", 1},          {"M_NLBLKS", 2},         {"M_GRAIN", 3},          {"M_KEEP", 4},
    {"M_TRIM_THRESHOLD", -1}, {"M_TOP_PAD", -2},       {"M_MMAP_THRESHOLD", -3}, {"M_MMAP_MAX", -4},
    {"M_CHECK_ACTION", -5},   {"M_PERTURB", -6},       {"M_ARENA_TEST", -7},    {"M_ARENA_MAX", -8},
};

/* What the program writes (see "Resident memory" above). */
enum { TOUCH_RECORDED, TOUCH_FULL, TOUCH_NONE };
static int touch_mode = -1; /* --touch; -1 until the trace's header has said */
static int header_touches;  /* the trace says `# touches recorded` */
static int header_incomplete; /* ... and `# touches incomplete from here` before its first event */
#define TOUCH_MIN 4096      /* blocks this big or more get their #:touch records in recorded */

static inline int line_is(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 && (p + n == end || is_blank(p[n]));
}

/* Whether [p, end), just after the '#' and its blanks, is `touches incomplete from here`, alone or
   followed by ': ' and the recorder's reason. */
static int incomplete_line(const char *p, const char *end) {
  static const char words[] = "touches incomplete from here";
  size_t n = sizeof words - 1;
  return (size_t)(end - p) >= n && memcmp(p, words, n) == 0 && (p + n == end || p[n] == ':' || is_blank(p[n]));
}

/* A comment line before the first event ([p, end), p at the '#'): `# touches recorded`, and a
   touch record, which cannot stand there. */
static void header_comment(const char *p, const char *end) {
  if (line_is(p, end, "#:touch")) {
    tp = p + 7;
    const char *e, *s = field(&e);
    trace_error(cur_line, "#:touch of %.*s before the first event: no block is live yet", (int)(e - s), s);
  }
  if (p[1] == ':') return;
  p++;
  while (p < end && is_blank(*p)) p++;
  if (!line_is(p, end, "touches")) return;
  if (incomplete_line(p, end)) {
    header_incomplete = 1;
    return;
  }
  p += 7;
  while (p < end && is_blank(*p)) p++;
  const char *v = p;
  while (p < end && !is_blank(*p)) p++;
  const char *ve = p;
  while (p < end && is_blank(*p)) p++;
  if (ve - v != 8 || memcmp(v, "recorded", 8) != 0 || p != end)
    trace_error(cur_line, "malformed header line: expected '# touches recorded'");
  header_touches = 1;
}

/* Parses the next event line into cur. Returns 0 at the end of the trace. */
static int parse_next(void) {
  const char *p, *e, *s;
  for (;;) {
    if (tp >= tend) return 0;
    cur_line++;
    p = tp;
    while (is_blank(*p)) p++;
    if (*p == '\n') {
      tp = p + 1;
      continue;
    }
    if (p >= tend) {
      tp = tend;
      return 0;
    }
    if (*p == '#') {
      const char *nl = memchr(p, '\n', (size_t)(tend - p));
      if (next_index == 0) header_comment(p, nl ? nl : tend);
      tp = nl ? nl + 1 : tend;
      continue;
    }
    break;
  }
  if (next_index == 0 && touch_mode < 0) touch_mode = header_touches ? TOUCH_RECORDED : TOUCH_FULL;
  /* incomplete from the start: no block is live yet, every block is written at its call */
  if (next_index == 0 && header_incomplete && touch_mode == TOUCH_RECORDED) touch_mode = TOUCH_FULL;
  tp = p;
  s = field(&e);
  if (*s == '@') { /* @TIME: checked, then ignored */
    uint64_t t;
    if (!parse_u64(s + 1, e, &t)) trace_error(cur_line, "bad time field '%.*s'", (int)(e - s), s);
    s = field(&e);
  }
  {
    uint64_t tid = 0;
    int ok = s < e && e - s <= 10;
    for (const char *q = s; ok && q < e; q++) {
      ok = (unsigned)(unsigned char)*q - '0' < 10;
      tid = tid * 10 + (uint64_t)(*q - '0');
    }
    if (s == e) trace_error(cur_line, "missing thread number");
    if (!ok || tid > UINT32_MAX) trace_error(cur_line, "bad thread number '%.*s'", (int)(e - s), s);
    cur.tid = (uint32_t)tid;
  }
  s = field(&e);
  {
    size_t n = (size_t)(e - s);
    uint64_t w = word8(s, n);
    int op = -1;
    for (int i = 0; i <= OP_EXIT; i++)
      if (n == op_len[i] && w == op_word[i] && (n <= 8 || memcmp(s + 8, op_name[i] + 8, n - 8) == 0)) {
        op = i;
        break;
      }
    if (n == 0) trace_error(cur_line, "missing operation");
    if (op < 0) trace_error(cur_line, "unknown operation '%.*s'", (int)n, s);
    cur.op = op;
  }
  cur.has_in = cur.has_out = 0;
  cur.n1 = cur.n2 = 0;
  switch (cur.op) {
  case OP_MALLOC:
  case OP_VALLOC:
  case OP_PVALLOC:
    cur.n1 = num_arg("SIZE");
    token_arg(&cur.out, &cur.has_out, "PTR");
    break;
  case OP_CALLOC:
    cur.n1 = num_arg("NMEMB");
    cur.n2 = num_arg("SIZE");
    token_arg(&cur.out, &cur.has_out, "PTR");
    break;
  case OP_MEMALIGN:
    cur.n1 = num_arg("ALIGN");
    cur.n2 = num_arg("SIZE");
    token_arg(&cur.out, &cur.has_out, "PTR");
    break;
  case OP_REALLOC:
    token_arg(&cur.in, &cur.has_in, "OLD");
    cur.n1 = num_arg("SIZE");
    token_arg(&cur.out, &cur.has_out, "NEW");
    break;
  case OP_FREE:
    token_arg(&cur.in, &cur.has_in, "PTR");
    break;
  case OP_TRIM:
    cur.n1 = num_arg("PAD");
    break;
  case OP_MALLOPT: {
    s = field(&e);
    if (s == e) trace_error(cur_line, "mallopt: missing PARAM");
    int found = 0;
    if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
      for (size_t i = 0; i < sizeof mallopt_params / sizeof mallopt_params[0]; i++)
        if (strlen(mallopt_params[i].name) == (size_t)(e - s) && memcmp(s, mallopt_params[i].name, (size_t)(e - s)) == 0) {
          cur.param = mallopt_params[i].value;
          found = 1;
        }
    } else {
      found = parse_int(s, e, &cur.param);
    }
    if (!found) trace_error(cur_line, "mallopt: unknown parameter '%.*s'", (int)(e - s), s);
    s = field(&e);
    if (s == e) trace_error(cur_line, "mallopt: missing VALUE");
    if (!parse_int(s, e, &cur.value)) trace_error(cur_line, "mallopt: bad VALUE '%.*s'", (int)(e - s), s);
    break;
  }
  case OP_EXIT:
    break;
  }
  p = tp;
  while (is_blank(*p)) p++;
  if (*p == '^') { /* ^ID: the call stack the call was made from, nothing to the allocator */
    const char *q = p + 1;
    while ((unsigned)(unsigned char)*q - '0' < 10) q++;
    if (q > p + 1 && (q >= tend || is_blank(*q) || *q == '\n')) {
      p = q;
      while (is_blank(*p)) p++;
    }
  }
  if (p < tend && *p != '\n') {
    s = p;
    while ((unsigned char)*p > ' ') p++;
    if (p == s) trace_error(cur_line, "unexpected byte 0x%02x after %s", (unsigned char)*s, op_name[cur.op]);
    trace_error(cur_line, "unexpected field '%.*s' after %s", (int)(p - s), s, op_name[cur.op]);
  }
  tp = p < tend ? p + 1 : tend;
  cur.line = cur_line;
  cur.index = next_index++;
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Resident pages, from /proc/self/pagemap.                                                    */
/* ------------------------------------------------------------------------------------------ */

static void *map_anon(size_t bytes) {
  void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) die(EXIT_RESOURCE, "replay: out of memory (mmap)\n");
  return m;
}

/* Makes fresh anonymous memory of ours resident with one madvise: cheaper than a fault a page, and
   the kernel populates it without taking page faults, so none lands in the perf ring buffer
   (which samples only the faults the CPU takes). */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static void populate(void *p, size_t bytes) {
  if (madvise(p, bytes, MADV_POPULATE_WRITE) != 0) memset(p, 0, bytes); /* kernels before 5.14 */
}

#define PM_BATCH 8192
static uint64_t pm_buf[PM_BATCH];

static uint64_t resident_pages(uintptr_t start, uintptr_t end) {
  uint64_t n = 0, pg = start / PAGE, last = (end + PAGE - 1) / PAGE;
  while (pg < last) {
    size_t k = last - pg > PM_BATCH ? PM_BATCH : (size_t)(last - pg);
    ssize_t r = pread(fd_pagemap, pm_buf, k * 8, (off_t)(pg * 8));
    if (r < 8) die(EXIT_RESOURCE, "replay: reading /proc/self/pagemap failed\n");
    k = (size_t)r / 8;
    for (size_t i = 0; i < k; i++) n += (pm_buf[i] >> 63) & (pm_buf[i] >> 56) & 1; /* present && exclusive */
    pg += k;
  }
  return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Tokens and the blocks they name.                                                            */
/* ------------------------------------------------------------------------------------------ */

/*
 * Live mmapped chunks. Nothing but the event that creates one (glibc's header, perturb, our
 * touch) and the #:touch records of its block write to it, and it is unmapped as a whole (a
 * realloc that mremaps it ends its record and starts another), so when RSS is measured after every
 * event (the default) its resident pages are counted from pagemap right after our touch, again
 * after each touch record, and kept.
 */
struct mmrec {
  uintptr_t base, len;
  uint64_t pages;
  struct tok *owner; /* the live token naming it, or NULL for a block the trace does not name */
};
#define MM_MAX (1u << 22)
static struct mmrec *mm;
static uint32_t mm_n;
static uint64_t mm_pages;
/* How often each way out of residency was taken (reported in the summary, so that the tests can
   show that --verify-rss saw each of them): pages given back by lowering the break, by shrinking a
   heap, by deleting one; mmapped chunks unmapped, reallocated in mmap; malloc_trim; thread exits. */
static struct {
  unsigned long brk, shrink, del, munmap, mremap, trim, exit;
} paths;
static int count_now; /* RSS after every event: count mmapped chunks as they appear */

static void mm_add(void *p, struct tok *owner) {
  uintptr_t chunk = (uintptr_t)p - 16;
  uintptr_t prev = WORD(chunk), size = WORD(chunk + 8) & ~(uintptr_t)7;
  if (mm_n >= MM_MAX) die(EXIT_RESOURCE, "replay: too many live mmapped chunks\n");
  struct mmrec *r = &mm[mm_n];
  r->base = chunk - prev; /* prev_size of an mmapped chunk: its offset in its mapping */
  r->len = prev + size;
  r->pages = count_now ? resident_pages(r->base, r->base + r->len) : 0;
  r->owner = owner;
  mm_pages += r->pages;
  if (owner) owner->mm = (int32_t)mm_n;
  mm_n++;
}

static void mm_del(int32_t i) {
  paths.munmap++;
  mm_pages -= mm[i].pages;
  mm[i] = mm[--mm_n];
  if ((uint32_t)i < mm_n && mm[i].owner) mm[i].owner->mm = i;
}

static struct tok *live_find(const struct key *k) {
  for (uint64_t i = k->h & live_mask;; i = (i + 1) & live_mask) {
    struct tok *t = &live[i];
    if (!t->used) return NULL;
    if (t->hash == k->h && t->len == k->n && t->k0 == k->k0 && t->k1 == k->k1 &&
        (k->n <= 16 || memcmp(t->key + 16, k->s + 16, k->n - 16) == 0))
      return t;
  }
}

/* An entry moved inside the table: its mmapped chunk must follow it. */
static inline void moved(struct tok *t) {
  if (t->mm >= 0) mm[t->mm].owner = t;
}

static void live_grow(void) {
  uint64_t ncap = (live_mask + 1) * 2;
  struct tok *old = live, *nt = map_anon(ncap * sizeof *nt);
  populate(nt, ncap * sizeof *nt); /* now, rather than a fault at a time during later events */
  for (uint64_t i = 0; i <= live_mask; i++) {
    if (!old[i].used) continue;
    uint64_t j = old[i].hash & (ncap - 1);
    while (nt[j].used) j = (j + 1) & (ncap - 1);
    nt[j] = old[i];
    moved(&nt[j]);
  }
  munmap(old, (live_mask + 1) * sizeof *old);
  live = nt;
  live_mask = ncap - 1;
}

/* The free entry a token that is not live goes to; a live token there is a mistake in the trace. */
static struct tok *live_claim(const struct key *k, uint64_t line) {
  if ((live_n + 1) * 2 > live_mask + 1) live_grow();
  for (uint64_t i = k->h & live_mask;; i = (i + 1) & live_mask) {
    struct tok *t = &live[i];
    if (!t->used) return t;
    if (t->hash == k->h && t->len == k->n && t->k0 == k->k0 && t->k1 == k->k1 &&
        (k->n <= 16 || memcmp(t->key + 16, k->s + 16, k->n - 16) == 0))
      trace_error(line, "token %.*s is reused while still live (it was never freed)", (int)k->n, k->s);
  }
}

/* Names a block (maybe NULL) with the token whose entry live_claim gave. */
static void live_fill(struct tok *t, const struct key *k, void *ptr, uint64_t req) {
  t->k0 = k->k0;
  t->k1 = k->k1;
  t->key = k->s;
  t->ptr = ptr;
  t->req = ptr ? req : 0;
  t->len = k->n;
  t->hash = k->h;
  t->mm = -1;
  t->used = 1;
  live_n++;
  if (ptr && (((const size_t *)ptr)[-1] & IS_MMAPPED)) mm_add(ptr, t);
}

/* Graves are faulted in a megabyte at a time with one madvise (see populate), which costs much
   less than a page fault every 128 frees; end_event does it after the measurement, so that the
   rescans' fault count (see window_open), which counts these too, does not see it. */
static uint64_t graves_ready;

static void graves_populate(void) {
  uint64_t chunk = (1u << 20) / sizeof *graves, n = max_graves - graves_ready < chunk ? max_graves - graves_ready : chunk;
  populate(&graves[graves_ready], n * sizeof *graves);
  graves_ready += n;
}

/* The token's block was freed (or moved by realloc): bury the token. */
static void live_remove(struct tok *t) {
  if (n_graves >= graves_ready) {
    if (n_graves >= max_graves) die(EXIT_RESOURCE, "replay: too many frees\n");
    graves_populate();
  }
  graves[n_graves++] = (struct grave){t->key, t->len, t->ptr, t->req};
  if (t->mm >= 0) mm_del(t->mm);
  live_n--;
  uint64_t i = (uint64_t)(t - live);
  for (uint64_t j = i;;) {
    j = (j + 1) & live_mask;
    if (!live[j].used) break;
    uint64_t home = live[j].hash & live_mask;
    /* move j into the hole at i unless its home lies cyclically in (i, j] */
    if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
      live[i] = live[j];
      moved(&live[i]);
      i = j;
    }
  }
  live[i].used = 0;
}

/* The most recent burial of a token, or NULL if it was never live. */
static const struct grave *grave_find(const struct key *k) {
  for (uint64_t i = n_graves; i-- > 0;)
    if (graves[i].len == k->n && memcmp(graves[i].key, k->s, k->n) == 0) return &graves[i];
  return NULL;
}
/* ------------------------------------------------------------------------------------------ */
/* Where a block lives: arenas, heaps, offsets.                                                */
/* ------------------------------------------------------------------------------------------ */

static uintptr_t main_arena; /* found by scanning libc's data, see find_main_arena */
static uintptr_t B0;         /* the program break before the first allocation */

#define MAX_ARENAS 65536
static uintptr_t arena_by_no[MAX_ARENAS]; /* arena_by_no[k-1] = the k-th arena created */
static unsigned n_arenas;

/* _int_new_arena inserts each new arena right after main_arena in the `next` ring, so the ring
   reads main, newest, ..., oldest: arena k is the (n-k)-th after main. */
static void arenas_refresh(void) {
  unsigned n = 0;
  for (uintptr_t a = WORD(main_arena + MS_NEXT); a != main_arena && n < MAX_ARENAS; a = WORD(a + MS_NEXT)) n++;
  unsigned j = 0;
  for (uintptr_t a = WORD(main_arena + MS_NEXT); a != main_arena && j < n; a = WORD(a + MS_NEXT)) arena_by_no[n - 1 - j++] = a;
  n_arenas = n;
}

static long arena_number(uintptr_t ar) {
  static uintptr_t last_ar;
  static long last_no;
  if (ar == last_ar) return last_no;
  for (int pass = 0; pass < 2; pass++) {
    for (unsigned k = 0; k < n_arenas; k++)
      if (arena_by_no[k] == ar) {
        last_ar = ar;
        last_no = (long)k + 1;
        return last_no;
      }
    arenas_refresh();
  }
  return -2; /* not in the ring: cannot happen with glibc 2.36 */
}

static uintptr_t cur_brk(void) { return (uintptr_t)sbrk(0); }

/* Resident pages of the main heap [B0, brk) and of every heap of every other arena. Non-main
   heaps are found from each arena's top chunk (always in the arena's newest heap) and the
   heap_info prev chain; [heap, heap + mprotect_size) is all of a heap that can be resident. */
static uint64_t heap_pages(void) {
  uint64_t pages = resident_pages(B0, cur_brk());
  for (uintptr_t a = WORD(main_arena + MS_NEXT); a != main_arena; a = WORD(a + MS_NEXT))
    for (uintptr_t h = WORD(a + MS_TOP) & ~(HEAP_MAX - 1); h; h = WORD(h + HI_PREV))
      pages += resident_pages(h, h + WORD(h + HI_MPROTECT));
  return pages;
}

/* The allocator's memory, counted afresh: heaps and every live mmapped chunk. */
static uint64_t rss_full(void) {
  mm_pages = 0;
  for (uint32_t i = 0; i < mm_n; i++) mm_pages += resident_pages(mm[i].base, mm[i].base + mm[i].len);
  return (heap_pages() + mm_pages) * PAGE;
}

/* ------------------------------------------------------------------------------------------ */
/* RSS after every event: the set of the heaps' resident pages.                                */
/* ------------------------------------------------------------------------------------------ */

/*
 * We keep the set of resident pages of the heaps (the main heap [B0, brk) and each non-main heap
 * [h, h + mprotect_size), as heap_pages counts them) as one bitmap per 64 MiB region, plus a
 * running count, and bring it up to date after each event from what happened during the event.
 *
 * Pages stop being resident only when the break goes down (systrim), when a non-main heap shrinks
 * (shrink_heap: everything from its new size up is gone, whether glibc used MADV_DONTNEED or mmap
 * MAP_FIXED) or is deleted (munmap of the whole heap), and in malloc_trim (mtrim's MADV_DONTNEED
 * inside free chunks). After each event the break and the chain of heaps are compared with what
 * they were after the previous one and the ranges that went away are cleared from the set; after
 * malloc_trim the heaps are scanned afresh. Growth (brk up, a heap's size up, a new heap) adds
 * nothing by itself: its pages count once written.
 *
 * Pages become resident only through page faults of the thread that runs the event (it is the
 * only one running), and there are two ways to learn which:
 *
 * - Sampling. Before any other thread exists, the main thread opens with perf_event_open one
 *   sampling event per CPU it may run on (software event PERF_COUNT_SW_PAGE_FAULTS, this task on
 *   that CPU, one sample per fault carrying the faulting address, inherited by every thread
 *   created later), each with its ring buffer: a thread's samples go to the ring of the CPU it
 *   faulted on. (One event per thread, opened by each thread, cost 0.3 to 0.7 ms per thread here,
 *   perf_event_open and the ring's pages; an inherited event costs nothing measurable at
 *   pthread_create.) After the event, every sampled page that lies in the heaps and is not in the
 *   set yet is looked up in /proc/self/pagemap (contiguous pages with one pread) and added if it
 *   is present and exclusively mapped: a read fault maps the shared zero page, which does not
 *   count. Faults anywhere else (our own tables, buffers, stacks, mmapped chunks, which the
 *   registry above counts) are ignored, so the replayer's memory never counts. That no fault went
 *   unsampled is checked after every event: an inherited counting event of the same faults on
 *   any CPU must have grown by exactly the number of samples taken (plus those the kernel reports
 *   lost). The count is read before the rings' heads are, and nothing in between touches memory
 *   that could fault (the rings are faulted in when opened). If it does not add up (lost
 *   samples, throttling, a CPU that came online) the heaps are scanned afresh for that event.
 * - Rescans. The heaps are scanned afresh after an event in which the running thread took a page
 *   fault (its minor-fault count from getrusage), the heaps changed, or another thread ran (an
 *   exit). Exact as well, but a fault anywhere in the event, our own first writes included, costs
 *   a scan of every heap.
 *
 * Sampling costs every fault of the process some 0.3 to 0.5 us (the faults in mmapped chunks and
 * in our own memory included) and every event a little (reading the count, perf's work when the
 * baton passes to another thread; the counting event alone made small replays 5% slower), while
 * a rescan costs about 35 ns a page of the heaps: with heaps of a few MiB rescans are the cheaper
 * way. The faults of each event are known either way (the sample count while sampling, getrusage
 * otherwise), so we know what either way would have cost, and switch sampling and its count on
 * (PERF_EVENT_IOC_ENABLE, which reaches every inherited copy) when it would have cost less than
 * half what the rescans did over the last events, and off in the opposite case (--rss-by auto,
 * the default). The set is exact in both modes, and a page is only ever added when pagemap says
 * it counts; only the speed depends on the choice. When perf_event_open or a ring is not
 * available (another kernel, a stricter perf_event_paranoid, RLIMIT_MEMLOCK) the run measures by
 * rescans, with a note on stderr; --rss-by rescans does the same on purpose, --rss-by faults
 * samples from the first event to the last.
 *
 * This rests on two facts of glibc 2.36. Within one call it never shrinks a heap (or the break)
 * and grows it again, nor deletes a heap and makes a new one at the same address: the calls that
 * do both (realloc, memalign) allocate first and free after. And a page never becomes resident
 * without a fault of the running thread: THP is off for the process, anonymous memory has no
 * fault-around, and nothing writes the heaps through the kernel. --verify-rss checks the set page
 * by page against a full scan after every event.
 *
 * A thread's `exit` runs __libc_thread_freeres in the exiting thread, which writes the heaps (its
 * tcache is freed): its samples are in the rings, written as each fault happened, by the time the
 * main thread has joined it and ends the event; without sampling, the exit gets a rescan.
 */
#define REGION_PAGES (HEAP_MAX / PAGE)    /* 16384 pages: a region is a non-main heap's span */
#define REGION_WORDS (REGION_PAGES / 64) /* its bitmap: 256 words, 2 KiB */
#define RING_PAGES 128                    /* 512 KiB per CPU, 16 bytes a sample: a 128 MiB memset */
#define RING_MASK ((uint64_t)RING_PAGES * PAGE - 1)
#define CAND_MAX 65536                    /* pages waiting for their pagemap look-up */
#define HEAPS_MAX 65536                   /* non-main heaps alive at once (4 TiB of heaps) */

struct region {
  uint64_t key;       /* region number (address >> 26) + 1; 0: a free entry */
  uint64_t *bits;     /* one bit per page in the set; NULL while none has been */
  uint64_t size, lim; /* the non-main heap based here, as last seen: size and mprotect_size */
  uint64_t stamp;     /* the look at the heaps that last saw that heap (0: none) */
};
static struct region *regions;
static uint64_t regions_mask, regions_n;
static uint64_t *bits_free, *bits_end; /* bitmaps are carved from mmapped blocks */

struct ring {
  struct perf_event_mmap_page *meta;
  const unsigned char *data;
  uint64_t head;  /* data_head, as taken right after the count */
  int fd;
  int throttled;  /* between a PERF_RECORD_THROTTLE and its UNTHROTTLE: faults go unsampled */
};
static struct ring rings[CPU_SETSIZE];
static int n_rings, fd_count = -1;
static uint64_t faults_counted; /* the counting event's value at the last look */
static unsigned long unsampled;  /* events after which not every fault had been sampled */

enum { END_CALL, END_TRIM, END_EXIT }; /* how an event ends, for end_event */
enum { BY_AUTO, BY_FAULTS, BY_RESCANS };
static int rss_by = BY_AUTO;          /* --rss-by: choose by cost, always sample, never sample */
static int perf_ok = 1;               /* sampling is available (else rescans only) */
static int sampling;                  /* sampling and its count are switched on */
static unsigned long full_scans;      /* events measured by a full scan of the heaps */
static unsigned long sampled_events;  /* events measured from samples */
static uint64_t set_pages;            /* pages in the set */
static uint64_t main_lo, main_hi;     /* the main heap's pages, [B0, brk) as last seen */
static uint64_t heap_stamp;           /* looks at the heaps so far */
static uintptr_t *heaps_now, *heaps_before;
static uint32_t n_heaps_now, n_heaps_before;
static uint64_t *cand;
static size_t n_cand;
static uint64_t last_fault_page = UINT64_MAX;

static void region_table(uint64_t cap) {
  struct region *old = regions;
  uint64_t old_cap = old ? regions_mask + 1 : 0;
  regions = map_anon(cap * sizeof *regions);
  regions_mask = cap - 1;
  for (uint64_t i = 0; i < old_cap; i++) {
    if (!old[i].key) continue;
    uint64_t j = (old[i].key * 0x9E3779B97F4A7C15ull) >> 40 & regions_mask;
    while (regions[j].key) j = (j + 1) & regions_mask;
    regions[j] = old[i];
  }
  if (old) munmap(old, old_cap * sizeof *old);
}

/* The entry of region number rn; NULL if it has none and create is 0. Entries are never removed:
   a region that held a heap keeps its (cleared) bitmap for the next heap there. */
static struct region *region_find(uint64_t rn, int create) {
  uint64_t key = rn + 1;
  for (uint64_t i = (key * 0x9E3779B97F4A7C15ull) >> 40 & regions_mask;; i = (i + 1) & regions_mask) {
    struct region *r = &regions[i];
    if (r->key == key) return r;
    if (r->key) continue;
    if (!create) return NULL;
    if ((regions_n + 1) * 2 > regions_mask + 1) {
      region_table((regions_mask + 1) * 2);
      return region_find(rn, 1);
    }
    regions_n++;
    r->key = key;
    return r;
  }
}

static uint64_t *region_bits(struct region *r) {
  if (!r->bits) {
    if (bits_free == bits_end) {
      bits_free = map_anon(256 * REGION_WORDS * 8);
      bits_end = bits_free + 256 * REGION_WORDS;
    }
    r->bits = bits_free; /* fresh from mmap: zero */
    bits_free += REGION_WORDS;
  }
  return r->bits;
}

static inline void set_add(uint64_t pg) {
  uint64_t *b = region_bits(region_find(pg / REGION_PAGES, 1)), i = pg % REGION_PAGES, m = 1ull << (i % 64);
  if (!(b[i / 64] & m)) {
    b[i / 64] |= m;
    set_pages++;
  }
}

/* Removes the pages [p0, p1) from the set. */
static void set_clear(uint64_t p0, uint64_t p1) {
  while (p0 < p1) {
    uint64_t rn = p0 / REGION_PAGES, end = (rn + 1) * REGION_PAGES < p1 ? (rn + 1) * REGION_PAGES : p1;
    struct region *r = region_find(rn, 0);
    if (r && r->bits) {
      for (uint64_t i = p0 % REGION_PAGES, e = i + (end - p0); i < e;) {
        uint64_t w = i / 64, lo = i % 64, n = e - i < 64 - lo ? e - i : 64 - lo;
        uint64_t m = (n == 64 ? ~0ull : ((1ull << n) - 1)) << lo;
        set_pages -= (uint64_t)__builtin_popcountll(r->bits[w] & m);
        r->bits[w] &= ~m;
        i += n;
      }
    }
    p0 = end;
  }
}

/* Reads the pagemap entries of k pages from pg into pm_buf. */
static void pagemap_read(uint64_t pg, size_t k) {
  size_t got = 0;
  while (got < k) {
    ssize_t r = pread(fd_pagemap, pm_buf + got, (k - got) * 8, (off_t)((pg + got) * 8));
    if (r < 8) die(EXIT_RESOURCE, "replay: reading /proc/self/pagemap failed\n");
    got += (size_t)r / 8;
  }
}

static inline int counts(uint64_t e) { return (int)((e >> 63) & (e >> 56) & 1); } /* present && exclusive */

/*
 * Looks at the heaps after an event and takes out of the set what went away: the pages above a
 * lowered break, those at and above the new size of a heap that shrank, all of a heap that is
 * gone. Also records each heap's range for the fault filter below, and their pages in all
 * (heap_span). Returns 1 if the break or any heap changed since the last look.
 */
static uint64_t heap_span;

static int heaps_look(void) {
  uint64_t hi = (cur_brk() + PAGE - 1) / PAGE;
  int changed = hi != main_hi;
  if (hi < main_hi) { /* systrim */
    set_clear(hi, main_hi);
    paths.brk++;
  }
  main_hi = hi;
  heap_span = main_hi - main_lo;
  heap_stamp++;
  uintptr_t *t = heaps_before;
  heaps_before = heaps_now;
  heaps_now = t;
  n_heaps_before = n_heaps_now;
  n_heaps_now = 0;
  for (uintptr_t a = WORD(main_arena + MS_NEXT); a != main_arena; a = WORD(a + MS_NEXT))
    for (uintptr_t h = WORD(a + MS_TOP) & ~(HEAP_MAX - 1); h; h = WORD(h + HI_PREV)) {
      uint64_t size = WORD(h + HI_SIZE), lim = WORD(h + HI_MPROTECT);
      struct region *r = region_find(h / HEAP_MAX, 1);
      if (r->stamp == heap_stamp - 1 && size < r->size) { /* shrink_heap */
        set_clear((h + size) / PAGE, (h + r->lim) / PAGE);
        paths.shrink++;
      }
      changed |= r->stamp != heap_stamp - 1 || size != r->size || lim != r->lim;
      r->size = size;
      r->lim = lim;
      r->stamp = heap_stamp;
      heap_span += lim / PAGE;
      if (n_heaps_now >= HEAPS_MAX) die(EXIT_RESOURCE, "replay: too many heaps\n");
      heaps_now[n_heaps_now++] = h;
    }
  changed |= n_heaps_now != n_heaps_before;
  for (uint32_t i = 0; i < n_heaps_before; i++) {
    uintptr_t h = heaps_before[i];
    struct region *r = region_find(h / HEAP_MAX, 0);
    if (r->stamp != heap_stamp) { /* delete_heap */
      set_clear(h / PAGE, (h + r->lim) / PAGE);
      paths.del++;
      changed = 1;
    }
  }
  return changed;
}

/* Is page pg in the heaps as last looked at? */
static inline int in_heaps(uint64_t pg) {
  if (pg - main_lo < main_hi - main_lo) return 1;
  struct region *r = region_find(pg / REGION_PAGES, 0);
  return r && r->stamp == heap_stamp && pg % REGION_PAGES < r->lim / PAGE;
}

static inline int in_set(uint64_t pg) {
  struct region *r = region_find(pg / REGION_PAGES, 0);
  return r && r->bits && (r->bits[pg % REGION_PAGES / 64] >> (pg % 64) & 1);
}

/* Looks the waiting pages up in pagemap, consecutive ones with one pread, and adds those that
   count. A page may wait twice (a read fault, then a write fault): adding is idempotent. */
static void cand_flush(void) {
  for (size_t i = 0; i < n_cand;) {
    uint64_t p0 = cand[i], p1 = p0 + 1;
    size_t j = i + 1;
    while (j < n_cand && p1 - p0 < PM_BATCH && (cand[j] == p1 || cand[j] == p1 - 1)) {
      if (cand[j] == p1) p1++;
      j++;
    }
    pagemap_read(p0, (size_t)(p1 - p0));
    for (uint64_t k = 0; k < p1 - p0; k++)
      if (counts(pm_buf[k])) set_add(p0 + k);
    i = j;
  }
  n_cand = 0;
}

static inline void note_fault(uint64_t addr) {
  uint64_t pg = addr / PAGE;
  if (pg == last_fault_page) return; /* a memset faults page after page: skip repeats cheaply */
  last_fault_page = pg;
  if (!in_heaps(pg) || in_set(pg)) return;
  if (n_cand == CAND_MAX) cand_flush();
  cand[n_cand++] = pg;
}

static int fault_event(int cpu, int sample, int exclude_kernel) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_SOFTWARE;
  a.config = PERF_COUNT_SW_PAGE_FAULTS;
  a.sample_period = sample ? 1 : 0; /* every fault, or only count them */
  a.disabled = 1;                   /* off until sampling pays: see above */
  a.sample_type = sample ? PERF_SAMPLE_ADDR : 0;
  a.inherit = 1; /* threads created later have their own copy, feeding this ring and count */
  a.exclude_kernel = (unsigned)exclude_kernel;
  a.exclude_hv = 1;
  return (int)syscall(SYS_perf_event_open, &a, 0, cpu, -1, PERF_FLAG_FD_CLOEXEC);
}

static void faults_close(void) {
  for (int i = 0; i < n_rings; i++) {
    munmap(rings[i].meta, (size_t)(RING_PAGES + 1) * PAGE);
    close(rings[i].fd);
  }
  n_rings = 0;
  if (fd_count >= 0) close(fd_count);
  fd_count = -1;
}

/* Opens the sampling (one ring per CPU this process may run on) and the count. Returns NULL, or
   why not (then nothing stays open). Must run before the first thread is created. */
static const char *faults_open(void) {
  static cpu_set_t cpus;
  if (sched_getaffinity(0, sizeof cpus, &cpus) != 0) return "sched_getaffinity failed";
  int xk = 0;
  fd_count = fault_event(-1, 0, 0);
  if (fd_count < 0 && (errno == EACCES || errno == EPERM)) {
    /* perf_event_paranoid >= 2 without privileges: user-mode faults only. That loses nothing here:
       no system call of ours or of glibc's allocator writes into the heaps. */
    xk = 1;
    fd_count = fault_event(-1, 0, 1);
  }
  if (fd_count < 0) return "perf_event_open failed";
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &cpus)) continue;
    int fd = fault_event(cpu, 1, xk);
    if (fd < 0) {
      int e = errno;
      faults_close();
      errno = e;
      return "perf_event_open failed";
    }
    void *m = mmap(NULL, (size_t)(RING_PAGES + 1) * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      close(fd);
      faults_close();
      errno = e;
      return "cannot map a perf ring buffer";
    }
    struct ring *r = &rings[n_rings++];
    r->fd = fd;
    r->meta = m;
    r->data = (const unsigned char *)m + PAGE;
    /* Fault the ring in now: reading it later must not fault (see the count check). */
    volatile unsigned char sink = 0;
    for (size_t o = 0; o < (size_t)RING_PAGES * PAGE; o += PAGE) sink ^= r->data[o];
    (void)sink;
  }
  return NULL;
}

/* Takes the samples of one ring up to r->head. Returns the samples and lost samples it saw; sets
   *missed if the kernel dropped or withheld some. Records are 8-byte aligned and made of 8-byte
   words, so no word straddles the end. */
static uint64_t ring_drain(struct ring *r, int *missed) {
  uint64_t tail = r->meta->data_tail, seen = 0;
  if (r->throttled) *missed = 1;
  last_fault_page = UINT64_MAX;
  while (tail < r->head) {
    struct perf_event_header h;
    uint64_t w;
    memcpy(&h, r->data + (tail & RING_MASK), sizeof h);
    if (h.type == PERF_RECORD_SAMPLE) {
      memcpy(&w, r->data + ((tail + 8) & RING_MASK), 8); /* the address */
      note_fault(w);
      seen++;
    } else if (h.type == PERF_RECORD_LOST) {
      memcpy(&w, r->data + ((tail + 16) & RING_MASK), 8); /* after the id: how many */
      seen += w;
      *missed = 1;
    } else if (h.type == PERF_RECORD_THROTTLE) {
      *missed = r->throttled = 1;
    } else if (h.type == PERF_RECORD_UNTHROTTLE) {
      *missed = 1;
      r->throttled = 0;
    }
    if (h.size < sizeof h) { /* cannot happen; do not loop forever */
      *missed = 1;
      tail = r->head;
      break;
    }
    tail += h.size;
  }
  __atomic_store_n(&r->meta->data_tail, tail, __ATOMIC_RELEASE);
  return seen;
}

/* Takes every sample since the last call from all the rings. Returns 1 if some fault of the
   process may have gone unsampled. */
static uint64_t fault_count(void) {
  uint64_t count;
  if (read(fd_count, &count, sizeof count) != sizeof count) die(EXIT_RESOURCE, "replay: reading the page-fault count failed\n");
  return count;
}

static int faults_drain(void) {
  uint64_t count = fault_count();
  for (int i = 0; i < n_rings; i++) rings[i].head = __atomic_load_n(&rings[i].meta->data_head, __ATOMIC_ACQUIRE);
  int missed = 0;
  uint64_t seen = 0;
  for (int i = 0; i < n_rings; i++) seen += ring_drain(&rings[i], &missed);
  if (seen != count - faults_counted) missed = 1;
  faults_counted = count;
  return missed;
}

/* The set, forgotten and read again from pagemap over every heap. */
static void heaps_rescan(void) {
  for (uint64_t i = 0; i <= regions_mask; i++)
    if (regions[i].bits) memset(regions[i].bits, 0, REGION_WORDS * 8);
  set_pages = 0;
  n_cand = 0;
  full_scans++;
  for (uint32_t i = 0; i <= n_heaps_now; i++) {
    uint64_t p = i < n_heaps_now ? heaps_now[i] / PAGE : main_lo;
    uint64_t end = i < n_heaps_now ? (heaps_now[i] + region_find(heaps_now[i] / HEAP_MAX, 0)->lim) / PAGE : main_hi;
    while (p < end) {
      uint64_t stop = (p / REGION_PAGES + 1) * REGION_PAGES; /* one region at a time */
      size_t k = (size_t)((end < stop ? end : stop) - p);
      if (k > PM_BATCH) k = PM_BATCH;
      pagemap_read(p, k);
      uint64_t *bits = NULL;
      for (size_t j = 0; j < k; j++) {
        if (!counts(pm_buf[j])) continue;
        if (!bits) bits = region_bits(region_find(p / REGION_PAGES, 1));
        uint64_t i_r = (p + j) % REGION_PAGES;
        bits[i_r / 64] |= 1ull << (i_r % 64); /* the bitmaps were cleared above */
        set_pages++;
      }
      p += k;
    }
  }
}

/* The set checked page by page against pagemap, over every heap; dies at the first difference.
   Returns the heaps' resident pages, as heap_pages counts them. */
static uint64_t set_verify(void) {
  uint64_t in_ranges = 0;
  /* The ranges scanned below are those of the last look at the heaps: check them against the
     arenas, walked afresh as heap_pages walks them. */
  uint32_t n = 0;
  int same = main_hi == (cur_brk() + PAGE - 1) / PAGE;
  for (uintptr_t a = WORD(main_arena + MS_NEXT); a != main_arena; a = WORD(a + MS_NEXT))
    for (uintptr_t h = WORD(a + MS_TOP) & ~(HEAP_MAX - 1); h; h = WORD(h + HI_PREV), n++)
      same = same && n < n_heaps_now && heaps_now[n] == h && region_find(h / HEAP_MAX, 0)->lim == WORD(h + HI_MPROTECT);
  if (!same || n != n_heaps_now) {
    char m[200];
    snprintf(m, sizeof m, "replay: --verify-rss: after event %llu the heaps are not where the set has them\n", (unsigned long long)cur.index);
    die(EXIT_RESOURCE, m);
  }
  for (uint32_t i = 0; i <= n_heaps_now; i++) {
    uint64_t p = i < n_heaps_now ? heaps_now[i] / PAGE : main_lo;
    uint64_t end = i < n_heaps_now ? (heaps_now[i] + region_find(heaps_now[i] / HEAP_MAX, 0)->lim) / PAGE : main_hi;
    while (p < end) {
      uint64_t stop = (p / REGION_PAGES + 1) * REGION_PAGES; /* one region at a time */
      size_t k = (size_t)((end < stop ? end : stop) - p);
      if (k > PM_BATCH) k = PM_BATCH;
      pagemap_read(p, k);
      const struct region *r = region_find(p / REGION_PAGES, 0);
      const uint64_t *bits = r ? r->bits : NULL;
      for (size_t j = 0; j < k; j++) {
        uint64_t i_r = (p + j) % REGION_PAGES;
        int want = counts(pm_buf[j]), have = bits && (bits[i_r / 64] >> (i_r % 64) & 1);
        in_ranges += (uint64_t)want;
        if (want != have) {
          char m[300];
          snprintf(m, sizeof m, "replay: --verify-rss: after event %llu, heap page %#llx is %s\n",
                   (unsigned long long)cur.index, (unsigned long long)((p + j) * PAGE),
                   want ? "resident but missing from the set" : "in the set but not resident");
          die(EXIT_RESOURCE, m);
        }
      }
      p += k;
    }
  }
  uint64_t all = 0;
  for (uint64_t i = 0; i <= regions_mask; i++)
    if (regions[i].bits)
      for (uint64_t w = 0; w < REGION_WORDS; w++) all += (uint64_t)__builtin_popcountll(regions[i].bits[w]);
  if (all != in_ranges || all != set_pages) {
    char m[300];
    snprintf(m, sizeof m, "replay: --verify-rss: after event %llu the set holds %llu pages and counts %llu, but the heaps have %llu\n",
             (unsigned long long)cur.index, (unsigned long long)all, (unsigned long long)set_pages, (unsigned long long)in_ranges);
    die(EXIT_RESOURCE, m);
  }
  return in_ranges;
}

static void set_init(void) {
  region_table(1024);
  heaps_now = map_anon(HEAPS_MAX * sizeof *heaps_now);
  heaps_before = map_anon(HEAPS_MAX * sizeof *heaps_before);
  cand = map_anon(CAND_MAX * sizeof *cand);
  main_lo = B0 / PAGE;
  main_hi = (B0 + PAGE - 1) / PAGE;
  heaps_look();
  heaps_rescan(); /* the page B0 is in, if B0 is not page-aligned */
  full_scans = 0;
}

/* Sampling is not available: rescans only. */
static void faults_unavailable(const char *why) {
  char m[300];
  snprintf(m, sizeof m, "replay: note: %s (%s): RSS after each event by rescanning the heaps instead (slower)\n", why, strerror(errno));
  write_all(2, m, strlen(m));
  perf_ok = 0;
}

/* The rescans' trigger: the minor faults of the thread running the event, from its start. */
static uint64_t window_faults;

static uint64_t thread_faults(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (uint64_t)ru.ru_minflt;
}

static void window_open(void) { window_faults = thread_faults(); }

/* Costs in rescanned pages (35 ns), measured here: an event while sampling (the count, the rings,
   perf's work at thread switches), and a sampled fault. */
#define SAMPLE_EVENT_COST 100.0
#define SAMPLE_COST 12.0
#define COST_DECAY (1.0 - 1.0 / 64)
static double cost_rescans, cost_sampling;

static void set_sampling(int on) {
  for (int i = 0; i <= n_rings; i++)
    if (ioctl(i < n_rings ? rings[i].fd : fd_count, on ? PERF_EVENT_IOC_ENABLE : PERF_EVENT_IOC_DISABLE, 0) != 0)
      die(EXIT_RESOURCE, "replay: cannot switch page-fault sampling\n");
  sampling = on;
  /* Compare count and samples from here. Samples left in the rings from before (faults of ours
     since the last drain) are harmless: a page is only added if pagemap says it counts. */
  if (on) faults_drain();
  n_cand = 0;
  cost_rescans = cost_sampling = 0;
}

/* The spans the program's writes populated during the event (program_write, below), which took no
   sampled fault: while sampling, their pages wait for pagemap as sampled ones do. */
#define WROTE_MAX 64
static uint64_t wrote_lo[WROTE_MAX], wrote_hi[WROTE_MAX]; /* pages [lo, hi) */
static int n_wrote;

static void wrote_note(void) {
  for (int i = 0; i < n_wrote; i++)
    for (uint64_t pg = wrote_lo[i]; pg < wrote_hi[i]; pg++) {
      if (!in_heaps(pg) || in_set(pg)) continue;
      if (n_cand == CAND_MAX) cand_flush();
      cand[n_cand++] = pg;
    }
}

/* The RSS after the event, brought up to date from what happened since the previous one (for an
   exit, the thread's teardown too). */
static uint64_t rss_after_event(int how) {
  int changed = heaps_look(), rescan;
  uint64_t faults;
  if (sampling) {
    uint64_t before = faults_counted;
    rescan = faults_drain();
    unsampled += (unsigned long)rescan;
    sampled_events++;
    faults = faults_counted - before;
  } else {
    faults = how == END_EXIT ? 0 : thread_faults() - window_faults; /* another thread's faults */
    rescan = changed || faults || how == END_EXIT;
  }
  paths.trim += how == END_TRIM;
  if (rescan || how == END_TRIM) heaps_rescan();
  else {
    wrote_note();
    cand_flush();
  }
  n_wrote = 0;
  if (perf_ok && rss_by == BY_AUTO) {
    cost_rescans = cost_rescans * COST_DECAY + (double)(changed || faults ? heap_span : 0);
    cost_sampling = cost_sampling * COST_DECAY + SAMPLE_EVENT_COST + SAMPLE_COST * (double)faults;
    if (!sampling && cost_sampling * 2 < cost_rescans) set_sampling(1);
    else if (sampling && cost_rescans * 2 < cost_sampling) set_sampling(0);
  }
  return (set_pages + mm_pages) * PAGE;
}

/* ------------------------------------------------------------------------------------------ */
/* Running one event.                                                                          */
/* ------------------------------------------------------------------------------------------ */

static int want_events = 1, want_peak = 1;
static uint64_t peak_rss;
#define TOUCH_BYTE 0xa5

/*
 * The program's writes (the touch model). A span of POPULATE_MIN bytes or more is made resident
 * with one madvise(MADV_POPULATE_WRITE) over its whole pages, and only its partial first and last
 * pages are written with memset: the same pages become resident, private and exclusive, as a
 * memset would make them, at about half the kernel's time (no fault taken, and none sampled,
 * a page). The contents differ (those pages keep what they held), which glibc cannot see: it never
 * reads a live block's bytes, and blocks this large never reach the tcache, whose key is the one
 * field of a block it looks at on free. As no fault is sampled for those pages, the spans wait
 * here and are noted after the event as their faults would have been (wrote_note); the page-fault
 * count of the thread still grows by one a page, so without sampling the event gets its rescan.
 */
#define POPULATE_MIN (16 * PAGE)

static void program_write(void *p, uint64_t n) {
  uintptr_t a = (uintptr_t)p, e = a + n, a1 = (a + PAGE - 1) & ~(uintptr_t)(PAGE - 1), e1 = e & ~(uintptr_t)(PAGE - 1);
  if (n < POPULATE_MIN || n_wrote == WROTE_MAX || madvise((void *)a1, e1 - a1, MADV_POPULATE_WRITE) != 0) {
    memset(p, TOUCH_BYTE, n);
    return;
  }
  memset(p, TOUCH_BYTE, a1 - a);
  memset((void *)e1, TOUCH_BYTE, e - e1);
  wrote_lo[n_wrote] = a1 / PAGE;
  wrote_hi[n_wrote++] = e1 / PAGE;
}

static inline int mmapped(const void *p) { return (((const size_t *)p)[-1] & IS_MMAPPED) != 0; }

static inline char *log_head(const struct event *e) {
  if (log_len > LOG_CAP - 256) log_flush();
  char *o = log_buf + log_len;
  o = PUT(o, "{\"i\":");
  o = put_u64(o, e->index);
  o = PUT(o, ",\"op\":\"");
  o = put_lit(o, op_name[e->op], op_len[e->op]);
  o = PUT(o, "\",\"tid\":");
  return put_u64(o, e->tid);
}

/* A line is written up to its last keys during the event; end_event adds brk (and rss) once the
   event is measured. */
static char *log_open;
static int want_rss_key; /* --rss */

static inline void log_tail(char *o) { log_open = o; }

static inline void log_close(uint64_t rss) {
  char *o = log_open;
  o = PUT(o, ",\"brk\":");
  o = put_i64(o, (int64_t)(cur_brk() - B0));
  if (want_rss_key) {
    o = PUT(o, ",\"rss\":");
    o = put_u64(o, rss);
  }
  o = PUT(o, "}\n");
  log_len = (size_t)(o - log_buf);
}

static void log_block(const struct event *e, void *r) {
  char *o = log_head(e);
  if (!r) {
    o = PUT(o, ",\"ptr\":null");
  } else {
    uintptr_t p = (uintptr_t)r, head = WORD(p - 8);
    long arena, heap = 0;
    int64_t off;
    if (head & IS_MMAPPED) {
      arena = -1;
      off = (int64_t)WORD(p - 16) + 16; /* prev_size of an mmapped chunk: its lead in the mapping */
    } else if (head & NON_MAIN_ARENA) {
      uintptr_t h = p & ~(HEAP_MAX - 1); /* heap_for_ptr */
      arena = arena_number(WORD(h + HI_AR_PTR));
      for (uintptr_t q = WORD(h + HI_PREV); q; q = WORD(q + HI_PREV)) heap++;
      off = (int64_t)(p - h);
    } else {
      arena = 0;
      off = (int64_t)(p - B0);
    }
    o = PUT(o, ",\"arena\":");
    o = put_i64(o, arena);
    o = PUT(o, ",\"heap\":");
    o = put_i64(o, heap);
    o = PUT(o, ",\"off\":");
    o = put_i64(o, off);
    o = PUT(o, ",\"usable\":");
    o = put_u64(o, malloc_usable_size(r));
  }
  log_tail(o);
}

static int verify_rss; /* --verify-rss: check the RSS of every event against a full count */

static void verify_event(uint64_t r) {
  uint64_t mmp = 0;
  for (uint32_t i = 0; i < mm_n; i++) {
    uint64_t n = resident_pages(mm[i].base, mm[i].base + mm[i].len);
    if (n != mm[i].pages) {
      char m[300];
      snprintf(m, sizeof m, "replay: --verify-rss: after event %llu the mmapped chunk at %#lx has %llu resident pages, not %llu\n",
               (unsigned long long)cur.index, (unsigned long)mm[i].base, (unsigned long long)n, (unsigned long long)mm[i].pages);
      die(EXIT_RESOURCE, m);
    }
    mmp += n;
  }
  uint64_t full = (set_verify() + mmp) * PAGE; /* the page-by-page check is also a full count */
  if (full != r) {
    char m[300];
    snprintf(m, sizeof m, "replay: --verify-rss: after event %llu the RSS is %llu, not %llu\n", (unsigned long long)cur.index,
             (unsigned long long)full, (unsigned long long)r);
    die(EXIT_RESOURCE, m);
  }
}

static uint64_t last_rss;

/* After the event (for an exit, once the thread is joined): measure, then finish its log line. */
static void end_event(int how) {
  uint64_t r = 0;
  if (want_peak) {
    paths.exit += how == END_EXIT;
    r = rss_after_event(how);
    if (verify_rss) verify_event(r);
    if (r > peak_rss) peak_rss = r;
    last_rss = r;
    if (n_graves >= graves_ready && n_graves < max_graves) graves_populate(); /* not during the next event */
  }
  n_wrote = 0; /* without want_peak nothing reads them */
  if (want_events) log_close(r);
  events_done++;
}

static void run_plain(void) {
  if (want_events) log_tail(log_head(&cur));
}

/* The recording got NULL but the call succeeded: the block stays live, unnamed. */
static void unnamed(void *r) {
  if (r && mmapped(r)) mm_add(r, NULL);
}

/*
 * After malloc, calloc, memalign, valloc, pvalloc. A token the recording names but whose real call
 * returned NULL names NULL: freeing it later is a no-op. The token is checked after the call, so
 * that the call overlaps the cache miss on its entry; a token reused while live then stops the
 * replay with the call made but not recorded.
 */
static void run_alloc(void *r, uint64_t req) {
  /* the touch model: the program writes what it asked for (recorded: only a small block) */
  if (r && req && (touch_mode == TOUCH_FULL || (touch_mode == TOUCH_RECORDED && req < TOUCH_MIN)))
    program_write(r, req);
  if (cur.has_out) live_fill(live_claim(&cur.out, cur.line), &cur.out, r, req);
  else unnamed(r);
  if (want_events) log_block(&cur, r);
}

/* The block a free or realloc names. A token freed before yields its old address again, so that
   a double free in the trace is a real double free; a token never seen is a mistake. */
static struct tok *take(const struct key *k, const char *what, void **ptr, uint64_t *req) {
  struct tok *t = live_find(k);
  if (t) {
    *ptr = t->ptr;
    *req = t->req;
    return t;
  }
  const struct grave *g = grave_find(k);
  if (!g) trace_error(cur.line, "%s of %.*s, which was never allocated", what, (int)k->n, k->s);
  *ptr = g->ptr;
  *req = g->req;
  return NULL;
}

static void run_free(void) {
  if (cur.has_in) {
    void *p;
    uint64_t req;
    struct tok *t = take(&cur.in, "free", &p, &req);
    if (t) live_remove(t);
    if (p) __libc_free(p); /* NULL when the allocation failed here: then the free is a no-op */
  }
  run_plain();
}

static void run_realloc(void) {
  const struct key *ki = cur.has_in ? &cur.in : NULL, *ko = cur.has_out ? &cur.out : NULL;
  struct tok *t = NULL;
  void *old = NULL;
  uint64_t oldreq = 0, n = cur.n1;
  if (ki) t = take(ki, "realloc", &old, &oldreq);
  /* NEW may repeat a live OLD: an in-place realloc recorded by address */
  int same = ki && ko && t && key_eq(ki, ko);
  if (ko && !same && live_find(ko)) /* checked without live_claim, which may move t */
    trace_error(cur.line, "token %.*s is reused while still live (it was never freed)", (int)ko->n, ko->s);
  void *r = __libc_realloc(old, n);
  if (!r && !(old && n == 0)) {
    /* The call failed: the old block is untouched (and still named by OLD if it was live). */
    if (ko && !same) live_fill(live_claim(ko, cur.line), ko, NULL, 0);
  } else {
    /* The old block is gone: moved, resized in place, or freed by realloc(p, 0). */
    if (r && (touch_mode == TOUCH_FULL || (touch_mode == TOUCH_RECORDED && n < TOUCH_MIN))) {
      /* The bytes the old block did not have; in recorded, where a big old block was not written
         whole, all of a (small) new block. */
      uint64_t from = touch_mode == TOUCH_RECORDED && oldreq >= TOUCH_MIN ? 0 : oldreq;
      if (n > from) program_write((char *)r + from, n - from);
    }
    if (t && t->mm >= 0 && r && mmapped(r)) paths.mremap++;
    if (t) live_remove(t);
    if (ko) live_fill(live_claim(ko, cur.line), ko, r, n);
    else if (r && ki && n != 0) live_fill(live_claim(ki, cur.line), ki, r, n); /* recorded as failed, yet it worked: OLD names it */
    else unnamed(r);
  }
  if (want_events) log_block(&cur, r);
}

/* The highest page a #:touch record may name for a block of `bytes` (maxTouchPage in ptsim):
   blocks start 16-byte aligned, so the last byte is at most 4080 + bytes - 1 past page 0. */
static inline int64_t max_touch_page(uint64_t bytes) { return bytes == 0 ? -1 : (int64_t)((bytes - 1 + PAGE - 16) / PAGE); }

static void bad_pages(const char *s, const char *e) __attribute__((noreturn));
static void bad_pages(const char *s, const char *e) {
  trace_error(cur_line, "#:touch: malformed page list '%.*s': expected page numbers and ranges like 0-3,7,12-40, or - for none",
              (int)(e - s), s);
}

/* One pass over a page list [s, e): checks it, returns the highest page named (-1 for `-`), and
   with `t` set writes the pages into t's block, clipped to its requested bytes (page 0 holds the
   block's first byte). */
static int64_t pages_pass(const char *s, const char *e, const struct tok *t) {
  if (e - s == 1 && *s == '-') return -1;
  int64_t most = -1;
  for (const char *p = s;;) {
    const char *q = p;
    uint64_t a = 0, b;
    while (p < e && (unsigned)(unsigned char)*p - '0' < 10) a = a * 10 + (uint64_t)(*p++ - '0');
    if (p == q || p - q > 15) bad_pages(s, e);
    b = a;
    if (p < e && *p == '-') {
      q = ++p;
      b = 0;
      while (p < e && (unsigned)(unsigned char)*p - '0' < 10) b = b * 10 + (uint64_t)(*p++ - '0');
      if (p == q || p - q > 15) bad_pages(s, e);
      if (b < a) trace_error(cur_line, "#:touch: page range %llu-%llu runs backwards", (unsigned long long)a, (unsigned long long)b);
    }
    if ((int64_t)b > most) most = (int64_t)b;
    if (t) {
      uintptr_t mem = (uintptr_t)t->ptr, end = mem + t->req, page0 = mem & ~(PAGE - 1);
      uintptr_t from = page0 + a * PAGE, to = page0 + (b + 1) * PAGE;
      if (from < mem) from = mem;
      if (to > end) to = end;
      if (from < to) program_write((void *)from, to - from);
    }
    if (p == e) return most;
    if (*p != ',' || p + 1 == e) bad_pages(s, e);
    p++;
  }
}

/* `#:touch TOKEN PAGES`, tp just after the keyword: the program has made these pages of the live
   block TOKEN resident. Checked in every model, written in recorded. */
static void touch_record(void) {
  const char *e, *s = field(&e), *pe, *ps = field(&pe);
  int args = (s != e) + (ps != pe);
  const char *p = tp;
  while (is_blank(*p)) p++;
  if (args < 2 || (p < tend && *p != '\n'))
    trace_error(cur_line, "#:touch takes TOKEN PAGES, got %s", args < 2 ? (args ? "1 argument" : "0 arguments") : "more");
  if (e - s > 0xffff) trace_error(cur_line, "#:touch: token too long");
  uint32_t n = (uint32_t)(e - s);
  if (null_token(s, n)) trace_error(cur_line, "#:touch of NULL ('%.*s'): a touch record names a live block", (int)n, s);
  int64_t most = pages_pass(ps, pe, NULL);
  struct key k;
  key_of(&k, s, n);
  struct tok *t = live_find(&k);
  if (!t) trace_error(cur_line, "#:touch of %.*s, which is not a live block (never allocated, or freed or reallocated since)", (int)n, s);
  if (!t->ptr) return; /* the real call returned NULL: nothing to write */
  if (most > max_touch_page(t->req))
    trace_error(cur_line, "#:touch of %.*s: page %lld is past the block's last requested byte", (int)n, s, (long long)most);
  if (touch_mode != TOUCH_RECORDED) return;
  pages_pass(ps, pe, t);
  if (t->mm >= 0 && count_now) { /* its pages are counted from the registry: count them again */
    struct mmrec *m = &mm[t->mm];
    uint64_t pages = resident_pages(m->base, m->base + m->len);
    mm_pages += pages - m->pages;
    m->pages = pages;
  }
}

/* `# touches incomplete from here` after an event: from here the recording's touch records do not
   cover every page, so the recorded model becomes the full one: the large blocks live now are
   written whole, and every later block at its call (ptsim's Replayer.touchesIncomplete). */
static void touches_incomplete(void) {
  if (touch_mode != TOUCH_RECORDED) return;
  touch_mode = TOUCH_FULL;
  for (uint64_t i = 0; i <= live_mask; i++) {
    struct tok *t = &live[i];
    if (!t->used || !t->ptr || t->req < TOUCH_MIN) continue;
    program_write(t->ptr, t->req);
    if (t->mm >= 0 && count_now) {
      struct mmrec *m = &mm[t->mm];
      uint64_t pages = resident_pages(m->base, m->base + m->len);
      mm_pages += pages - m->pages;
      m->pages = pages;
    }
  }
}

/* After an event, before it is measured: the records that follow it, up to the next event line,
   which parse_next reads. */
static void apply_records(void) {
  for (;;) {
    const char *p = tp;
    while (p < tend && is_blank(*p)) p++;
    if (p >= tend || (*p != '\n' && *p != '#')) return;
    cur_line++;
    const char *nl = memchr(p, '\n', (size_t)(tend - p));
    if (line_is(p, nl ? nl : tend, "#:touch")) {
      tp = p + 7;
      touch_record();
    } else if (*p == '#' && p[1] != ':') {
      const char *w = p + 1;
      while (w < (nl ? nl : tend) && is_blank(*w)) w++;
      if (incomplete_line(w, nl ? nl : tend)) touches_incomplete();
    }
    tp = nl ? nl + 1 : tend;
  }
}

static void run_event(void) {
  uint64_t bytes;
  switch (cur.op) {
  case OP_MALLOC:
    run_alloc(__libc_malloc(cur.n1), cur.n1);
    break;
  case OP_CALLOC:
    if (__builtin_mul_overflow(cur.n1, cur.n2, &bytes)) bytes = 0; /* the call fails anyway */
    run_alloc(__libc_calloc(cur.n1, cur.n2), bytes);
    break;
  case OP_MEMALIGN:
    run_alloc(__libc_memalign(cur.n1, cur.n2), cur.n2);
    break;
  case OP_VALLOC:
    run_alloc(__libc_valloc(cur.n1), cur.n1);
    break;
  case OP_PVALLOC:
    run_alloc(__libc_pvalloc(cur.n1), cur.n1);
    break;
  case OP_REALLOC:
    run_realloc();
    break;
  case OP_FREE:
    run_free();
    break;
  case OP_TRIM:
    malloc_trim(cur.n1);
    run_plain();
    break;
  case OP_MALLOPT:
    mallopt(cur.param, cur.value);
    run_plain();
    break;
  case OP_EXIT: /* only the main thread gets here; see the comment at the top */
    run_plain();
    break;
  }
  apply_records();
  end_event(cur.op == OP_TRIM ? END_TRIM : END_CALL);
}

/* ------------------------------------------------------------------------------------------ */
/* Threads and the baton.                                                                      */
/* ------------------------------------------------------------------------------------------ */

enum { CMD_RUN = 1, CMD_JOIN, CMD_FINISH };
#define MAX_THREADS 4096
#define THREAD_STACK (256u << 10)

struct slot {
  int go; /* the futex word: 0 = wait, else a command */
  int used;
  uint32_t tid;
  int bound; /* a trace thread number currently maps to this slot */
  pthread_t th;
} __attribute__((aligned(64)));

static struct slot slots[MAX_THREADS];
static struct slot *const main_slot = &slots[0];
static struct slot *pending_join;

/* Thread number -> slot, open addressing with backward-shift deletion. */
#define TID_CAP (2 * MAX_THREADS)
static uint64_t tid_keys[TID_CAP]; /* tid + 1; 0 = empty */
static struct slot *tid_vals[TID_CAP];
static struct slot *tid_cache;

static inline uint32_t tid_home(uint64_t key) { return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 51) & (TID_CAP - 1); }

static struct slot *tid_get(uint32_t tid) {
  if (tid_cache && tid_cache->tid == tid) return tid_cache;
  for (uint32_t i = tid_home((uint64_t)tid + 1);; i = (i + 1) & (TID_CAP - 1)) {
    if (!tid_keys[i]) return NULL;
    if (tid_keys[i] == (uint64_t)tid + 1) return tid_cache = tid_vals[i];
  }
}

static void tid_put(uint32_t tid, struct slot *s) {
  uint32_t i = tid_home((uint64_t)tid + 1);
  while (tid_keys[i]) i = (i + 1) & (TID_CAP - 1);
  tid_keys[i] = (uint64_t)tid + 1;
  tid_vals[i] = s;
  s->tid = tid;
  s->bound = 1;
}

static void tid_del(uint32_t tid) {
  uint32_t i = tid_home((uint64_t)tid + 1);
  while (tid_keys[i] != (uint64_t)tid + 1) i = (i + 1) & (TID_CAP - 1);
  tid_vals[i]->bound = 0;
  for (uint32_t j = i;;) {
    j = (j + 1) & (TID_CAP - 1);
    if (!tid_keys[j]) break;
    uint32_t k = tid_home(tid_keys[j]);
    /* move j back into the hole at i unless its home lies cyclically in (i, j] */
    if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
      tid_keys[i] = tid_keys[j];
      tid_vals[i] = tid_vals[j];
      i = j;
    }
  }
  tid_keys[i] = 0;
  tid_cache = NULL;
}

static void futex(int *w, int op, int val) { syscall(SYS_futex, w, op, val, NULL, NULL, 0); }

static void give(struct slot *to, int cmd) {
  __atomic_store_n(&to->go, cmd, __ATOMIC_RELEASE);
  futex(&to->go, FUTEX_WAKE_PRIVATE, 1);
}

static int wait_cmd(struct slot *self) {
  int c;
  for (int spin = 0; spin < 200; spin++) {
    if ((c = __atomic_load_n(&self->go, __ATOMIC_ACQUIRE))) goto got;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  while (!(c = __atomic_load_n(&self->go, __ATOMIC_ACQUIRE))) futex(&self->go, FUTEX_WAIT_PRIVATE, 0);
got:
  __atomic_store_n(&self->go, 0, __ATOMIC_RELAXED);
  return c;
}

static void serve(struct slot *self);

static void *thread_main(void *arg) {
  serve(arg);
  return NULL; /* start_thread then runs __libc_thread_freeres: the trace's `exit` */
}

/* A thread number seen for the first time (or again after its exit) is a new thread. Its stack
   comes from glibc's stack cache or mmap, its DTV from our pool: nothing touches glibc's heap. */
static struct slot *spawn(uint32_t tid) {
  struct slot *s = NULL;
  for (int i = 1; i < MAX_THREADS; i++)
    if (!slots[i].used) {
      s = &slots[i];
      break;
    }
  if (!s) trace_error(cur.line, "more than %d live threads", MAX_THREADS - 1);
  s->used = 1;
  s->go = 0;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, THREAD_STACK);
  int err = pthread_create(&s->th, &a, thread_main, s);
  pthread_attr_destroy(&a);
  if (err) {
    char m[200];
    snprintf(m, sizeof m, "replay: pthread_create failed: %s\n", strerror(err));
    die(EXIT_RESOURCE, m);
  }
  tid_put(tid, s);
  return s;
}

/* Parses the next event and says which thread must run it. */
static struct slot *next_owner(int *cmd) {
  if (!parse_next()) {
    *cmd = CMD_FINISH;
    return main_slot;
  }
  *cmd = CMD_RUN;
  struct slot *s = tid_get(cur.tid);
  return s ? s : spawn(cur.tid);
}

/* The main thread, after the thread that ran an `exit` event has returned: join it (its teardown
   is then complete), and only then record the event. */
static void finish_join(void) {
  struct slot *s = pending_join;
  pending_join = NULL;
  int err = pthread_join(s->th, NULL);
  if (err) die(EXIT_RESOURCE, "replay: pthread_join failed\n");
  s->used = 0;
  run_plain();
  apply_records();
  end_event(END_EXIT);
}

static void serve(struct slot *self) {
  for (;;) {
    int cmd = wait_cmd(self);
    for (;;) {
      if (cmd == CMD_FINISH) return;
      if (cmd == CMD_JOIN) {
        finish_join();
      } else if (cur.op == OP_EXIT) {
        tid_del(cur.tid);
        if (self != main_slot) {
          pending_join = self;
          give(main_slot, CMD_JOIN);
          return; /* touch nothing of ours after this: the main thread may reuse the slot */
        }
        if (want_peak && !sampling) window_open();
        run_event();
      } else {
        if (want_peak && !sampling) window_open();
        run_event();
      }
      struct slot *next = next_owner(&cmd);
      if (next != self) {
        give(next, cmd);
        break;
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Start-up checks.                                                                            */
/* ------------------------------------------------------------------------------------------ */

static __attribute__((noreturn)) void refuse(const char *why) {
  char m[700];
  snprintf(m, sizeof m, "replay: refusing to run: %s\n", why);
  die(EXIT_REFUSE, m);
}

static uintptr_t start_brk(void) {
  char buf[4096];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) refuse("cannot open /proc/self/stat");
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) refuse("cannot read /proc/self/stat");
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may contain spaces and parentheses */
  if (!p) refuse("cannot parse /proc/self/stat");
  p++;
  for (int f = 3; f <= 47; f++) { /* fields after ')' start at number 3; start_brk is 47 */
    while (*p == ' ') p++;
    char *s = p;
    while (*p && *p != ' ') p++;
    if (f == 47) {
      uint64_t v;
      if (!parse_u64(s, p, &v)) refuse("cannot parse start_brk in /proc/self/stat");
      return (uintptr_t)v;
    }
  }
  refuse("/proc/self/stat has no start_brk field");
}

static void check_pagemap(void) {
  fd_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd_pagemap < 0) refuse("cannot open /proc/self/pagemap");
  char *pg = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (pg == MAP_FAILED) refuse("cannot map a test page");
  *(volatile char *)pg = 1;
  uint64_t e = 0;
  if (pread(fd_pagemap, &e, 8, (off_t)((uintptr_t)pg / PAGE * 8)) != 8 || !(e >> 63 & 1) || !(e >> 56 & 1))
    refuse("/proc/self/pagemap does not report a written page as present and exclusively mapped");
  munmap(pg, PAGE);
}

/*
 * main_arena is a static in libc. After ptmalloc_init, and before any allocation, its state is
 * unmistakable: top is the unsorted bin header, which lives inside the struct itself (initial_top),
 * every bin points at itself and next points back at the arena. Scan libc's writable segment for it.
 */
static int scan_libc(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size;
  if (!info->dlpi_name || !strstr(info->dlpi_name, "libc.so")) return 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t lo = (info->dlpi_addr + ph->p_vaddr + 7) & ~(uintptr_t)7;
    uintptr_t hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    for (uintptr_t m = lo; m + MS_SIZE <= hi; m += 8) {
      if (WORD(m + MS_TOP) == m + MS_TOP && WORD(m + MS_BINS) == m + MS_TOP && WORD(m + MS_BINS + 8) == m + MS_TOP &&
          WORD(m + MS_BINS + 16) == m + MS_BINS && WORD(m + MS_NEXT) == m) {
        *(uintptr_t *)data = m;
        return 1;
      }
    }
  }
  return 0;
}

/* The offsets in struct malloc_state for the running glibc ("2.NN"); 0 when its version is outside
   2.31 to 2.44, where they are the closest known ones. */
static int ms_layout(const char *version) {
  unsigned major = 0, minor = 0;
  if (sscanf(version, "%u.%u", &major, &minor) != 2 || major != 2) return 0;
  if (minor >= 43) { /* no fastbins: mutex, flags, top, last_remainder, bins[254], binmap[4], next */
    ms_top = 8;
    ms_bins = 24;
    ms_next = 2072;
    ms_size = 2112;
  }
  return minor >= 31 && minor <= 44;
}

/* Before 2.35 the dynamic loader copies the GLIBC_TUNABLES entry of the environment with __sbrk
   (tunables_strdup in elf/dl-tunables.c), before main: the break has then moved by the entry's
   length plus one, unaligned, and a program's main heap starts there. Returns that move, or 0. */
static uintptr_t tunables_copy(void) {
  extern char **environ;
  unsigned major = 0, minor = 0;
  if (sscanf(gnu_get_libc_version(), "%u.%u", &major, &minor) != 2 || major != 2 || minor >= 35) return 0;
  for (char **e = environ; *e; e++)
    if (!strncmp(*e, "GLIBC_TUNABLES=", 15)) return strlen(*e) + 1;
  return 0;
}

static void check_heap_untouched(void) {
  uintptr_t sb = start_brk(), now = cur_brk();
  if (now != sb && now - sb != tunables_copy()) {
    char m[200];
    snprintf(m, sizeof m, "the program break has moved before the first call (sbrk(0)=%#lx, start_brk=%#lx)",
             (unsigned long)now, (unsigned long)sb);
    refuse(m);
  }
  struct mallinfo2 mi = mallinfo2(); /* runs ptmalloc_init on this, the main, thread */
  if (mi.arena || mi.hblks || mi.uordblks) refuse("glibc's heap was already used before the first call");
  if (!ms_layout(gnu_get_libc_version())) {
    char m[200];
    snprintf(m, sizeof m, "replay: warning: built for glibc 2.31 to 2.44, running on %s\n", gnu_get_libc_version());
    write_all(2, m, strlen(m));
  }
  dl_iterate_phdr(scan_libc, &main_arena);
  if (!main_arena) {
    char m[200];
    snprintf(m, sizeof m, "cannot find glibc's main_arena (the layout of glibc %s is not known)", gnu_get_libc_version());
    refuse(m);
  }
  B0 = cur_brk();
}

/* ------------------------------------------------------------------------------------------ */
/* Aborts, the summary, main.                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* glibc's malloc_printerr has printed its message and called abort(): keep what we have. */
static void on_fatal(int sig) {
  char buf[96], *o = buf;
  log_flush();
  o = PUT(o, "{\"events\":");
  o = put_u64(o, events_done);
  if (sig == SIGABRT) o = PUT(o, ",\"abort\":true}\n");
  else if (sig == SIGSEGV) o = PUT(o, ",\"signal\":\"SIGSEGV\"}\n");
  else o = PUT(o, ",\"signal\":\"SIGBUS\"}\n");
  if (fd_summary >= 0) write_all(fd_summary, buf, (size_t)(o - buf));
  /* SA_RESETHAND restored the default action; the signal is blocked until we return, then it
     kills the process (abort() would also raise it again). */
  raise(sig);
}

static void write_stats(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die(EXIT_RESOURCE, "replay: cannot create the --stats file\n");
  int saved = dup(2);
  dup2(fd, 2); /* malloc_stats prints on stderr */
  malloc_stats();
  dup2(saved, 2);
  close(saved);
  close(fd);
}

static void write_info(const char *path) {
  FILE *f = fopen(path, "w"); /* its allocations come from our pool */
  if (!f) die(EXIT_RESOURCE, "replay: cannot create the --info file\n");
  malloc_info(0, f);
  fclose(f);
}

static int open_out(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    char m[600];
    snprintf(m, sizeof m, "replay: cannot create %s: %s\n", path, strerror(errno));
    die(EXIT_RESOURCE, m);
  }
  return fd;
}

static void usage(void) {
  die(EXIT_TRACE, "usage: replay TRACE --events OUT.jsonl --summary OUT.json [--stats OUT.txt] [--info OUT.xml]"
                  " [--no-peak | --rss] [--no-events] [--name DISPLAY] [--verify-rss] [--rss-by auto|faults|rescans]"
                  " [--touch recorded|full|none]\n");
}

/*
 * --zero-page: whether this kernel maps the shared zero page for a read of an untouched anonymous
 * page (prints "yes": the page stays out of RSS) or gives it a frame of its own ("no").
 */
static int zero_page_probe(void) {
  enum { PAGES = 64 };
  volatile char *m = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 1;
  long size, before, after;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld %ld", &size, &before) != 2) return 1;
  char sum = 0;
  for (int i = 0; i < PAGES; i++) sum += m[i * 4096];
  rewind(f);
  if (fscanf(f, "%ld %ld", &size, &after) != 2) return 1;
  fclose(f);
  munmap((void *)m, PAGES * 4096);
  printf("%s\n", after - before >= PAGES && sum == 0 ? "no" : "yes");
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "--zero-page")) return zero_page_probe();
  pool_init();
  prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0); /* huge pages would change residency behind our back */

  const char *trace = NULL, *events = NULL, *summary = NULL, *stats = NULL, *info = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--events") && i + 1 < argc) events = argv[++i];
    else if (!strcmp(a, "--summary") && i + 1 < argc) summary = argv[++i];
    else if (!strcmp(a, "--stats") && i + 1 < argc) stats = argv[++i];
    else if (!strcmp(a, "--info") && i + 1 < argc) info = argv[++i];
    else if (!strcmp(a, "--name") && i + 1 < argc) trace_name = argv[++i];
    else if (!strcmp(a, "--no-peak")) want_peak = 0;
    else if (!strcmp(a, "--no-events")) want_events = 0;
    else if (!strcmp(a, "--verify-rss")) verify_rss = 1;
    else if (!strcmp(a, "--rss")) want_rss_key = 1;
    else if (!strcmp(a, "--rss-by") && i + 1 < argc) {
      const char *m = argv[++i];
      if (!strcmp(m, "auto")) rss_by = BY_AUTO;
      else if (!strcmp(m, "faults")) rss_by = BY_FAULTS;
      else if (!strcmp(m, "rescans")) rss_by = BY_RESCANS, perf_ok = 0;
      else usage();
    }
    else if (!strcmp(a, "--touch") && i + 1 < argc) {
      const char *m = argv[++i];
      if (!strcmp(m, "recorded")) touch_mode = TOUCH_RECORDED;
      else if (!strcmp(m, "full")) touch_mode = TOUCH_FULL;
      else if (!strcmp(m, "none")) touch_mode = TOUCH_NONE;
      else usage();
    }
    else if (a[0] == '-' && a[1] == '-') usage();
    else if (!trace) trace = a;
    else usage();
  }
  if (!trace || !summary || (!events && want_events)) usage();
  if (!want_peak && (want_rss_key || verify_rss)) usage(); /* --rss, --verify-rss: measured after every event */
  if (!events) want_events = 0;
  if (!trace_name) trace_name = trace;
  count_now = want_peak;

  map_trace(trace);
  init_op_words();
  if (want_events) fd_events = open_out(events);
  fd_summary = open_out(summary);

  check_pagemap();

  /* Our own tables, all mmap'd. A line buries at most one token and takes at least 8 bytes. */
  live_mask = 4095;
  live = map_anon((live_mask + 1) * sizeof *live);
  memset(live, 0, (live_mask + 1) * sizeof *live);
  memset(log_buf, 0, sizeof log_buf); /* our own buffers are resident before the first event */
  memset(pm_buf, 0, sizeof pm_buf);
  max_graves = (uint64_t)(tend - tp) / 8 + 64;
  graves = map_anon(max_graves * sizeof *graves);
  mm = map_anon((size_t)MM_MAX * sizeof *mm);

  check_heap_untouched();
  if (want_peak) {
    const char *why = perf_ok ? faults_open() : NULL; /* before any thread: they inherit it */
    if (why) faults_unavailable(why);
    set_init();
    if (perf_ok && rss_by == BY_FAULTS) set_sampling(1);
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fatal;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGABRT, &sa, NULL);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  main_slot->used = 1;
  main_slot->th = pthread_self();
  if (parse_next()) {
    tid_put(cur.tid, main_slot);
    main_slot->go = CMD_RUN;
    serve(main_slot);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

  /* After the last event; none of these changes the heap. */
  uint64_t rss = rss_full(); /* the final figure owes nothing to the bookkeeping above */
  if (want_peak && events_done > 0 && rss != last_rss) {
    /* Nothing ran since the last event: the per-event figures were wrong. */
    char m[300];
    snprintf(m, sizeof m, "replay: the RSS measured after the last event (%llu) differs from a full count (%llu)\n",
             (unsigned long long)last_rss, (unsigned long long)rss);
    die(EXIT_RESOURCE, m);
  }
  if (!want_peak || rss > peak_rss) peak_rss = rss;
  struct mallinfo2 mi = mallinfo2();
  uintptr_t brk_now = cur_brk();
  if (stats) write_stats(stats);
  if (info) write_info(info);

  char out[1024];
  int n = snprintf(out, sizeof out,
                   "{\"events\":%lu,\"mallinfo2\":{\"arena\":%zu,\"ordblks\":%zu,\"smblks\":%zu,\"hblks\":%zu,"
                   "\"hblkhd\":%zu,\"usmblks\":%zu,\"fsmblks\":%zu,\"uordblks\":%zu,\"fordblks\":%zu,\"keepcost\":%zu},"
                   "\"rss\":%llu,\"peakRss\":%llu,\"brk\":%lld,\"seconds\":%.6f",
                   events_done, mi.arena, mi.ordblks, mi.smblks, mi.hblks, mi.hblkhd, mi.usmblks, mi.fsmblks,
                   mi.uordblks, mi.fordblks, mi.keepcost, (unsigned long long)rss, (unsigned long long)peak_rss,
                   (long long)(brk_now - B0), seconds);
  n += snprintf(out + n, sizeof out - (size_t)n, ",\"glibc\":\"%s\"", gnu_get_libc_version());
#ifdef MALLINFO_BY_MALLINFO
  n += snprintf(out + n, sizeof out - (size_t)n, ",\"mallinfoBy\":\"mallinfo\"");
#endif
  unsigned long ff = __atomic_load_n(&foreign_frees, __ATOMIC_RELAXED);
  if (ff) n += snprintf(out + n, sizeof out - (size_t)n, ",\"foreignFrees\":%lu", ff);
  if (want_peak) /* how the per-event RSS was measured: how many events by a full scan, by samples */
    n += snprintf(out + n, sizeof out - (size_t)n, ",\"rssBy\":\"%s\",\"fullScans\":%lu", perf_ok ? "faults" : "rescans",
                  full_scans);
  if (want_peak && perf_ok)
    n += snprintf(out + n, sizeof out - (size_t)n,
                  ",\"sampledEvents\":%lu,\"unsampled\":%lu,\"rssPaths\":{\"brk\":%lu,\"shrink\":%lu,\"delete\":%lu,\"munmap\":%lu,\"mremap\":%lu,\"trim\":%lu,\"exit\":%lu}",
                  sampled_events, unsampled, paths.brk, paths.shrink, paths.del, paths.munmap, paths.mremap, paths.trim, paths.exit);
  n += snprintf(out + n, sizeof out - (size_t)n, "}\n");
  log_flush();
  write_all(fd_summary, out, (size_t)n);
  /* Other trace threads may still be parked on their batons; as in the recorded process, they
     are not torn down. */
  _exit(0);
}
