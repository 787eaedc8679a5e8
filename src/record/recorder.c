/*
 * The ptsim recorder: a shared library loaded into a program with LD_PRELOAD by `ptsim record`.
 * It interposes the malloc family and writes every call as a line of a ptsim trace (version 1,
 * docs/trace-format.md), in the order in which glibc ran the calls. docs/recording.md is the
 * user's account of it; this comment is the implementer's.
 *
 * Configuration comes from the environment the process started with (read from
 * /proc/self/environ, because the first call can come from the dynamic loader before libc has set
 * up `environ`):
 *   PTSIM_RECORD_DIR   directory the trace files go to: PID.N.trace, N counting the program
 *                      images of one process (exec keeps the pid). Without it the library only
 *                      forwards calls to glibc.
 *   PTSIM_RECORD_PPID  when set, only a process whose parent has this pid records (ptsim record
 *                      --no-children): the started program and the programs it execs.
 *   PTSIM_RECORD_TOUCHES  0: no #:touch records and no #:rss samples (ptsim record --no-touches).
 *   PTSIM_RECORD_RSS_EVERY  when to sample: `100ms`, `50000` (events), `100ms,50000`, or `off`.
 *   PTSIM_RECORD_PAGEMAP  `entries`: read /proc/self/pagemap's entries even where the kernel has
 *                      PAGEMAP_SCAN (for the tests of the older kernels' way).
 *
 * Exactness. Every wrapper takes one process-wide lock, makes the real call, writes the record and
 * drops the lock, so the file's order is the order in which the allocator ran the calls, across
 * threads. The real calls are glibc's own exported entry points (__libc_malloc, __libc_calloc,
 * ...; posix_memalign, aligned_alloc and malloc_trim through dlsym(RTLD_NEXT)), so the program's
 * heap is exactly what it would be without the recorder: the recorder itself never allocates from
 * it (its buffers are mmapped, it formats numbers itself and never calls stdio).
 *
 * Before main. With LD_PRELOAD our malloc is bound for every object, the dynamic loader included
 * (ld.so switches from its minimal allocator to the interposed malloc once relocation is done,
 * __rtld_malloc_init_real), so the first call can arrive before our constructor runs and before
 * libc's own constructors: initialisation is lazy, under the lock, and uses only system calls.
 * dlsym may itself call malloc or calloc (for its error state); while a thread is inside our dlsym
 * its allocations are served from a small static pool, never recorded and never handed to glibc
 * (free and realloc recognise pool pointers by address).
 *
 * Threads. A thread gets its number (1, 2, ...) at its first call. Its `exit` line must sit where
 * glibc tears its malloc state down: start_thread runs the thread_local destructors, then the
 * pthread_key destructors (__nptl_deallocate_tsd), then __libc_thread_freeres, whose resolver,
 * strerror and dlerror clean-ups still call free() before __malloc_arena_thread_freeres flushes
 * the tcache into the arena (calls no wrapper sees) and puts the arena on the free list. So our
 * pthread_key destructor, in glibc's last round of destructors, only makes the thread take an
 * "exit gate": until the thread is done, that is until start_thread sets the EXITING bit of its
 * struct pthread right after __libc_thread_freeres (or, when pthread_exit set that bit early,
 * until the kernel clears its tid word), every other thread's call waits, and the first one to
 * go on writes the `exit` line. So the file has the thread's last frees, then `exit`, then
 * whatever the others did after, as glibc ran them; a joiner's next call always follows the
 * exit. The descriptor is read with process_vm_readv, for a joined thread's may be unmapped by
 * glibc's stack cache. Where those words are is checked at start (the main thread's tid word
 * holds our pid; cancelhandling's place is known for glibc 2.36) and on every new thread; if
 * the tid word cannot be found, the destructor writes `exit` itself. A gate held for 500 ms (a
 * destructor waiting for a thread that waits at the gate) is given up: that thread's `exit` is
 * then written when its tid word clears.
 *
 * fork. The child records to a file of its own. glibc's fork leaves a single-threaded child's
 * heap exactly as the parent's, so the child's file begins with the parent's trace up to the fork
 * (copied from the parent's file when the child first writes) and replays as the process it is.
 * Our pthread_atfork prepare handler takes the lock and flushes, so no call is half-recorded at
 * the fork. A child that makes no allocator call (fork then exec, the common case) writes no file.
 * For a multi-threaded parent, glibc's __malloc_fork_unlock_child puts every arena but the forking
 * thread's on the free list, which a trace cannot say: the child's file notes it.
 *
 * exec. The new program inherits LD_PRELOAD and records to its own file (a fresh heap, a fresh
 * header). Our exec wrappers flush first; a failed exec just continues.
 *
 * Flushing. Records go to a 1 MiB buffer written out when full, at fork, at exec, at _exit (we
 * interpose _exit and _Exit), from our library destructor (exit() from any thread; later calls
 * are written through at once), and from handlers for SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT
 * and SIGTERM installed where the program has none, which flush, restore the default action and
 * re-raise. The last line of a complete file is `# end N events (REASON)`.
 *
 * Touches and samples. Unless PTSIM_RECORD_TOUCHES=0, every block of 4096 or more requested
 * bytes is followed: `#:touch` records name the pages of it that are resident just before its
 * free or realloc, at each `#:rss` sample (only the pages not named before), and at the end of
 * the recording, and samples of RssAnon (with the resident memory of glibc's heaps) are taken at
 * the first event, periodically, where the program calls ptsim_mark, and at the end, followed by
 * `# rss_peak` before `# end`. The section "Touched pages and RSS samples" below says how.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

/* glibc's allocator proper, exported next to the public names we interpose. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern int __libc_mallopt(int, int);

#define EXPORT __attribute__((visibility("default")))
/* Initial-exec TLS: resolved at load time, never through __tls_get_addr, which may allocate. */
#define TLS __thread __attribute__((tls_model("initial-exec")))

#define BUF_CAP (1u << 20)
#define LINE_MAX_BYTES 192
#define PEND_MAX 1024
#define HIGH_FD 900 /* our descriptors live up here, out of the way of the program's own */

enum { ST_UNINIT, ST_ON, ST_OFF };

/* ------------------------------------------------------------------------------------------ */
/* State. Everything below is guarded by `lk` except where a comment says otherwise.          */
/* ------------------------------------------------------------------------------------------ */

static int state; /* read without the lock on the fast path */
/* Recursive: our pthread_atfork handler holds it across fork(), and other libraries' fork
   handlers, running in between in the same thread, may allocate. */
static pthread_mutex_t lk = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static volatile pid_t lk_owner; /* kernel tid of the holder, for the signal handlers */
static int lk_depth;

static char *buf; /* BUF_CAP bytes, mmapped */
static size_t len;
static size_t buf_high; /* the most bytes the buffer has held: its resident part */
static int fd = -1;          /* our trace file, created at the first flush that has events */
static dev_t fd_dev;
static ino_t fd_ino;
static uint64_t file_bytes;  /* bytes in our file */
static uint64_t events;      /* event lines in our file and buffer, a fork prefix included */
static uint64_t own_events;  /* of those, recorded by this process image */
static uint64_t t0;          /* CLOCK_MONOTONIC at the start of the recording, in ns */
static pid_t my_pid;
static int finished;         /* the exit flush is done: write each record through at once */
static char out_dir[PATH_MAX];
static char path[PATH_MAX];  /* our file, once created */

/* Touch records and RSS samples (see "Touched pages and RSS samples" below). */
static int touches;            /* on for this process image */
static uint64_t every_ns;      /* a periodic sample this long after the last one; 0: never */
static uint64_t every_calls;   /* or after this many events; 0: never */
static uint64_t last_ns;       /* CLOCK_MONOTONIC at the last event line */
static uint64_t since_sample;  /* events since the last sample */
static uint64_t due_ns = UINT64_MAX; /* when the next periodic sample is due by time */
static uint64_t allowed_ns;    /* no periodic sample before this: they cost at most 1/COST_RATIO */
static void periodic_sample(void);

/* A forked child's file starts with the first `src_len` bytes (`src_events` events) of its
   parent's file, copied when the child first writes. */
static int src_fd = -1;
static dev_t src_dev;
static ino_t src_ino;
static uint64_t src_len, src_events;
static pid_t forked_from; /* our parent, when this process image began with a fork */
static uint64_t forked_after;
static char src_path[PATH_MAX];

static uint32_t next_tid;
static uint32_t live_threads;
static pthread_key_t thread_key;
static int thread_key_ok;
static long tid_off = -1;  /* offset of the tid word in struct pthread; -1: unknown */
static long canc_off = -1; /* offset of its cancelhandling word; -1: unknown */
#define EXITING_BIT 0x10   /* in cancelhandling: start_thread sets it after __libc_thread_freeres */
#define GATE_TIMEOUT_NS (500ull * 1000 * 1000)

/* The thread whose exit is in progress, if any (see on_thread_end): while it holds the gate,
   other threads' calls wait, so that glibc's tcache flush and arena release for it, which no
   wrapper sees, happen at the place of its `exit` line. */
struct dying {
  uint32_t no;
  pid_t ktid;
  uintptr_t pd;
  int by_tid; /* its EXITING bit was set early (pthread_exit): wait for the tid word instead */
  uint64_t since;
};
static pid_t gate_holder; /* kernel tid of that thread, 0 when none */
static struct dying gate;
static long only_ppid = -1; /* PTSIM_RECORD_PPID, or -1 */

struct pend {
  uint32_t no;
  pid_t ktid;
  uintptr_t pd;
  uint32_t fails;
};
static struct pend pending[PEND_MAX];
static int npending;

static TLS uint32_t t_no;   /* this thread's number; 0 until its first call */
static TLS pid_t t_ktid;    /* its kernel tid */
static TLS int t_boot;      /* inside our dlsym: allocations come from the bootstrap pool */
static TLS void *t_freeing; /* the pointer being freed, for a signal raised inside free() */
static TLS int t_rounds;    /* times our key destructor ran for this thread */

/* Real functions found with dlsym(RTLD_NEXT): the next definition after ours. */
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef void *(*aligned_alloc_fn)(size_t, size_t);
typedef int (*malloc_trim_fn)(size_t);
typedef void (*exit_fn)(int) __attribute__((noreturn));
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);
typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef void (*sighandler_fn)(int);
typedef sighandler_fn (*signal_fn)(int, sighandler_fn);
static posix_memalign_fn real_posix_memalign;
static aligned_alloc_fn real_aligned_alloc;
static malloc_trim_fn real_malloc_trim;
static exit_fn real_exit, real_Exit;
static execve_fn real_execve;
static execvpe_fn real_execvpe;
static fexecve_fn real_fexecve;
static execveat_fn real_execveat;
static sigaction_fn real_sigaction;
static signal_fn real_signal;

/* ------------------------------------------------------------------------------------------ */
/* The bootstrap pool: what dlsym allocates while we resolve a symbol.                         */
/* ------------------------------------------------------------------------------------------ */

#define BOOT_BYTES (64u << 10)
static char boot_pool[BOOT_BYTES] __attribute__((aligned(4096)));
static size_t boot_top; /* atomic */

static inline int in_boot(const void *p) { return (uintptr_t)p - (uintptr_t)boot_pool < BOOT_BYTES; }

static void *boot_alloc(size_t n, size_t align) {
  if (align < 16) align = 16;
  if (n > BOOT_BYTES || align > 4096) {
    errno = ENOMEM;
    return NULL;
  }
  size_t old = __atomic_load_n(&boot_top, __ATOMIC_RELAXED), user, end;
  do {
    user = (old + 16 + align - 1) & ~(align - 1);
    end = user + ((n + 15) & ~(size_t)15);
    if (end > BOOT_BYTES) {
      errno = ENOMEM;
      return NULL;
    }
  } while (!__atomic_compare_exchange_n(&boot_top, &old, end, 1, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
  *(size_t *)(boot_pool + user - 16) = n; /* its size, for realloc */
  return boot_pool + user;                /* static storage: already zero, never reused */
}

static inline size_t boot_size(const void *p) { return *(const size_t *)((const char *)p - 16); }

static void *resolve(const char *name) {
  t_boot++;
  void *f = dlsym(RTLD_NEXT, name);
  t_boot--;
  return f;
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers: no stdio, no heap.                                                           */
/* ------------------------------------------------------------------------------------------ */

static inline pid_t self_ktid(void) {
  pid_t t = t_ktid;
  if (!t) t = t_ktid = (pid_t)syscall(SYS_gettid);
  return t;
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

static inline char *put_hex(char *o, uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  char t[16];
  int n = 0;
  *o++ = '0';
  *o++ = 'x';
  do {
    t[n++] = digits[v & 15];
    v >>= 4;
  } while (v);
  while (n) *o++ = t[--n];
  return o;
}

/* A pointer token: 0 for NULL, else its address in hex. */
static inline char *put_ptr(char *o, const void *p) {
  if (!p) {
    *o++ = '0';
    return o;
  }
  return put_hex(o, (uintptr_t)p);
}

static inline char *put_str(char *o, const char *s) {
  while (*s) *o++ = *s++;
  return o;
}

static void write_all(int to, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(to, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void say(const char *msg) { write_all(2, msg, strlen(msg)); }

/* Moves a descriptor up, out of the range a program reuses first, close-on-exec. */
static int high_fd(int f) {
  if (f < 0 || f >= HIGH_FD) return f;
  int g = fcntl(f, F_DUPFD_CLOEXEC, HIGH_FD);
  if (g < 0) return f;
  close(f);
  return g;
}

/* Reads a whole small /proc file into `dst` (NUL-terminated); returns its length or -1. */
static ssize_t read_proc(const char *name, char *dst, size_t cap) {
  int f = open(name, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  size_t n = 0;
  while (n + 1 < cap) {
    ssize_t r = read(f, dst + n, cap - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(f);
  dst[n] = 0;
  return (ssize_t)n;
}

/* ------------------------------------------------------------------------------------------ */
/* The lock.                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void wait_gate(pid_t me);

static inline void lock(void) {
  pid_t me = self_ktid();
  pthread_mutex_lock(&lk);
  if (lk_depth++ > 0) return;
  lk_owner = me;
  if (__builtin_expect(gate_holder != 0, 0) && gate_holder != me) wait_gate(me);
}

static inline void unlock(void) {
  if (--lk_depth == 0) lk_owner = 0;
  pthread_mutex_unlock(&lk);
}

/* ------------------------------------------------------------------------------------------ */
/* The file.                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void stop_recording(const char *why) {
  state = ST_OFF;
  say("ptsim recorder: ");
  say(why);
  say("; recording stopped\n");
}

/* Is `f` still the file we opened? A program may close descriptors it does not know about and
   reuse their numbers; then we must not write into its files. */
static int same_file(int f, dev_t dev, ino_t ino) {
  struct stat st;
  return f >= 0 && fstat(f, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

static int open_source(void) {
  if (same_file(src_fd, src_dev, src_ino)) return 1;
  int f = high_fd(open(src_path, O_RDONLY | O_CLOEXEC));
  if (f < 0) return 0;
  if (!same_file(f, src_dev, src_ino)) {
    close(f);
    return 0;
  }
  src_fd = f;
  return 1;
}

/* Copies the parent's trace up to the fork into our new file. */
static int copy_prefix(void) {
  if (!open_source()) return 0;
  uint64_t done = 0;
  while (done < src_len) {
    loff_t off = (loff_t)done;
    ssize_t n = copy_file_range(src_fd, &off, fd, NULL, src_len - done, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += (uint64_t)n;
  }
  if (done < src_len) { /* copy_file_range unsupported here: copy through a scratch mapping */
    char *tmp = mmap(NULL, 1u << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (tmp == MAP_FAILED) return 0;
    while (done < src_len) {
      size_t want = src_len - done < (1u << 16) ? (size_t)(src_len - done) : (1u << 16);
      ssize_t n = pread(src_fd, tmp, want, (off_t)done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      write_all(fd, tmp, (size_t)n);
      done += (uint64_t)n;
    }
    munmap(tmp, 1u << 16);
  }
  close(src_fd);
  src_fd = -1;
  file_bytes = done;
  return done == src_len;
}

static int create_file(void) {
  char *o = put_str(path, out_dir);
  *o++ = '/';
  o = put_u64(o, (uint64_t)my_pid);
  *o++ = '.';
  for (unsigned n = 0; n < 1000; n++) {
    char *e = put_u64(o, n);
    put_str(e, ".trace")[0] = 0;
    /* Readable too: a forked child copies its prefix from the descriptor it inherits. Not
       O_APPEND, which copy_file_range refuses; we are the only writer. */
    int f = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f < 0 && errno == EEXIST) continue;
    if (f < 0) break;
    fd = high_fd(f);
    struct stat st;
    fstat(fd, &st);
    fd_dev = st.st_dev;
    fd_ino = st.st_ino;
    file_bytes = 0;
    if (src_len > 0 && !copy_prefix()) {
      static const char note[] = "# the parent's trace before the fork could not be copied: this trace does not replay\n";
      write_all(fd, note, sizeof note - 1);
    }
    return 1;
  }
  if (errno == ENOENT) {
    /* The directory is gone: ptsim record has finished (this is a descendant that outlived the
       recorded program). Nothing to say. */
    state = ST_OFF;
    return 0;
  }
  stop_recording("cannot create a trace file in PTSIM_RECORD_DIR");
  return 0;
}

/* Writes the buffer out, creating the file first if this image has recorded anything. */
static void flush_buf(void) {
  if (len == 0) return;
  if (fd < 0) {
    if (own_events == 0) return; /* comments only: no file for a process that never allocated */
    if (!create_file()) {
      len = 0;
      return;
    }
  } else if (!same_file(fd, fd_dev, fd_ino)) {
    /* Someone closed or replaced our descriptor: reopen our file by name. */
    int f = high_fd(open(path, O_RDWR | O_CLOEXEC));
    if (f < 0 || !same_file(f, fd_dev, fd_ino) || lseek(f, 0, SEEK_END) < 0) {
      if (f >= 0) close(f);
      len = 0;
      stop_recording("the trace file went away");
      return;
    }
    fd = f;
  }
  write_all(fd, buf, len);
  file_bytes += len;
  len = 0;
}

static void append(const char *p, size_t n) {
  if (len + n > BUF_CAP) flush_buf();
  if (n > BUF_CAP) n = BUF_CAP;
  memcpy(buf + len, p, n);
  len += n;
  if (len > buf_high) buf_high = len;
}

/* One event line, already formatted (without the `@TIME TID ` head, which is added here). */
static char *rec_head(char *line, uint32_t no, const char *op) {
  char *o = line;
  *o++ = '@';
  last_ns = now_ns();
  o = put_u64(o, last_ns - t0);
  *o++ = ' ';
  o = put_u64(o, no);
  *o++ = ' ';
  o = put_str(o, op);
  *o++ = ' ';
  return o;
}

static void rec_commit(char *line, char *o) {
  if (o[-1] == ' ') o--; /* an operation without arguments (exit) */
  *o++ = '\n';
  append(line, (size_t)(o - line));
  events++;
  own_events++;
  if (finished) {
    flush_buf();
  } else if (touches) {
    /* The first event of this image, every `every_calls` events, or `every_ns` after the last sample. */
    since_sample++;
    if (own_events == 1 || (every_calls && since_sample >= every_calls) || last_ns >= due_ns) periodic_sample();
  }
}

static void trailer(const char *why) {
  if (own_events == 0) return;
  char line[LINE_MAX_BYTES];
  char *o = put_str(line, "# end ");
  o = put_u64(o, events);
  o = put_str(o, " events (");
  o = put_str(o, why);
  if (forked_from) { /* said again at the end, where it is found without reading the prefix */
    o = put_str(o, "; pid ");
    o = put_u64(o, (uint64_t)my_pid);
    o = put_str(o, " forked from pid ");
    o = put_u64(o, (uint64_t)forked_from);
    o = put_str(o, " after its event ");
    o = put_u64(o, forked_after);
  }
  o = put_str(o, ")\n");
  append(line, (size_t)(o - line));
  flush_buf();
}

/* ------------------------------------------------------------------------------------------ */
/* Touched pages and RSS samples.                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * Every live block of TOUCH_MIN or more requested bytes is in `tbl`, an open-addressing hash
 * table in memory of our own. For each, a bitmap remembers the pages already named in `#:touch`
 * records (the records add up, so only new pages are written). Residency is read from
 * /proc/self/pagemap: with the PAGEMAP_SCAN ioctl (Linux 6.7) we ask for the pages that are
 * present or swapped out and are not the shared zero page, which a read of untouched anonymous
 * memory maps and RssAnon does not count; older kernels only give each page's entry, where the
 * zero page (like a page shared with a forked process) is present but not "exclusively mapped",
 * so there a page counts when it is exclusively mapped or swapped out, and a sample is taken
 * before every fork, while the pages the fork will share are still exclusive. mincore(2) is no
 * use: it reports the zero page as resident.
 *
 * A sample reads RssAnon from /proc/self/statm (resident minus shared pages: the kernel counts
 * resident as file + shmem + anon pages and shared as file + shmem, so the difference is exactly
 * RssAnon, for a fifth of the cost of /proc/self/status), and `heap=`, the resident pages of the
 * main heap (from where the break was at the first call to the current break), of the other
 * arenas' heaps (found from the chunk headers of the blocks glibc returns: NON_MAIN_ARENA set,
 * IS_MMAPPED clear; each heap starts at a multiple of HEAP_MAX_SIZE, and its heap_info says how
 * much of it is in use) and of the mmapped chunks among the large blocks. The same scan of the
 * heaps gives the live blocks' pages, so a sample costs a few system calls per heap and one per
 * large block outside them.
 */

#define PAGE_BYTES 4096u
#define TOUCH_MIN 4096u                 /* blocks this big or bigger get #:touch records */
#define HEAP_ALIGN ((uintptr_t)64 << 20) /* glibc's HEAP_MAX_SIZE on 64-bit */
#define CHUNK_MMAPPED 2                 /* flags in the size word of a chunk */
#define CHUNK_NON_MAIN 4
#define MAX_HEAPS 1024
#define TOUCH_LINE_BYTES (64u << 10) /* a longer #:touch record goes on in a new line */
#define COST_RATIO 100               /* periodic samples take at most 1/COST_RATIO of the time */
#define MARK_MAX 64                  /* bytes of a mark's name */

/* PAGEMAP_SCAN (Linux 6.7), spelled out here for older kernel headers. */
struct pm_region {
  uint64_t start, end, categories;
};
struct pm_scan {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PM_SCAN_IOCTL _IOWR('f', 16, struct pm_scan)
#define PM_PRESENT (1u << 3)
#define PM_SWAPPED (1u << 4)
#define PM_PFNZERO (1u << 5)
/* /proc/self/pagemap entries. */
#define PME_PRESENT (1ull << 63)
#define PME_SWAPPED (1ull << 62)
#define PME_EXCLUSIVE (1ull << 56)

enum { SCAN_IOCTL = 1, SCAN_ENTRIES };
static int scan_kind;
static int pm_fd = -1, statm_fd = -1;
static dev_t pm_dev, statm_dev;
static ino_t pm_ino, statm_ino;
static int tbl_busy; /* the table is being changed or walked: a signal handler must keep out */
static char rss_every_text[48];

/* The first sample of this image and the one with the most anonymous memory, for `# rss_peak`. */
static int sampled;
static uint64_t first_anon, first_heap, peak_anon, peak_heap, peak_event;

struct blk {
  uintptr_t p;   /* 0: a free slot */
  uint64_t n;    /* requested bytes */
  uint64_t nrec; /* pages named in records so far */
  union {
    uint64_t word; /* the recorded pages of a block of up to 64 pages */
    uint64_t *map; /* of a bigger one: a bitmap, NULL until a page is recorded */
  } rec;
  uint64_t mmapped; /* an mmapped chunk: its pages count in heap= */
};
static struct blk *tbl;
static size_t tbl_cap, tbl_n;
static unsigned tbl_bits;

static inline uint64_t blk_first(const struct blk *b) { return b->p / PAGE_BYTES; }
static inline uint64_t blk_last(const struct blk *b) { return (b->p + b->n - 1) / PAGE_BYTES; }
static inline uint64_t blk_pages(const struct blk *b) { return blk_last(b) - blk_first(b) + 1; }

static void *map_anon(size_t bytes) {
  void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? NULL : m;
}

/* Bitmaps of more than one word: power-of-two classes carved from 64 KiB slabs, with free
   lists; the biggest (blocks over 128 MiB) are mappings of their own. */
#define MAP_CLASSES 13 /* up to 2^12 words */
#define SLAB_BYTES (64u << 10)
static uint64_t *map_free[MAP_CLASSES];
static char *slab;
static size_t slab_left;
static uint64_t map_bytes; /* bytes of bitmaps handed out of fresh slab memory or mapped alone */

static unsigned map_class(uint64_t words) { return words <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(words - 1); }

static uint64_t *map_alloc(uint64_t words) {
  unsigned c = map_class(words);
  if (c >= MAP_CLASSES) {
    uint64_t bytes = (words * 8 + PAGE_BYTES - 1) & ~(uint64_t)(PAGE_BYTES - 1);
    uint64_t *m = map_anon(bytes);
    if (m) map_bytes += bytes;
    return m;
  }
  size_t bytes = (size_t)8 << c;
  uint64_t *m = map_free[c];
  if (m) {
    map_free[c] = *(uint64_t **)m;
    memset(m, 0, bytes);
    return m;
  }
  if (slab_left < bytes) {
    char *s = map_anon(SLAB_BYTES);
    if (!s) return NULL;
    slab = s;
    slab_left = SLAB_BYTES;
  }
  m = (uint64_t *)slab;
  slab += bytes;
  slab_left -= bytes;
  map_bytes += bytes;
  return m;
}

static void map_release(uint64_t *m, uint64_t words) {
  unsigned c = map_class(words);
  if (c >= MAP_CLASSES) {
    uint64_t bytes = (words * 8 + PAGE_BYTES - 1) & ~(uint64_t)(PAGE_BYTES - 1);
    munmap(m, bytes);
    map_bytes -= bytes;
    return;
  }
  *(uint64_t **)m = map_free[c];
  map_free[c] = m;
}

static inline size_t slot_of(uintptr_t p) { return (size_t)(((uint64_t)p >> 4) * 0x9e3779b97f4a7c15ull >> (64 - tbl_bits)); }

static struct blk *tbl_find(uintptr_t p) {
  if (tbl_n == 0) return NULL;
  for (size_t i = slot_of(p);; i = (i + 1) & (tbl_cap - 1)) {
    if (tbl[i].p == p) return &tbl[i];
    if (tbl[i].p == 0) return NULL;
  }
}

/* The pages of a table of up to 64 pages that slots were written in (for rec=). */
static uint64_t tbl_touched;

/* The slot to write p's entry in. */
static struct blk *tbl_slot(uintptr_t p) {
  size_t i = slot_of(p);
  while (tbl[i].p != 0 && tbl[i].p != p) i = (i + 1) & (tbl_cap - 1);
  size_t a = i * sizeof *tbl / PAGE_BYTES, z = ((i + 1) * sizeof *tbl - 1) / PAGE_BYTES; /* an entry may straddle two */
  if (z < 64) tbl_touched |= 1ull << a | 1ull << z;
  return &tbl[i];
}

static int tbl_grow(void) {
  size_t cap = tbl_cap ? tbl_cap * 2 : 1024;
  struct blk *old = tbl, *t = map_anon(cap * sizeof *t);
  if (!t) return 0;
  size_t old_cap = tbl_cap;
  tbl = t;
  tbl_cap = cap;
  tbl_touched = 0;
  tbl_bits = (unsigned)__builtin_ctzll(cap);
  for (size_t i = 0; i < old_cap; i++)
    if (old[i].p) *tbl_slot(old[i].p) = old[i];
  if (old) munmap(old, old_cap * sizeof *old);
  return 1;
}

static void blk_forget(struct blk *b) {
  uint64_t pages = blk_pages(b);
  if (pages > 64 && b->rec.map) map_release(b->rec.map, (pages + 63) / 64);
  b->rec.map = NULL;
  b->nrec = 0;
}

/* Takes a block out, shifting later entries of its probe sequence back into the hole. */
static void tbl_remove(struct blk *b) {
  blk_forget(b);
  size_t i = (size_t)(b - tbl), m = tbl_cap - 1;
  for (size_t j = (i + 1) & m; tbl[j].p != 0; j = (j + 1) & m) {
    size_t k = slot_of(tbl[j].p);
    /* tbl[j] may fill the hole at i unless its home slot k lies cyclically in (i, j]. */
    int stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (!stays) {
      tbl[i] = tbl[j];
      i = j;
    }
  }
  tbl[i].p = 0;
  tbl_n--;
}

static void tbl_add(uintptr_t p, uint64_t n, int mmapped) {
  if ((tbl_n + 1) * 2 > tbl_cap && !tbl_grow()) {
    /* Without the block in the table its records would be missing, and a replay would take it
       for untouched: better no trace at all past this point than a wrong one. */
    stop_recording("cannot map memory for the table of large blocks");
    return;
  }
  struct blk *b = tbl_slot(p);
  if (b->p == p) blk_forget(b); /* cannot happen while the trace is consistent */
  else tbl_n++;
  *b = (struct blk){.p = p, .n = n, .mmapped = (uint64_t)mmapped};
}

/* The non-main heaps seen so far, by their start. */
static uintptr_t heaps[MAX_HEAPS];
static int nheaps;
static uintptr_t last_heap;
static uintptr_t main_heap_start; /* the break at the first call */

static void note_heap(uintptr_t h) {
  last_heap = h;
  for (int i = 0; i < nheaps; i++)
    if (heaps[i] == h) return;
  if (nheaps < MAX_HEAPS) heaps[nheaps++] = h;
}

/* A block glibc just returned, of `n` requested bytes. */
static inline void touch_new(void *p, uint64_t n) {
  if (!touches || !p) return;
  uintptr_t a = (uintptr_t)p;
  size_t head = ((const size_t *)p)[-1];
  if ((head & (CHUNK_MMAPPED | CHUNK_NON_MAIN)) == CHUNK_NON_MAIN && (a & ~(HEAP_ALIGN - 1)) != last_heap) note_heap(a & ~(HEAP_ALIGN - 1));
  if (n >= TOUCH_MIN) {
    tbl_busy++;
    tbl_add(a, n, (head & CHUNK_MMAPPED) != 0);
    tbl_busy--;
  }
}

/* ---- Reading residency ---- */

/* Receives runs of resident pages [a, z), absolute page numbers, in increasing order. */
typedef void (*run_fn)(void *ctx, uint64_t a, uint64_t z);

/* Resident pages of the ranges scanned, for heap=: the pages of the runs, and with the older
   interface also those present but not exclusive, which are mostly pages shared with a forked
   process (counted in RssAnon), seldom the zero page. */
static uint64_t scan_resident;

static int scan_ioctl(uintptr_t from, uintptr_t to, run_fn f, void *ctx) {
  struct pm_region r[64];
  while (from < to) {
    struct pm_scan a = {.size = sizeof a,
                        .start = from,
                        .end = to,
                        .vec = (uintptr_t)r,
                        .vec_len = sizeof r / sizeof r[0],
                        .category_inverted = PM_PFNZERO,
                        .category_mask = PM_PFNZERO,
                        .category_anyof_mask = PM_PRESENT | PM_SWAPPED,
                        .return_mask = PM_PRESENT | PM_SWAPPED};
    long k = ioctl(pm_fd, PM_SCAN_IOCTL, &a);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return 0;
    for (long i = 0; i < k; i++) {
      scan_resident += (r[i].end - r[i].start) / PAGE_BYTES;
      f(ctx, r[i].start / PAGE_BYTES, r[i].end / PAGE_BYTES);
    }
    if (a.walk_end <= from || (unsigned long)k < sizeof r / sizeof r[0]) break;
    from = a.walk_end;
  }
  return 1;
}

static int scan_entries(uintptr_t from, uintptr_t to, run_fn f, void *ctx) {
  uint64_t e[256];
  uint64_t pg = from / PAGE_BYTES, end = to / PAGE_BYTES, a = 0, z = 0;
  while (pg < end) {
    size_t want = end - pg < 256 ? (size_t)(end - pg) : 256;
    ssize_t r = pread(pm_fd, e, want * 8, (off_t)(pg * 8));
    if (r < 0 && errno == EINTR) continue;
    if (r < 8) return 0;
    size_t k = (size_t)r / 8;
    for (size_t i = 0; i < k; i++, pg++) {
      scan_resident += (e[i] & (PME_PRESENT | PME_SWAPPED)) != 0;
      /* The zero page, and a page shared with a forked process, are present but not exclusive. */
      if ((e[i] & PME_SWAPPED) || (e[i] & (PME_PRESENT | PME_EXCLUSIVE)) == (PME_PRESENT | PME_EXCLUSIVE)) {
        if (z != pg) {
          if (z > a) f(ctx, a, z);
          a = pg;
        }
        z = pg + 1;
      }
    }
  }
  if (z > a) f(ctx, a, z);
  return 1;
}

static int self_check(int *f, dev_t *dev, ino_t *ino, const char *name);

/* The resident pages of [from, to), page-aligned addresses. A descriptor the program closed
   under us is opened again (the runs delivered before a failure are not delivered again: a
   failure part of the way through is a failure of the kernel, not of the descriptor). */
static int scan_range(uintptr_t from, uintptr_t to, run_fn f, void *ctx) {
  static int failed;
  for (int tries = 0; tries < 2; tries++) {
    if (pm_fd >= 0 && (scan_kind == SCAN_IOCTL ? scan_ioctl(from, to, f, ctx) : scan_entries(from, to, f, ctx))) return 1;
    if (errno != EBADF || !self_check(&pm_fd, &pm_dev, &pm_ino, "/proc/self/pagemap")) break;
  }
  if (!failed) {
    /* A sandbox that forbids the call now, say: the records are no longer complete. Said once,
       to the user and in the trace. */
    failed = 1;
    static const char note[] = "# touches incomplete from here: /proc/self/pagemap could not be read\n";
    append(note, sizeof note - 1);
    say("ptsim recorder: cannot read /proc/self/pagemap any more; the #:touch records are incomplete\n");
  }
  return 0;
}

/* ---- Writing #:touch records ---- */

struct tout {
  struct blk *b;
  uint64_t first, last; /* the block's pages, absolute */
  uint64_t lo, hi;      /* a range of new pages not written yet, block-relative; none when lo > hi */
  size_t line;          /* bytes of the current record, 0 when none is open */
  int keep;             /* remember the pages written (a live block), or not (one that ends) */
};

static void tout_flush(struct tout *t) {
  if (t->lo > t->hi) return;
  char s[80], *o = s;
  if (t->line == 0) {
    o = put_str(o, "#:touch ");
    o = put_ptr(o, (const void *)t->b->p);
    *o++ = ' ';
  } else {
    *o++ = ',';
  }
  o = put_u64(o, t->lo);
  if (t->hi > t->lo) {
    *o++ = '-';
    o = put_u64(o, t->hi);
  }
  append(s, (size_t)(o - s));
  t->line += (size_t)(o - s);
  if (t->line > TOUCH_LINE_BYTES) {
    append("\n", 1);
    t->line = 0;
  }
  t->lo = 1;
  t->hi = 0;
}

static void tout_range(struct tout *t, uint64_t a, uint64_t z) {
  if (t->lo <= t->hi && t->hi + 1 == a) {
    t->hi = z - 1;
    return;
  }
  tout_flush(t);
  t->lo = a;
  t->hi = z - 1;
}

static void tout_end(struct tout *t) {
  tout_flush(t);
  if (t->line) append("\n", 1);
  t->line = 0;
  if (finished) flush_buf();
}

/* A run of resident pages [a, z), absolute: the pages of it not recorded yet are written. */
static void tout_run(void *ctx, uint64_t a, uint64_t z) {
  struct tout *t = ctx;
  if (a < t->first) a = t->first;
  if (z > t->last + 1) z = t->last + 1;
  if (a >= z) return;
  a -= t->first;
  z -= t->first;
  struct blk *b = t->b;
  uint64_t pages = t->last - t->first + 1, *bm;
  if (pages <= 64) {
    bm = &b->rec.word;
  } else {
    if (!b->rec.map && t->keep) b->rec.map = map_alloc((pages + 63) / 64);
    bm = b->rec.map;
  }
  if (!bm) { /* nothing recorded yet (or no memory to remember it: records may repeat pages) */
    tout_range(t, a, z);
    return;
  }
  while (a < z) {
    uint64_t w = a / 64, bit = a % 64, span = 64 - bit < z - a ? 64 - bit : z - a;
    uint64_t mask = (span == 64 ? ~0ull : (1ull << span) - 1) << bit;
    uint64_t fresh = ~bm[w] & mask;
    if (t->keep && fresh) {
      bm[w] |= fresh;
      b->nrec += (uint64_t)__builtin_popcountll(fresh);
    }
    while (fresh) {
      unsigned s = (unsigned)__builtin_ctzll(fresh);
      uint64_t ones = ~(fresh >> s);
      unsigned n = ones ? (unsigned)__builtin_ctzll(ones) : 64 - s;
      tout_range(t, w * 64 + s, w * 64 + s + n);
      fresh = s + n >= 64 ? 0 : fresh & (~0ull << (s + n));
    }
    a += span;
  }
}

/* The runs of resident pages of the allocator's heaps, as the last sample found them. */
struct run {
  uint64_t a, z;
};
static struct run *runs;
static size_t nruns;

/*
 * The pages of the main heap known to be resident, so that the free of a block whose pages all
 * are needs no system call: set from each sample's scan of the main heap and from the scans at
 * frees. A resident page of the main heap stays so until glibc gives it back, which it does by
 * lowering the break (systrim, in a free or realloc: the bits above the new break are cleared
 * after each), in malloc_trim (which also gives back free pages inside the heap) and in a
 * thread's teardown (its tcache flushed by frees no wrapper sees): those two clear them all. (A
 * program that madvises its own heap memory away is not noticed.) Bits at or above the break
 * are always clear.
 */
static uint64_t *known;
static size_t known_words;  /* capacity in 64-bit words */
static uint64_t known_base; /* the page of bit 0: the main heap's first; 0 before the first use */
static uint64_t known_top;  /* the page of the break when last seen, rounded up */

static void known_clear(uint64_t a, uint64_t z) {
  if (a < known_base) a = known_base;
  for (uint64_t k = a - known_base; k < z - known_base && k / 64 < known_words; k++) known[k / 64] &= ~(1ull << (k % 64));
}

static void known_forget(void) {
  if (known) memset(known, 0, known_words * 8);
}

static uint64_t brk_page(void) {
  uintptr_t cur = (uintptr_t)sbrk(0);
  return cur == (uintptr_t)-1 ? 0 : (cur + PAGE_BYTES - 1) / PAGE_BYTES;
}

/* After a call that may have lowered the break. */
static void known_brk(void) {
  if (!known_base) return;
  uint64_t top = brk_page();
  if (top < known_top) known_clear(top, known_top);
  known_top = top;
}

static int known_all(uint64_t first, uint64_t last) {
  if (!known_base || first < known_base || last >= known_top || (last - known_base) / 64 >= known_words) return 0;
  for (uint64_t k = first - known_base, z = last - known_base; k <= z; k++)
    if (!(known[k / 64] >> (k % 64) & 1)) return 0;
  return 1;
}

static void known_set(uint64_t a, uint64_t z) {
  if (!known_base || a >= known_top) return;
  if (a < known_base) a = known_base;
  if (z > known_top) z = known_top;
  size_t words = (size_t)((z - known_base + 63) / 64);
  if (words > known_words) {
    size_t cap = words < 512 ? 512 : words * 2;
    uint64_t *m = known ? mremap(known, known_words * 8, cap * 8, MREMAP_MAYMOVE) : map_anon(cap * 8);
    if (m == MAP_FAILED || !m) return;
    known = m;
    known_words = cap;
  }
  for (uint64_t k = a - known_base; k < z - known_base; k++) known[k / 64] |= 1ull << (k % 64);
}

/* From a sample's scan of the main heap [a, z), its runs r0..r1. */
static void known_rebuild(uint64_t a, uint64_t z, size_t r0, size_t r1) {
  if (!main_heap_start || a != main_heap_start / PAGE_BYTES) return;
  known_base = a;
  known_forget();
  known_top = z;
  for (size_t i = r0; i < r1; i++) known_set(runs[i].a, runs[i].z);
}

/* A run found resident by the scan at a free: known from now on, then recorded. */
static void tout_known_run(void *ctx, uint64_t a, uint64_t z) {
  known_set(a, z);
  tout_run(ctx, a, z);
}

/* A large block is freed or reallocated: the pages resident now that no record named yet. */
static void touch_end(uintptr_t p) {
  struct blk *b = tbl_find(p);
  if (!b) return;
  tbl_busy++;
  if (b->nrec < blk_pages(b)) {
    struct tout t = {.b = b, .first = blk_first(b), .last = blk_last(b), .lo = 1};
    known_brk(); /* the break only grew since the last free: the new pages are not known */
    if (known_all(t.first, t.last)) {
      tout_run(&t, t.first, t.last + 1);
    } else if (known_base && !b->mmapped && t.first >= known_base && t.last < known_top) {
      known_clear(t.first, t.last + 1);
      scan_range(t.first * PAGE_BYTES, (t.last + 1) * PAGE_BYTES, tout_known_run, &t);
    } else {
      scan_range(t.first * PAGE_BYTES, (t.last + 1) * PAGE_BYTES, tout_run, &t);
    }
    tout_end(&t);
  }
  tbl_remove(b);
  tbl_busy--;
}

/* ---- Samples ---- */

/* The heaps (as runs of resident pages: see above) they are in. */
struct seg {
  uint64_t a, z;  /* pages of the heap, absolute */
  size_t r0, r1;  /* its runs */
};
static size_t runs_cap;
static size_t runs_high; /* the most runs ever stored: the resident part of the array */
static size_t runs_floor; /* runs below this index belong to another heap */
static int runs_short;    /* a run could not be stored */
static struct seg segs[MAX_HEAPS + 1];
static int nsegs;

static void run_collect(void *ctx, uint64_t a, uint64_t z) {
  (void)ctx;
  if (nruns > runs_floor && runs[nruns - 1].z == a) {
    runs[nruns - 1].z = z;
    return;
  }
  if (nruns == runs_cap) {
    size_t cap = runs_cap ? runs_cap * 2 : 4096;
    struct run *r = runs ? mremap(runs, runs_cap * sizeof *r, cap * sizeof *r, MREMAP_MAYMOVE) : map_anon(cap * sizeof *r);
    if (r == MAP_FAILED || !r) {
      runs_short = 1;
      return;
    }
    runs = r;
    runs_cap = cap;
  }
  runs[nruns++] = (struct run){a, z};
  if (nruns > runs_high) runs_high = nruns;
}

static int self_check(int *f, dev_t *dev, ino_t *ino, const char *name) {
  if (*f >= 0 && same_file(*f, *dev, *ino)) return 1;
  int g = high_fd(open(name, O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (g < 0 || fstat(g, &st) != 0) {
    if (g >= 0) close(g);
    *f = -1;
    return 0;
  }
  *f = g;
  *dev = st.st_dev;
  *ino = st.st_ino;
  return 1;
}

/* RssAnon in bytes, from /proc/self/statm: resident - shared pages. UINT64_MAX when unreadable. */
static uint64_t read_anon(void) {
  if (!self_check(&statm_fd, &statm_dev, &statm_ino, "/proc/self/statm")) return UINT64_MAX;
  char s[160];
  ssize_t r = pread(statm_fd, s, sizeof s - 1, 0);
  if (r <= 0) return UINT64_MAX;
  s[r] = 0;
  uint64_t v[3] = {0, 0, 0};
  char *c = s;
  for (int i = 0; i < 3; i++) {
    while (*c == ' ') c++;
    if (*c < '0' || *c > '9') return UINT64_MAX;
    while (*c >= '0' && *c <= '9') v[i] = v[i] * 10 + (uint64_t)(*c++ - '0');
  }
  return v[1] >= v[2] ? (v[1] - v[2]) * (uint64_t)PAGE_BYTES : 0;
}

/* Scans the main heap and the other arenas' heaps into `runs`; 0 when one of them could not be. */
static int scan_heaps(void) {
  static struct seg found[MAX_HEAPS + 1]; /* not on the stack: a program's thread may have little */
  nruns = 0;
  nsegs = 0;
  int n = 0, complete = 1;
  uintptr_t top = (uintptr_t)sbrk(0);
  if (main_heap_start && top != (uintptr_t)-1 && top > main_heap_start)
    found[n++] = (struct seg){main_heap_start / PAGE_BYTES, (top + PAGE_BYTES - 1) / PAGE_BYTES, 0, 0};
  for (int i = 0; i < nheaps;) {
    /* heap_info: ar_ptr, prev, size, mprotect_size. A heap glibc has unmapped cannot be read. */
    uint64_t hi[4];
    struct iovec local = {hi, sizeof hi}, remote = {(void *)heaps[i], sizeof hi};
    int ok = syscall(SYS_process_vm_readv, my_pid, &local, 1UL, &remote, 1UL, 0UL) == (long)sizeof hi;
    if (ok) {
      uintptr_t arena_heap = (uintptr_t)hi[0] & ~(HEAP_ALIGN - 1);
      ok = hi[0] != 0 && hi[2] > 0 && hi[2] <= HEAP_ALIGN && hi[2] % PAGE_BYTES == 0 && hi[3] >= hi[2] && hi[3] <= HEAP_ALIGN;
      int seen = 0; /* the arena is in a heap of ours */
      for (int j = 0; ok && j < nheaps && !seen; j++) seen = heaps[j] == arena_heap;
      ok = ok && seen;
    }
    if (!ok) {
      uintptr_t gone = heaps[i];
      heaps[i] = heaps[--nheaps];
      if (last_heap == gone) last_heap = 0;
      continue;
    }
    found[n++] = (struct seg){heaps[i] / PAGE_BYTES, (heaps[i] + hi[2]) / PAGE_BYTES, 0, 0};
    i++;
  }
  /* In address order, so that the runs are too. */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && found[j].a < found[j - 1].a; j--) {
      struct seg t = found[j];
      found[j] = found[j - 1];
      found[j - 1] = t;
    }
  for (int i = 0; i < n; i++) {
    if (nsegs > 0 && found[i].a < segs[nsegs - 1].z) continue; /* overlapping: not a heap after all */
    struct seg s = found[i];
    s.r0 = runs_floor = nruns; /* a run never spans two heaps */
    runs_short = 0;
    if (!scan_range(s.a * PAGE_BYTES, s.z * PAGE_BYTES, run_collect, NULL) || runs_short) {
      nruns = s.r0; /* its blocks are scanned one by one */
      complete = 0;
      continue;
    }
    s.r1 = nruns;
    segs[nsegs++] = s;
    if (main_heap_start && s.a == main_heap_start / PAGE_BYTES) known_rebuild(s.a, s.z, s.r0, s.r1);
  }
  runs_floor = 0;
  return complete;
}

static const struct seg *seg_of(uint64_t first, uint64_t last) {
  int lo = 0, hi = nsegs;
  while (lo < hi) { /* the first heap that starts after `first` */
    int mid = (lo + hi) / 2;
    if (segs[mid].a <= first) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && last < segs[lo - 1].z ? &segs[lo - 1] : NULL;
}

/* Writes the records of the live large blocks whose resident set grew. Returns the resident
   bytes of the allocator's memory, or UINT64_MAX when they are not known. */
static uint64_t sweep(void) {
  scan_resident = 0;
  int heap_known = scan_heaps();
  uint64_t pages = scan_resident;
  for (size_t i = 0; i < tbl_cap; i++) {
    struct blk *b = &tbl[i];
    if (!b->p || (b->nrec == blk_pages(b) && !b->mmapped)) continue;
    struct tout t = {.b = b, .first = blk_first(b), .last = blk_last(b), .lo = 1, .keep = 1};
    const struct seg *s = seg_of(t.first, t.last);
    if (s) {
      size_t lo = s->r0, hi = s->r1;
      while (lo < hi) { /* the first run that ends after the block's first page */
        size_t mid = (lo + hi) / 2;
        if (runs[mid].z <= t.first) lo = mid + 1;
        else hi = mid;
      }
      for (size_t k = lo; k < s->r1 && runs[k].a <= t.last; k++) tout_run(&t, runs[k].a, runs[k].z);
    } else {
      scan_resident = 0;
      if (!scan_range(t.first * PAGE_BYTES, (t.last + 1) * PAGE_BYTES, tout_run, &t)) heap_known = 0;
      if (b->mmapped) pages += scan_resident;
    }
    tout_end(&t);
  }
  return heap_known ? pages * PAGE_BYTES : UINT64_MAX;
}

/* Bytes rounded up to whole pages. */
static uint64_t pages_of(uint64_t bytes) { return (bytes + PAGE_BYTES - 1) / PAGE_BYTES; }

/* The recorder's own anonymous resident memory, for `rec=`, without a system call: the part of
   the buffer ever filled, the bitmaps handed out, the pages of the table of large blocks that
   slots were written in (a table of more than 64 pages is counted whole: a hash spreads its
   slots, and a table is at least a quarter full once it has grown), the heap scans' runs up to
   the most ever stored, and the main heap's known pages (a bit a page). Its static data (a few
   pages) is left out. */
static uint64_t own_resident(void) {
  uint64_t table = tbl_cap * sizeof *tbl <= 64 * PAGE_BYTES ? (uint64_t)__builtin_popcountll(tbl_touched) : pages_of(tbl_cap * sizeof *tbl);
  uint64_t pages = pages_of(buf_high) + pages_of(map_bytes) + table;
  pages += pages_of(runs_high * sizeof *runs) + pages_of(known_words * 8);
  return pages * PAGE_BYTES;
}

static char *put_key(char *o, const char *key, uint64_t v) {
  *o++ = ' ';
  o = put_str(o, key);
  *o++ = '=';
  return put_u64(o, v);
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A sample: the records of grown blocks, then `#:rss @TIME anon=... heap=... rec=... [mark=NAME]`. */
static void sample(const char *mark) {
  if (tbl_busy) return; /* a signal handler, in the middle of our bookkeeping */
  tbl_busy++;
  uint64_t start = now_ns(), cpu = thread_cpu_ns();
  uint64_t heap = sweep();
  uint64_t anon = read_anon();
  if (anon != UINT64_MAX) {
    char line[LINE_MAX_BYTES + MARK_MAX], *o = put_str(line, "#:rss @");
    o = put_u64(o, start - t0);
    o = put_key(o, "anon", anon);
    if (heap != UINT64_MAX) o = put_key(o, "heap", heap);
    o = put_key(o, "rec", own_resident());
    if (mark) {
      o = put_str(o, " mark=");
      o = put_str(o, mark);
    }
    *o++ = '\n';
    append(line, (size_t)(o - line));
    if (!sampled) {
      sampled = 1;
      first_anon = anon;
      first_heap = heap;
      peak_anon = 0;
    }
    if (anon > peak_anon) {
      peak_anon = anon;
      peak_heap = heap;
      peak_event = events;
    }
  }
  if (finished) flush_buf();
  uint64_t end = now_ns();
  since_sample = 0;
  due_ns = every_ns ? end + every_ns : UINT64_MAX;
  /* Its cost is the processor time it took: a thread preempted in the middle has not cost more. */
  allowed_ns = end + (thread_cpu_ns() - cpu) * COST_RATIO;
  tbl_busy--;
}

/* Due by time or by count; put off while the samples so far would cost more than their share. */
static void periodic_sample(void) {
  if (own_events > 1 && last_ns < allowed_ns) {
    since_sample = 0;
    due_ns = allowed_ns;
    return;
  }
  sample(NULL);
}

/* The end of this image's recording: the last records and sample, and the peak, for ptsim record. */
static void end_sample(void) {
  if (!touches || own_events == 0 || tbl_busy) return;
  sample(NULL);
  if (!sampled) return;
  char line[LINE_MAX_BYTES], *o = put_str(line, "# rss_peak");
  o = put_key(o, "anon", peak_anon);
  if (peak_heap != UINT64_MAX) o = put_key(o, "heap", peak_heap);
  o = put_key(o, "event", peak_event);
  o = put_key(o, "first_anon", first_anon);
  if (first_heap != UINT64_MAX) o = put_key(o, "first_heap", first_heap);
  *o++ = '\n';
  append(line, (size_t)(o - line));
}

/* Settings from the environment (PTSIM_RECORD_TOUCHES, PTSIM_RECORD_RSS_EVERY; `entries`, from
   PTSIM_RECORD_PAGEMAP=entries, has the pagemap entries read where PAGEMAP_SCAN would do, so that
   the tests can try both), and what this kernel offers; under the lock, at the start of an image,
   once the buffer is mapped. */
static void touch_setup(const char *off, const char *every, int entries) {
  touches = !(off && strcmp(off, "0") == 0) && getpagesize() == (int)PAGE_BYTES;
  if (!touches) return;
  if (!self_check(&pm_fd, &pm_dev, &pm_ino, "/proc/self/pagemap") || !self_check(&statm_fd, &statm_dev, &statm_ino, "/proc/self/statm")) {
    touches = 0;
    return;
  }
  struct pm_region r[1];
  struct pm_scan a = {.size = sizeof a, .start = (uintptr_t)buf, .end = (uintptr_t)buf + PAGE_BYTES, .vec = (uintptr_t)r, .vec_len = 1, .category_mask = PM_PRESENT, .return_mask = PM_PRESENT};
  uint64_t e;
  if (!entries && ioctl(pm_fd, PM_SCAN_IOCTL, &a) >= 0) scan_kind = SCAN_IOCTL;
  else if (pread(pm_fd, &e, 8, (off_t)((uintptr_t)buf / PAGE_BYTES * 8)) == 8) scan_kind = SCAN_ENTRIES;
  else {
    touches = 0;
    return;
  }
  /* "100ms,50000": a sample 100 ms after the last one, or after 50000 events, whichever is first. */
  if (!every) every = "100ms,50000";
  every_ns = every_calls = 0;
  while (*every) {
    uint64_t v = 0;
    int digits = 0;
    for (; *every >= '0' && *every <= '9' && digits < 15; every++, digits++) v = v * 10 + (uint64_t)(*every - '0');
    if (digits && every[0] == 'm' && every[1] == 's') every_ns = v * 1000000;
    else if (digits && (*every == ',' || !*every)) every_calls = v;
    while (*every && *every != ',') every++;
    if (*every) every++;
  }
  char *o = rss_every_text;
  if (every_ns) o = put_str(put_u64(o, every_ns / 1000000), "ms");
  if (every_ns && every_calls) *o++ = ',';
  if (every_calls) o = put_str(put_u64(o, every_calls), "events");
  if (o == rss_every_text) o = put_str(o, "off");
  *o = 0;
}

/* A name a program gave ptsim_mark, made a token: at most MARK_MAX bytes, no spaces or controls. */
static void mark_name(char *out, const char *name) {
  size_t n = 0;
  for (; name && name[n] && n < MARK_MAX; n++) {
    char c = name[n];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.:/+-@%,", c) != NULL;
    out[n] = ok ? c : '_';
  }
  if (n == 0) n = (size_t)(put_str(out, "unnamed") - out);
  out[n] = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Threads that ended.                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void emit_exit(uint32_t no) {
  known_forget(); /* the thread's tcache went back to its arena in frees no wrapper saw */
  char line[LINE_MAX_BYTES];
  char *o = rec_head(line, no, "exit");
  rec_commit(line, o);
  if (live_threads) live_threads--;
}

/* Reads an int of another thread's descriptor, which may have been unmapped by glibc's stack
   cache once the thread was joined: process_vm_readv fails cleanly where a load would fault. */
static int read_word(uintptr_t addr, int *out) {
  struct iovec local = {out, sizeof *out};
  struct iovec remote = {(void *)addr, sizeof *out};
  return syscall(SYS_process_vm_readv, my_pid, &local, 1UL, &remote, 1UL, 0UL) == (long)sizeof *out;
}

/* The tid word of a thread descriptor, or 0 when it cannot be read (the thread is gone). */
static pid_t read_tid_word(uintptr_t pd) {
  int v;
  return read_word(pd + (uintptr_t)tid_off, &v) ? v : 0;
}

/* Writes `exit` for every pending thread that is gone. Under the lock. Threads land here only
   when their exit could not be ordered through the gate (it timed out). */
static void reap_pending(int always) {
  for (int i = 0; i < npending;) {
    struct pend *p = &pending[i];
    /* A thread stuck for long is checked ever more rarely. */
    if (!always && p->fails > 1000 && (p->fails++ & 1023) != 0) {
      i++;
      continue;
    }
    if (read_tid_word(p->pd) == p->ktid) {
      p->fails++;
      i++;
      continue;
    }
    emit_exit(p->no);
    pending[i] = pending[--npending];
  }
}

/* Has the thread holding the gate finished with the allocator? */
static int gate_done(void) {
  if (read_tid_word(gate.pd) != gate.ktid) return 1; /* gone altogether */
  if (gate.by_tid) return 0;
  int v;
  return !read_word(gate.pd + (uintptr_t)canc_off, &v) || (v & EXITING_BIT) != 0;
}

/* Called by lock() with the mutex held, while another thread's exit is in progress: waits,
   letting go of the mutex (the exiting thread's own frees need it), until that thread is done,
   then writes its `exit`. */
static void wait_gate(pid_t me) {
  for (unsigned i = 0; gate_holder != 0 && gate_holder != me; i++) {
    if (gate_done()) {
      gate_holder = 0;
      emit_exit(gate.no);
      return;
    }
    if (now_ns() - gate.since > GATE_TIMEOUT_NS) {
      /* Stuck, perhaps in a destructor waiting for a thread that waits here: stop holding the
         others back. Its exit is written once its tid word clears, wherever that falls. */
      gate_holder = 0;
      known_forget();
      if (npending < PEND_MAX) pending[npending++] = (struct pend){gate.no, gate.ktid, gate.pd, 0};
      else emit_exit(gate.no);
      return;
    }
    lk_depth = 0;
    lk_owner = 0;
    pthread_mutex_unlock(&lk);
    if (i < 64) {
      sched_yield();
    } else {
      struct timespec ts = {0, 20000};
      nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&lk);
    lk_depth = 1;
    lk_owner = me;
  }
}

/*
 * pthread_key destructor, run by __nptl_deallocate_tsd when a thread that allocated ends. It
 * re-arms itself until glibc's last round (PTHREAD_DESTRUCTOR_ITERATIONS), so that the other
 * keys' destructors, which may free, have run. The thread then takes the gate: from here until
 * start_thread sets its EXITING bit, right after __libc_thread_freeres (or until its tid word
 * clears, for a thread whose EXITING bit pthread_exit set early), only it may make recorded
 * calls; the next thread to take the lock after that writes its `exit`.
 */
static void on_thread_end(void *value) {
  (void)value;
  if (state != ST_ON || t_no == 0) return;
  if (++t_rounds < PTHREAD_DESTRUCTOR_ITERATIONS) {
    pthread_setspecific(thread_key, (void *)1);
    return;
  }
  lock(); /* waits while another thread's exit is in progress */
  if (state == ST_ON) {
    if (tid_off < 0) {
      emit_exit(t_no);
    } else {
      uintptr_t pd = (uintptr_t)pthread_self();
      int early = canc_off < 0 || (*(volatile int *)(pd + (uintptr_t)canc_off) & EXITING_BIT) != 0;
      gate = (struct dying){t_no, self_ktid(), pd, early, now_ns()};
      gate_holder = gate.ktid;
    }
  }
  unlock();
}

/* Finds the tid word in struct pthread: the main thread's descriptor holds the pid there. */
static void find_tid_word(void) {
  pid_t me = self_ktid();
  const char *pd = (const char *)pthread_self();
  if (me != getpid()) return; /* not the main thread: leave it unknown */
  /* glibc 2.3x on x86_64 keeps it at 0x2d0 (THREAD_SELF->tid, %fs:0x2d0); look there first. */
  if (*(const pid_t *)(pd + 0x2d0) == me) {
    tid_off = 0x2d0;
    /* cancelhandling sits at 0x308 in glibc 2.36's struct pthread (%fs:0x308 in its code). */
    if (strcmp(gnu_get_libc_version(), "2.36") == 0 && (*(const int *)(pd + 0x308) & EXITING_BIT) == 0) canc_off = 0x308;
    return;
  }
  for (long o = 0; o < 2048; o += 4)
    if (*(const pid_t *)(pd + o) == me) {
      tid_off = o;
      return;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Start-up: the header.                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void header_line(const char *key, const char *value, size_t n) {
  char line[LINE_MAX_BYTES + 64];
  char *o = put_str(line, "# ");
  o = put_str(o, key);
  *o++ = ' ';
  append(line, (size_t)(o - line));
  /* Facts for people: control bytes would break the line, so they become '?'. */
  for (size_t i = 0; i < n; i += sizeof line) {
    size_t k = n - i < sizeof line ? n - i : sizeof line;
    memcpy(line, value + i, k);
    for (size_t j = 0; j < k; j++)
      if ((unsigned char)line[j] < 0x20 || line[j] == 0x7f) line[j] = '?';
    append(line, k);
  }
  append("\n", 1);
}

static int shell_plain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_./:=,+@%^-", c) != NULL;
}

/* `# cmdline`: the arguments, quoted like a shell would need them. */
static void cmdline_line(char *scratch, size_t cap) {
  ssize_t n = read_proc("/proc/self/cmdline", scratch, cap / 2);
  if (n <= 0) return;
  char *out = scratch + cap / 2, *o = out, *end = scratch + cap - 8;
  for (char *a = scratch; a < scratch + n && o < end; a += strlen(a) + 1) {
    if (a != scratch) *o++ = ' ';
    int plain = *a != 0;
    for (char *c = a; *c; c++) plain &= shell_plain(*c);
    if (plain) {
      for (char *c = a; *c && o < end; c++) *o++ = *c;
      continue;
    }
    *o++ = '\'';
    for (char *c = a; *c && o < end - 4; c++) {
      if (*c == '\'') o = put_str(o, "'\\''");
      else *o++ = *c;
    }
    *o++ = '\'';
  }
  header_line("cmdline", out, (size_t)(o - out));
}

static int env_name_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9'))) return 0;
  }
  return n > 0;
}

/* PTSIM_RECORD_TOUCHES, PTSIM_RECORD_RSS_EVERY and PTSIM_RECORD_PAGEMAP, copied out of the
   scratch buffer. */
static char env_touches[8], env_every[48], env_pagemap[16], env_stacks[8], env_free_stacks[4];

static void copy_setting(char *dst, size_t cap, const char *value) {
  size_t n = strlen(value);
  if (n >= cap) n = cap - 1;
  memcpy(dst, value, n);
  dst[n] = 0;
}

/* Reads the start-up environment: our settings, and the allocator settings for the header. */
static void read_environment(char *scratch, size_t cap, int write_header, const char **dir, long *ppid) {
  ssize_t n = read_proc("/proc/self/environ", scratch, cap);
  if (n <= 0) return;
  for (char *v = scratch; v < scratch + n; v += strlen(v) + 1) {
    char *eq = strchr(v, '=');
    if (!eq) continue;
    size_t name_len = (size_t)(eq - v);
    if (name_len == 16 && memcmp(v, "PTSIM_RECORD_DIR", 16) == 0) *dir = eq + 1;
    else if (name_len == 17 && memcmp(v, "PTSIM_RECORD_PPID", 17) == 0) *ppid = atol(eq + 1);
    else if (name_len == 20 && memcmp(v, "PTSIM_RECORD_TOUCHES", 20) == 0) copy_setting(env_touches, sizeof env_touches, eq + 1);
    else if (name_len == 22 && memcmp(v, "PTSIM_RECORD_RSS_EVERY", 22) == 0) copy_setting(env_every, sizeof env_every, eq + 1);
    else if (name_len == 20 && memcmp(v, "PTSIM_RECORD_PAGEMAP", 20) == 0) copy_setting(env_pagemap, sizeof env_pagemap, eq + 1);
    else if (name_len == 19 && memcmp(v, "PTSIM_RECORD_STACKS", 19) == 0) copy_setting(env_stacks, sizeof env_stacks, eq + 1);
    else if (name_len == 24 && memcmp(v, "PTSIM_RECORD_FREE_STACKS", 24) == 0) copy_setting(env_free_stacks, sizeof env_free_stacks, eq + 1);
    else if (write_header && ((name_len == 14 && memcmp(v, "GLIBC_TUNABLES", 14) == 0) || (name_len > 7 && memcmp(v, "MALLOC_", 7) == 0))) {
      /* glibc reads these when malloc initialises (ptmalloc_init); the replay applies them. */
      if (env_name_ok(v, name_len) && !strchr(eq + 1, '\n')) header_line("env", v, strlen(v));
    }
  }
}

/* Field 47 of /proc/self/stat: where the kernel put the program break (the heap's start). */
static uint64_t start_brk(char *scratch, size_t cap) {
  ssize_t n = read_proc("/proc/self/stat", scratch, cap);
  if (n <= 0) return 0;
  char *p = strrchr(scratch, ')'); /* the command name may contain spaces and ')' */
  if (!p) return 0;
  p++;
  for (int field = 3; *p; field++) {
    while (*p == ' ') p++;
    if (field == 47) return strtoull(p, NULL, 10);
    while (*p && *p != ' ') p++;
  }
  return 0;
}

/* Resident pages of the process (the second field of /proc/self/statm), -1 when unknown. */
static long statm_resident(char *scratch, size_t cap) {
  if (read_proc("/proc/self/statm", scratch, cap) <= 0) return -1;
  char *p = strchr(scratch, ' ');
  return p ? strtol(p + 1, NULL, 10) : -1;
}

/*
 * Whether a read of an untouched anonymous page maps the shared zero page (most kernels: it stays
 * out of RSS) rather than giving the page a frame of its own, which the replay must know for the
 * reads glibc makes (realloc's copy of the old block). Probed on 64 pages mapped for the purpose.
 */
static int reads_map_zero_page(char *scratch, size_t cap) {
  enum { PAGES = 64 };
  volatile char *m = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 1;
  long before = statm_resident(scratch, cap);
  char sum = 0;
  for (int i = 0; i < PAGES; i++) sum += m[i * 4096];
  long after = statm_resident(scratch, cap);
  munmap((void *)m, PAGES * 4096);
  return before < 0 || after < 0 || sum != 0 || after - before < PAGES;
}

static void write_header(char *scratch, size_t cap) {
  char num[32];
  append("# ptsim trace v1\n", 17);
  header_line("pid", num, (size_t)(put_u64(num, (uint64_t)my_pid) - num));
  ssize_t n = readlink("/proc/self/exe", scratch, cap - 1);
  if (n > 0) header_line("exe", scratch, (size_t)n);
  cmdline_line(scratch, cap);
  /* Debian's glibc 2.36 sets the arena limit from the online CPUs, which get_nprocs counts. */
  header_line("nprocs", num, (size_t)(put_u64(num, (uint64_t)get_nprocs()) - num));
  /* The CPUs it may run on: glibc 2.34 and 2.35 set the arena limit from them, not the online ones. */
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    header_line("cpus_allowed", num, (size_t)(put_u64(num, (uint64_t)CPU_COUNT(&allowed)) - num));
  /* The release the program runs on: the replay models it unless told otherwise. */
  const char *release = gnu_get_libc_version();
  header_line("glibc", release, strlen(release));
  uint64_t b = start_brk(scratch, cap);
  if (b) header_line("start_brk", num, (size_t)(put_hex(num, b) - num));
  /* Written only for a kernel without the zero page: the replay's default is the usual kernel. */
  if (!reads_map_zero_page(scratch, cap)) header_line("zero_page", "no", 2);
  /* A program break already moved before the first call (someone called sbrk) shifts the heap. */
  uintptr_t cur = (uintptr_t)sbrk(0);
  if (b && cur != b) header_line("brk_at_first_call", num, (size_t)(put_hex(num, cur) - num));
  main_heap_start = cur != (uintptr_t)-1 ? cur : 0; /* where glibc's main heap will start */
}

static void stacks_setup(const char *depth, const char *frees);

/* Under the lock, once per process image (a forked child inherits the result). */
static void init_recording(void) {
  state = ST_OFF;
  my_pid = getpid();
  size_t cap = 4u << 20; /* room for the largest environment the kernel allows */
  char *scratch = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (scratch == MAP_FAILED) return;
  const char *dir = NULL;
  long ppid = -1;
  read_environment(scratch, cap, 0, &dir, &ppid);
  if (!dir || !*dir || strlen(dir) > sizeof out_dir - 64 || (ppid >= 0 && getppid() != ppid)) {
    munmap(scratch, cap);
    return;
  }
  strcpy(out_dir, dir);
  only_ppid = ppid;
  buf = mmap(NULL, BUF_CAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) {
    buf = NULL;
    munmap(scratch, cap);
    return;
  }
  t0 = now_ns();
  touch_setup(env_touches[0] ? env_touches : NULL, env_every[0] ? env_every : NULL, strcmp(env_pagemap, "entries") == 0);
  write_header(scratch, cap);
  read_environment(scratch, cap, 1, &dir, &ppid);
  munmap(scratch, cap);
  if (touches) {
    append("# touches recorded\n", 19);
    header_line("rss_sampling", rss_every_text, strlen(rss_every_text));
  }
  stacks_setup(env_stacks, env_free_stacks);
  find_tid_word();
  thread_key_ok = pthread_key_create(&thread_key, on_thread_end) == 0;
  state = ST_ON;
}

/* A thread's first call: its number, and the key whose destructor tells us when it ends. */
static __attribute__((noinline)) int first_call(void) {
  lock();
  if (state == ST_UNINIT) init_recording();
  if (state != ST_ON) {
    unlock();
    return 0;
  }
  t_no = ++next_tid;
  live_threads++;
  /* Every new thread confirms where the tid word is; if one does not, stop trusting it. */
  const char *pd = (const char *)pthread_self();
  if (tid_off >= 0 && *(const pid_t *)(pd + tid_off) != self_ktid()) tid_off = canc_off = -1;
  if (canc_off >= 0 && (*(const int *)(pd + canc_off) & EXITING_BIT) != 0) canc_off = -1;
  unlock();
  /* Outside the lock: for a key above 31 pthread_setspecific callocs a second-level block,
     which is a real call of this thread and is recorded like any other. */
  if (thread_key_ok) pthread_setspecific(thread_key, (void *)1);
  return 1;
}

/* Takes the lock if this call is to be recorded. glibc sees the errno the program left: our
   own system calls on the way (a failed process_vm_readv, say) must not show. */
static inline int rec_begin(void) {
  if (__atomic_load_n(&state, __ATOMIC_RELAXED) == ST_OFF) return 0;
  int saved = errno;
  if (__builtin_expect(t_no == 0, 0) && !first_call()) {
    errno = saved;
    return 0;
  }
  lock();
  if (__builtin_expect(state != ST_ON, 0)) {
    unlock();
    errno = saved;
    return 0;
  }
  if (__builtin_expect(npending != 0, 0)) reap_pending(0);
  errno = saved;
  return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Call stacks (PTSIM_RECORD_STACKS).                                                          */
/* ------------------------------------------------------------------------------------------ */

/*
 * With PTSIM_RECORD_STACKS=DEPTH, every allocating call (and every free, with
 * PTSIM_RECORD_FREE_STACKS=1) carries the return addresses of up to DEPTH frames of its caller's
 * stack: the event line ends in `^ID`, and the first use of each distinct stack is preceded by a
 * `#:stack ID ADDR...` record, so a stack is written once however often it allocates. Before a
 * stack with an address outside the executable mappings already written, /proc/self/maps is read
 * again and the new ones are written as `#:map START END OFFSET PATH`, so that the symbolizer can
 * find each address's file even in a library loaded later or unloaded since.
 *
 * The unwinder is libgcc's _Unwind_Backtrace, linked into the recorder statically with its
 * symbols kept private (-static-libgcc, --exclude-libs), so it interposes nothing of the
 * program's. It reads the DWARF call-frame information (.eh_frame) that GCC and Clang emit by
 * default on x86_64 (-fasynchronous-unwind-tables), so it unwinds optimised code built without
 * frame pointers, and finds each object's .eh_frame_hdr with glibc's _dl_find_object: no lock, no
 * allocation. It runs under our lock, before the real call, with a thread-local guard: an
 * allocator call made from inside the unwinder (there should be none) is recorded without a
 * stack rather than unwound again. The stack table lives in memory of our own (mmap), so it never
 * touches the program's heap; a forked child inherits it with the parent's trace, which holds
 * every stack record written before the fork.
 *
 * The addresses are return addresses (the instruction after each call), as the symbolizer
 * expects to look up ADDR - 1; for a frame interrupted by a signal, whose address is the
 * interrupted instruction itself, ADDR + 1 is written instead.
 */

#define STACK_MAX 256
#define MAPS_MAX 8192
static unsigned stacks_depth;  /* 0: no stacks */
static int stacks_frees;
static uintptr_t self_lo, self_hi; /* our own code: its frames are left out */
static TLS int t_unwinding;
static TLS uintptr_t t_frames[STACK_MAX];

struct stk_slot {
  uint64_t hash;
  uint32_t id; /* id + 1; 0: a free slot */
  uint32_t n;
  uint64_t at; /* its frames, in stk_pool */
};
static struct stk_slot *stk_tbl;
static size_t stk_cap, stk_n;
static uintptr_t *stk_pool;
static size_t stk_pool_cap, stk_pool_n; /* in frames */
static int stk_full;                    /* out of memory for the table: no more stacks */

struct map_rng {
  uintptr_t lo, hi, off;
};
static struct map_rng maps[MAPS_MAX];
static int nmaps;
static char *maps_buf; /* 64 KiB, for reading /proc/self/maps */

struct bt {
  uintptr_t *f;
  unsigned n, max;
  int skipping;
};

static _Unwind_Reason_Code bt_step(struct _Unwind_Context *ctx, void *arg) {
  struct bt *b = arg;
  int before = 0;
  uintptr_t ip = _Unwind_GetIPInfo(ctx, &before);
  if (ip == 0) return _URC_END_OF_STACK;
  if (b->skipping && ip - self_lo < self_hi - self_lo) return _URC_NO_REASON;
  b->skipping = 0;
  b->f[b->n++] = before ? ip + 1 : ip;
  return b->n >= b->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

/* The caller's stack into t_frames; returns the number of frames (0: none, or not wanted). */
static __attribute__((noinline)) unsigned stack_capture(void) {
  if (!stacks_depth || t_unwinding || stk_full) return 0;
  t_unwinding = 1;
  int known = self_hi > self_lo;
  struct bt b = {t_frames, 0, known ? stacks_depth : stacks_depth + 2, known};
  if (b.max > STACK_MAX) b.max = STACK_MAX;
  _Unwind_Backtrace(bt_step, &b);
  t_unwinding = 0;
  /* Without our own code's range, the first two frames are this function and the wrapper. */
  if (!known) {
    unsigned drop = b.n < 2 ? b.n : 2;
    memmove(t_frames, t_frames + drop, (b.n - drop) * sizeof t_frames[0]);
    b.n -= drop;
  }
  return b.n;
}

static uint64_t stack_hash(const uintptr_t *f, unsigned n) {
  uint64_t h = 0xcbf29ce484222325ull ^ n;
  for (unsigned i = 0; i < n; i++) h = (h ^ f[i]) * 0x100000001b3ull, h ^= h >> 29;
  return h | 1;
}

static int stk_grow(void) {
  size_t cap = stk_cap ? stk_cap * 2 : 4096;
  struct stk_slot *t = map_anon(cap * sizeof *t);
  if (!t) return 0;
  for (size_t i = 0; i < stk_cap; i++) {
    if (!stk_tbl[i].id) continue;
    size_t j = stk_tbl[i].hash & (cap - 1);
    while (t[j].id) j = (j + 1) & (cap - 1);
    t[j] = stk_tbl[i];
  }
  if (stk_tbl) munmap(stk_tbl, stk_cap * sizeof *stk_tbl);
  stk_tbl = t;
  stk_cap = cap;
  return 1;
}

static int pool_room(size_t n) {
  if (stk_pool_n + n <= stk_pool_cap) return 1;
  size_t cap = stk_pool_cap ? stk_pool_cap * 2 : (1u << 16);
  while (cap < stk_pool_n + n) cap *= 2;
  void *p = stk_pool ? mremap(stk_pool, stk_pool_cap * sizeof *stk_pool, cap * sizeof *stk_pool, MREMAP_MAYMOVE)
                     : mmap(NULL, cap * sizeof *stk_pool, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 0;
  stk_pool = p;
  stk_pool_cap = cap;
  return 1;
}

static int map_covers(uintptr_t a) {
  for (int i = nmaps - 1; i >= 0; i--)
    if (a - maps[i].lo < maps[i].hi - maps[i].lo) return 1;
  return 0;
}

static uintptr_t parse_hex(const char **s) {
  uintptr_t v = 0;
  for (;; (*s)++) {
    char c = **s;
    if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
    else return v;
  }
}

/* One line of /proc/self/maps: an executable mapping of a file we have not written yet is
   written as a #:map record. */
static void maps_line(const char *s, const char *e) {
  uintptr_t lo = parse_hex(&s);
  if (*s++ != '-') return;
  uintptr_t hi = parse_hex(&s);
  if (*s++ != ' ' || e - s < 5 || s[2] != 'x') return;
  s += 5;
  uintptr_t off = parse_hex(&s);
  for (int field = 0; field < 2 && s < e; field++) { /* dev, inode */
    while (s < e && *s == ' ') s++;
    while (s < e && *s != ' ') s++;
  }
  while (s < e && *s == ' ') s++;
  if (s >= e || *s != '/') return; /* anonymous, [vdso], [stack]...: no file to read symbols from */
  for (int i = 0; i < nmaps; i++)
    if (maps[i].lo == lo && maps[i].hi == hi && maps[i].off == off) return;
  if (nmaps == MAPS_MAX) { /* forget the oldest half: they are in the trace already */
    memmove(maps, maps + MAPS_MAX / 2, (MAPS_MAX / 2) * sizeof maps[0]);
    nmaps = MAPS_MAX / 2;
  }
  maps[nmaps++] = (struct map_rng){lo, hi, off};
  char head[80], *o = put_str(head, "#:map ");
  o = put_hex(o, lo);
  *o++ = ' ';
  o = put_hex(o, hi);
  *o++ = ' ';
  o = put_hex(o, off);
  *o++ = ' ';
  append(head, (size_t)(o - head));
  append(s, (size_t)(e - s));
  append("\n", 1);
}

/* Writes the executable file mappings not written yet. */
static void maps_update(void) {
  if (!maps_buf && !(maps_buf = map_anon(1u << 16))) return;
  int f = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (f < 0) return;
  size_t have = 0;
  for (;;) {
    ssize_t r = read(f, maps_buf + have, (1u << 16) - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += (size_t)r;
    char *s = maps_buf, *end = maps_buf + have, *nl;
    while ((nl = memchr(s, '\n', (size_t)(end - s))) != NULL) {
      maps_line(s, nl);
      s = nl + 1;
    }
    have = (size_t)(end - s);
    if (have == (1u << 16)) have = 0; /* a line longer than the buffer: drop it */
    memmove(maps_buf, s, have);
  }
  close(f);
}

/* The stack of t_frames[0, n): its number, writing its record (and new mappings) the first time. */
static char *put_stack(char *o, unsigned n) {
  if (n == 0 || stk_full) return o;
  uint64_t h = stack_hash(t_frames, n);
  if (stk_n * 2 >= stk_cap && !stk_grow()) {
    stk_full = 1;
    return o;
  }
  size_t i = h & (stk_cap - 1);
  for (; stk_tbl[i].id; i = (i + 1) & (stk_cap - 1)) {
    struct stk_slot *s = &stk_tbl[i];
    if (s->hash == h && s->n == n && memcmp(stk_pool + s->at, t_frames, n * sizeof t_frames[0]) == 0) goto found;
  }
  if (!pool_room(n)) {
    stk_full = 1;
    return o;
  }
  stk_tbl[i] = (struct stk_slot){h, (uint32_t)stk_n + 1, n, stk_pool_n};
  memcpy(stk_pool + stk_pool_n, t_frames, n * sizeof t_frames[0]);
  stk_pool_n += n;
  stk_n++;
  for (unsigned k = 0; k < n; k++)
    if (!map_covers(t_frames[k] - 1)) {
      maps_update();
      break;
    }
  {
    char rec[64], *r = put_str(rec, "#:stack ");
    r = put_u64(r, stk_tbl[i].id - 1);
    append(rec, (size_t)(r - rec));
    for (unsigned k = 0; k < n; k++) {
      r = rec;
      *r++ = ' ';
      r = put_hex(r, t_frames[k]);
      append(rec, (size_t)(r - rec));
    }
    append("\n", 1);
  }
found:
  *o++ = ' ';
  *o++ = '^';
  return put_u64(o, stk_tbl[i].id - 1);
}

static void stacks_setup(const char *depth, const char *frees) {
  unsigned d = 0;
  for (; depth && *depth >= '0' && *depth <= '9' && d < 100000; depth++) d = d * 10 + (unsigned)(*depth - '0');
  stacks_depth = d > STACK_MAX ? STACK_MAX : d;
  stacks_frees = frees && frees[0] == '1';
  if (!stacks_depth) return;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35)
  struct dl_find_object fo;
  if (_dl_find_object((void *)stack_capture, &fo) == 0) {
    self_lo = (uintptr_t)fo.dlfo_map_start;
    self_hi = (uintptr_t)fo.dlfo_map_end;
  }
#endif
  char num[24];
  header_line("stacks", num, (size_t)(put_u64(num, stacks_depth) - num));
  if (stacks_frees) append("# free_stacks recorded\n", 23);
}

/* ------------------------------------------------------------------------------------------ */
/* The interposed allocator.                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Writes one record and drops the lock, keeping the errno the real call left. */
#define REC_END(line, o)   \
  do {                     \
    int saved_ = errno;    \
    rec_commit(line, o);   \
    unlock();              \
    errno = saved_;        \
  } while (0)

EXPORT void *malloc(size_t n) {
  if (__builtin_expect(t_boot, 0)) return boot_alloc(n, 16);
  if (!rec_begin()) return __libc_malloc(n);
  unsigned ns = stack_capture();
  void *p = __libc_malloc(n);
  touch_new(p, n);
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "malloc");
  o = put_u64(o, n);
  *o++ = ' ';
  o = put_ptr(o, p);
  o = put_stack(o, ns);
  REC_END(line, o);
  return p;
}

EXPORT void *calloc(size_t nmemb, size_t size) {
  if (__builtin_expect(t_boot, 0)) {
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) return NULL;
    return boot_alloc(bytes, 16);
  }
  if (!rec_begin()) return __libc_calloc(nmemb, size);
  unsigned ns = stack_capture();
  void *p = __libc_calloc(nmemb, size);
  if (p) touch_new(p, (uint64_t)nmemb * size); /* no overflow: it succeeded */
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "calloc");
  o = put_u64(o, nmemb);
  *o++ = ' ';
  o = put_u64(o, size);
  *o++ = ' ';
  o = put_ptr(o, p);
  o = put_stack(o, ns);
  REC_END(line, o);
  return p;
}

EXPORT void free(void *p) {
  /* glibc's free(NULL) returns before doing anything at all, so it is not worth a line. */
  if (!p || in_boot(p)) return;
  if (!rec_begin()) {
    __libc_free(p);
    return;
  }
  unsigned ns = stacks_frees ? stack_capture() : 0;
  /* The block's last pages, before glibc may unmap them or write its links into them. */
  if (touches) touch_end((uintptr_t)p);
  t_freeing = p; /* if glibc aborts in here, the signal handler writes this free */
  __libc_free(p);
  t_freeing = NULL;
  known_brk();
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "free");
  o = put_ptr(o, p);
  o = put_stack(o, ns);
  REC_END(line, o);
}

EXPORT void *realloc(void *p, size_t n) {
  if (__builtin_expect(in_boot(p), 0)) {
    /* A pool block grows into glibc's heap: for glibc that is a malloc (recorded as one). */
    void *q = malloc(n);
    if (q) memcpy(q, p, boot_size(p) < n ? boot_size(p) : n);
    return q;
  }
  if (!rec_begin()) return __libc_realloc(p, n);
  unsigned ns = stack_capture();
  /* The old block's last pages, before glibc moves, copies or unmaps it. */
  uint64_t old_n = 0;
  if (touches && p) {
    struct blk *b = tbl_find((uintptr_t)p);
    if (b) old_n = b->n;
    touch_end((uintptr_t)p);
  }
  void *q = __libc_realloc(p, n);
  known_brk();
  if (q) touch_new(q, n);
  else if (old_n && n) touch_new(p, old_n); /* it failed: the old block lives on, its records start afresh */
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "realloc");
  o = put_ptr(o, p);
  *o++ = ' ';
  o = put_u64(o, n);
  *o++ = ' ';
  o = put_ptr(o, q);
  o = put_stack(o, ns);
  REC_END(line, o);
  return q;
}

static void *rec_memalign(const char *op, size_t align, size_t n, void *p, unsigned ns) {
  touch_new(p, n);
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, op);
  if (align) {
    o = put_u64(o, align);
    *o++ = ' ';
  }
  o = put_u64(o, n);
  *o++ = ' ';
  o = put_ptr(o, p);
  o = put_stack(o, ns);
  REC_END(line, o);
  return p;
}

EXPORT void *memalign(size_t align, size_t n) {
  if (__builtin_expect(t_boot, 0)) return boot_alloc(n, align);
  if (!rec_begin()) return __libc_memalign(align, n);
  unsigned ns = stack_capture();
  return rec_memalign("memalign", align, n, __libc_memalign(align, n), ns);
}

/* In glibc 2.36 aligned_alloc is memalign under another name; the trace has no op of its own
   for it. The real one is still called, for a glibc where it differs. */
EXPORT void *aligned_alloc(size_t align, size_t n) {
  if (__builtin_expect(t_boot, 0)) return boot_alloc(n, align);
  if (!real_aligned_alloc) real_aligned_alloc = (aligned_alloc_fn)resolve("aligned_alloc");
  aligned_alloc_fn f = real_aligned_alloc ? real_aligned_alloc : __libc_memalign;
  if (!rec_begin()) return f(align, n);
  unsigned ns = stack_capture();
  return rec_memalign("memalign", align, n, f(align, n), ns);
}

/* glibc's __posix_memalign returns EINVAL for an alignment that is not a power-of-two multiple
   of sizeof(void *) without allocating (it does run ptmalloc_init first): no line then. A
   failure with ENOMEM did run _mid_memalign, so it is a memalign that returned NULL. */
EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  if (__builtin_expect(t_boot, 0)) {
    void *p = boot_alloc(n, align);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
  }
  if (!real_posix_memalign) real_posix_memalign = (posix_memalign_fn)resolve("posix_memalign");
  if (!real_posix_memalign) return ENOMEM;
  if (!rec_begin()) return real_posix_memalign(out, align, n);
  unsigned ns = stack_capture();
  void *p = NULL;
  int r = real_posix_memalign(&p, align, n);
  if (r == 0) *out = p;
  if (r == 0 || r == ENOMEM) rec_memalign("memalign", align, n, p, ns);
  else unlock();
  return r;
}

EXPORT void *valloc(size_t n) {
  if (__builtin_expect(t_boot, 0)) return boot_alloc(n, 4096);
  if (!rec_begin()) return __libc_valloc(n);
  unsigned ns = stack_capture();
  return rec_memalign("valloc", 0, n, __libc_valloc(n), ns);
}

EXPORT void *pvalloc(size_t n) {
  if (__builtin_expect(t_boot, 0)) return boot_alloc(n, 4096);
  if (!rec_begin()) return __libc_pvalloc(n);
  unsigned ns = stack_capture();
  return rec_memalign("pvalloc", 0, n, __libc_pvalloc(n), ns);
}

EXPORT int malloc_trim(size_t pad) {
  if (!real_malloc_trim) real_malloc_trim = (malloc_trim_fn)resolve("malloc_trim");
  if (!real_malloc_trim) return 0;
  if (!rec_begin()) return real_malloc_trim(pad);
  int r = real_malloc_trim(pad);
  known_forget(); /* it gave back free pages inside the heaps too */
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "malloc_trim");
  o = put_u64(o, pad);
  REC_END(line, o);
  return r;
}

/* Every mallopt call is recorded, unknown parameters too: __libc_mallopt consolidates the main
   arena's fastbins before it looks at the parameter. */
EXPORT int mallopt(int param, int value) {
  if (!rec_begin()) return __libc_mallopt(param, value);
  int r = __libc_mallopt(param, value);
  static const struct {
    int param;
    const char *name;
  } names[] = {{M_MXFAST, "M_MXFAST"},         {M_TRIM_THRESHOLD, "M_TRIM_THRESHOLD"}, {M_TOP_PAD, "M_TOP_PAD"},
               {M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD"}, {M_MMAP_MAX, "M_MMAP_MAX"},     {M_PERTURB, "M_PERTURB"},
               {M_ARENA_TEST, "M_ARENA_TEST"}, {M_ARENA_MAX, "M_ARENA_MAX"}};
  char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "mallopt");
  const char *name = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].param == param) name = names[i].name;
  o = name ? put_str(o, name) : put_i64(o, param);
  *o++ = ' ';
  o = put_i64(o, value);
  REC_END(line, o);
  return r;
}

/* A sample the program asks for, at a point it names: `#:rss ... mark=NAME`, with the records of
   the large blocks that grew. A program finds it with dlsym(RTLD_DEFAULT, "ptsim_mark"), so it
   runs as well without the recorder. Not for signal handlers: it takes the lock. */
EXPORT void ptsim_mark(const char *name) {
  if (__atomic_load_n(&state, __ATOMIC_RELAXED) != ST_ON) return;
  int saved = errno;
  char clean[MARK_MAX + 1];
  mark_name(clean, name);
  lock();
  /* A sample follows an event line; in a vfork child the recording is the parent's. */
  if (state == ST_ON && touches && events > 0 && getpid() == my_pid) sample(clean);
  unlock();
  errno = saved;
}

/* ------------------------------------------------------------------------------------------ */
/* Endings: exit, _exit, exec, fatal signals.                                                  */
/* ------------------------------------------------------------------------------------------ */

/* The last flush of this image (or of this attempt, for exec). */
static void finish(const char *why) {
  if (state != ST_ON) return;
  lock();
  if (state == ST_ON) {
    reap_pending(1);
    end_sample();
    trailer(why);
    flush_buf();
    finished = 1;
  }
  unlock();
}

/* Runs from _dl_fini during exit(), whichever thread called it, after the program's destructors
   (our library was initialised before the program, so it is finalised after it). */
__attribute__((destructor)) static void at_exit(void) {
  if (getpid() == my_pid) finish("exit");
}

EXPORT void _exit(int status) {
  if (!real_exit) real_exit = (exit_fn)resolve("_exit");
  /* In a vfork child our memory is the parent's: leave its recording alone. */
  if (state == ST_ON && getpid() == my_pid) finish("_exit");
  if (real_exit) real_exit(status);
  syscall(SYS_exit_group, status);
  __builtin_unreachable();
}

EXPORT void _Exit(int status) {
  if (!real_Exit) real_Exit = (exit_fn)resolve("_Exit");
  if (state == ST_ON && getpid() == my_pid) finish("_exit");
  if (real_Exit) real_Exit(status);
  syscall(SYS_exit_group, status);
  __builtin_unreachable();
}

/* Before an exec: flush everything, for the image is about to vanish. If the exec fails the
   program goes on and the next ending writes another `# end` line. */
static void before_exec(void) {
  if (state == ST_ON && getpid() == my_pid) {
    finish("exec");
    lock();
    finished = 0;
    unlock();
  }
}

EXPORT int execve(const char *file, char *const argv[], char *const envp[]) {
  if (!real_execve) real_execve = (execve_fn)resolve("execve");
  before_exec();
  return real_execve(file, argv, envp);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
  if (!real_execvpe) real_execvpe = (execvpe_fn)resolve("execvpe");
  before_exec();
  return real_execvpe(file, argv, envp);
}

EXPORT int execv(const char *file, char *const argv[]) { return execve(file, argv, environ); }

EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

EXPORT int fexecve(int f, char *const argv[], char *const envp[]) {
  if (!real_fexecve) real_fexecve = (fexecve_fn)resolve("fexecve");
  before_exec();
  return real_fexecve(f, argv, envp);
}

EXPORT int execveat(int dirfd, const char *file, char *const argv[], char *const envp[], int flags) {
  if (!real_execveat) real_execveat = (execveat_fn)resolve("execveat");
  before_exec();
  return real_execveat(dirfd, file, argv, envp, flags);
}

/* execl, execle, execlp: glibc's call its internal __execve directly, so they need wrappers of
   their own. The argument list is gathered on the stack, as glibc does. */
static size_t count_args(const char *first, va_list ap) {
  size_t n = 1;
  if (first)
    while (va_arg(ap, const char *)) n++;
  return n;
}

#define GATHER_ARGS(arg, argv, n, ap)                \
  va_start(ap, arg);                                 \
  n = count_args(arg, ap);                           \
  va_end(ap);                                        \
  char *argv[n + 1];                                 \
  va_start(ap, arg);                                 \
  argv[0] = (char *)arg;                             \
  for (size_t i_ = 1; i_ < n; i_++) argv[i_] = va_arg(ap, char *); \
  argv[n] = NULL

EXPORT int execl(const char *file, const char *arg, ...) {
  va_list ap;
  size_t n;
  GATHER_ARGS(arg, argv, n, ap);
  va_end(ap);
  return execve(file, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...) {
  va_list ap;
  size_t n;
  GATHER_ARGS(arg, argv, n, ap);
  va_end(ap);
  return execvpe(file, argv, environ);
}

EXPORT int execle(const char *file, const char *arg, ...) {
  va_list ap;
  size_t n;
  GATHER_ARGS(arg, argv, n, ap);
  (void)va_arg(ap, char *); /* the NULL ending the arguments */
  char *const *envp = va_arg(ap, char *const *);
  va_end(ap);
  return execve(file, argv, envp);
}

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGINT, SIGHUP, SIGQUIT};

/*
 * Our handler stands in for the default action of a signal (it writes the buffer, then lets the
 * default action happen), and is invisible to the program: while it is installed, the program's
 * sigaction() and signal() see the default action it stands for, and setting the default keeps it;
 * setting anything else replaces it. Programs that install a handler only where the default is
 * (CPython's KeyboardInterrupt for SIGINT) behave as they would without the recorder. glibc's own
 * internal calls (system's) do not come through here: they save and restore our handler as it is.
 */
static volatile sig_atomic_t ours[NSIG];   /* our handler is installed for this signal */
static struct sigaction prog_view[NSIG]; /* what the program set or found there meanwhile */

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (!real_sigaction) real_sigaction = (sigaction_fn)resolve("sigaction");
  if (sig <= 0 || sig >= NSIG || !ours[sig]) return real_sigaction(sig, act, old);
  struct sigaction was = prog_view[sig];
  if (act) {
    if (!(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL) {
      prog_view[sig] = *act;
    } else {
      int r = real_sigaction(sig, act, NULL);
      if (r != 0) return r;
      ours[sig] = 0;
    }
  }
  if (old) *old = was;
  return 0;
}

/* glibc's signal() calls its internal sigaction, not ours: the same, with BSD semantics as glibc
   gives them (the signal blocked in its handler, interrupted calls restarted). */
EXPORT sighandler_fn signal(int sig, sighandler_fn handler) {
  if (sig <= 0 || sig >= NSIG || !ours[sig]) {
    if (!real_signal) real_signal = (signal_fn)resolve("signal");
    return real_signal(sig, handler);
  }
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  act.sa_flags = SA_RESTART;
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

static void on_fatal_signal(int sig) {
  int saved = errno;
  if (state == ST_ON && getpid() == my_pid) {
    /* Wait a little for another thread's record; a thread interrupted inside a call (glibc's
       own abort from free, say) already holds the lock: it is recursive. */
    int locked = 0;
    for (int i = 0; i < 200 && !locked; i++) {
      locked = pthread_mutex_trylock(&lk) == 0;
      if (!locked) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
      }
    }
    if (locked && lk_depth++ == 0) lk_owner = self_ktid();
    if (t_freeing && t_no) {
      /* glibc's malloc_printerr aborts from inside free: write that free, so the replay
         reproduces the abort. */
      char line[LINE_MAX_BYTES], *o = rec_head(line, t_no, "free");
      o = put_ptr(o, t_freeing);
      rec_commit(line, o);
      t_freeing = NULL;
    }
    char why[32], *o = put_str(why, "signal ");
    o = put_u64(o, (uint64_t)sig);
    *o = 0;
    if (locked) end_sample(); /* not while another thread may be in the middle of a record */
    trailer(why);
    flush_buf();
    if (locked) unlock();
  }
  /* Default action, re-raised for this thread; a fault re-executes and faults again. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  ours[sig] = 0;
  real_sigaction(sig, &sa, NULL);
  syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
  errno = saved;
}

static void install_signal_handlers(void) {
  for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
    int sig = fatal_signals[i];
    struct sigaction old;
    if (real_sigaction(sig, NULL, &old) != 0) continue;
    /* Only where the program (or its parent, for an ignored signal) set nothing. */
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL) {
      struct sigaction sa;
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_fatal_signal;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      prog_view[sig] = old;
      if (real_sigaction(sig, &sa, NULL) == 0) ours[sig] = 1;
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* fork.                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Runs before glibc's own __malloc_fork_lock_parent: with our lock held no call is in progress,
   and the file holds everything up to this point. */
static void fork_prepare(void) {
  if (state != ST_ON) return;
  lock();
  if (state == ST_ON) {
    reap_pending(1);
    /* Where a page's entry says only whether it is exclusively mapped, the pages the fork is about
       to share must be recorded now, while they still are. */
    if (touches && scan_kind == SCAN_ENTRIES && own_events > 0) sample(NULL);
    flush_buf();
  }
}

static void fork_parent(void) {
  if (lk_depth > 0 && lk_owner == self_ktid()) unlock();
}

static void fork_child(void) {
  /* TLS still holds the parent thread's kernel tid, which is what the prepare handler stored. */
  if (!(lk_depth > 0 && lk_owner == t_ktid)) return;
  /* The mutex still names the parent's thread as its owner: start afresh. */
  pthread_mutex_t fresh = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  memcpy(&lk, &fresh, sizeof lk);
  lk_depth = 0;
  lk_owner = 0;
  pid_t parent = my_pid;
  my_pid = getpid();
  t_ktid = (pid_t)syscall(SYS_gettid);
  if (state != ST_ON) return;
  if (only_ppid >= 0) { /* --no-children */
    state = ST_OFF;
    if (fd >= 0) close(fd);
    fd = -1;
    return;
  }
  if (touches) {
    /* Our /proc/self files are the parent's: open ours. The table, the bitmaps and the heaps
       carry over, as the parent's records are the beginning of our trace. */
    close(pm_fd);
    close(statm_fd);
    pm_fd = statm_fd = -1;
    if (!self_check(&pm_fd, &pm_dev, &pm_ino, "/proc/self/pagemap")) say("ptsim recorder: cannot open /proc/self/pagemap in a forked child\n");
    self_check(&statm_fd, &statm_dev, &statm_ino, "/proc/self/statm");
    sampled = 0;
    since_sample = 0;
    due_ns = UINT64_MAX;
    allowed_ns = 0;
  }
  /* The parent's other threads do not exist here. */
  uint32_t others = live_threads > 1 + (uint32_t)npending ? live_threads - 1 - (uint32_t)npending : 0;
  npending = 0;
  gate_holder = 0; /* free: the prepare handler's lock waited for it */
  live_threads = 1;
  if (fd >= 0) {
    /* Everything the parent recorded is in its file: that is our prefix. The inherited
       descriptor is only read at explicit offsets, so sharing it with the parent is harmless. */
    if (src_fd >= 0) close(src_fd);
    src_fd = fd;
    src_dev = fd_dev;
    src_ino = fd_ino;
    src_len = file_bytes;
    src_events = events;
    memcpy(src_path, path, sizeof src_path);
    fd = -1;
    len = 0;
  }
  /* Otherwise the buffer still holds the header (or an earlier fork's note) and whatever prefix
     the parent itself had inherited. */
  own_events = 0;
  file_bytes = 0;
  forked_from = parent;
  forked_after = events;
  char line[LINE_MAX_BYTES], *o = put_str(line, "# fork: pid ");
  o = put_u64(o, (uint64_t)my_pid);
  o = put_str(o, ", child of pid ");
  o = put_u64(o, (uint64_t)parent);
  o = put_str(o, " after its event ");
  o = put_u64(o, events);
  *o++ = '\n';
  append(line, (size_t)(o - line));
  if (others) {
    o = put_str(line, "# fork: the parent had ");
    o = put_u64(o, others);
    o = put_str(o, " other threads; glibc put their arenas on the free list (__malloc_fork_unlock_child), which a trace cannot express\n");
    append(line, (size_t)(o - line));
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Start.                                                                                      */
/* ------------------------------------------------------------------------------------------ */

__attribute__((constructor)) static void at_start(void) {
  if (state == ST_UNINIT) {
    lock();
    if (state == ST_UNINIT) init_recording();
    unlock();
  }
  if (state != ST_ON) return;
  /* Resolve now, in one thread, what the wrappers would otherwise resolve on first use. */
  real_posix_memalign = (posix_memalign_fn)resolve("posix_memalign");
  real_aligned_alloc = (aligned_alloc_fn)resolve("aligned_alloc");
  real_malloc_trim = (malloc_trim_fn)resolve("malloc_trim");
  real_exit = (exit_fn)resolve("_exit");
  real_Exit = (exit_fn)resolve("_Exit");
  real_execve = (execve_fn)resolve("execve");
  real_execvpe = (execvpe_fn)resolve("execvpe");
  real_fexecve = (fexecve_fn)resolve("fexecve");
  real_execveat = (execveat_fn)resolve("execveat");
  real_sigaction = (sigaction_fn)resolve("sigaction");
  real_signal = (signal_fn)resolve("signal");
  pthread_atfork(fork_prepare, fork_parent, fork_child);
  install_signal_handlers();
}
