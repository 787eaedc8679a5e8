/*
 * settings: what mallopt, GLIBC_TUNABLES and the MALLOC_*_ variables do on this machine's glibc,
 * observed through malloc's behaviour. Run by test/native/probes.test.ts; the facts it measures
 * are in docs/glibc-facts.md (#mallopt-returns, #tunable-ranges, #tunable-numbers, ...).
 *
 *   settings [--env NAME=VALUE]... [--] ACTION...
 *
 * With --env the probe first runs itself again (execve) with exactly those environment entries,
 * in that order, duplicates included, and nothing else: glibc reads its settings once, at start-up,
 * from the environment as given, and some facts depend on the order of the entries or on a name
 * given twice, which a test runner's environment object cannot express.
 *
 * Actions run in order; each prints one line "ACTION... = RESULT":
 *   mallopt P V    the return value of mallopt(P, V)
 *   where N        malloc(N), a 24-byte guard after it, then free the first block: where did the
 *                  freed chunk go? "tcache" (mallinfo2's free bytes did not change: glibc counts
 *                  tcache chunks as in use), "fastbin" (the fastbin bytes grew) or "bin"
 *   fill N         malloc(N) from fresh memory: the byte every one of the N bytes was set to
 *                  ("0x.." when all are equal, which is what a perturb byte does), or "mixed"
 *   dyn            malloc(2 MiB), free it, malloc(2 MiB) again: is the second one mmapped? glibc
 *                  raises the mmap threshold at the first free unless a setting has turned the
 *                  dynamic threshold off, and then the second one comes from the heap
 *   mmapped N      is malloc(N) mmapped (mallinfo2's hblks grew)?
 *   first-brk      how far the first malloc(24) moves the program break (hex)
 *   threads T      start T threads one after the other, each doing malloc(24) and then waiting
 *                  until all have: "NEW new arenas, MAIN on the main arena"
 *   consolidate    two 40-byte blocks freed into fastbins (needs tcache_count=0), then
 *                  mallopt(999, 1): "fastbin chunks before/after, bin chunks before/after"
 *   dtv            the main arena's in-use bytes gained by one pthread_create (the new thread
 *                  does nothing)
 *   first-thread   the first action, before any malloc: create a thread, which then does
 *                  malloc(24) and exits, and then malloc(24) in the main thread: "create BRK,
 *                  thread WHERE, main WHERE", BRK how far pthread_create alone moved the break
 *                  (hex), WHERE "main-arena" for a block in the break's heap, else "other-arena"
 *   stdout         the main arena's in-use bytes gained by the first write through stdout
 *   nprocs         get_nprocs(), the CPU count glibc 2.36 (Debian) bases its arena limit on
 *
 * The probe keeps its own needs out of glibc's heap: output goes through snprintf into a stack
 * buffer and write (stdio would allocate its buffer), thread stacks are mmapped by pthread_create.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define HEAP_MAX (64UL << 20) /* non-main heaps are 64 MiB-aligned */
#define MAX_THREADS 1024

static void out(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) (void)!write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static _Noreturn void fail(const char *what) {
  (void)!write(2, what, strlen(what));
  (void)!write(2, "\n", 1);
  _exit(1);
}

static long num(const char *s) {
  char *end;
  long v = strtol(s, &end, 0);
  if (*s == '\0' || *end != '\0') fail("bad number");
  return v;
}

static char *initial_break;

/* ---- threads ---- */

static sem_t ready, go;
static void *thread_block;

static void *thread_main(void *arg) {
  (void)arg;
  thread_block = malloc(24);
  sem_post(&ready);
  sem_wait(&go);
  return NULL;
}

static void threads(int t) {
  static pthread_t tid[MAX_THREADS];
  static uintptr_t heaps[MAX_THREADS];
  int fresh = 0, main_arena = 0;
  if (t < 1 || t > MAX_THREADS) fail("threads: too many");
  sem_init(&ready, 0, 0);
  sem_init(&go, 0, 0);
  /* Small stacks: many threads may be alive at once. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 << 10);
  for (int i = 0; i < t; i++) {
    if (pthread_create(&tid[i], &attr, thread_main, NULL) != 0) fail("pthread_create failed");
    sem_wait(&ready);
    char *p = thread_block;
    if (p == NULL) fail("malloc in a thread failed");
    if (p >= initial_break && p < (char *)sbrk(0)) {
      main_arena++;
      continue;
    }
    /* A block of another arena lies in that arena's first heap, 64 MiB-aligned. */
    uintptr_t h = (uintptr_t)p & ~(HEAP_MAX - 1);
    int seen = 0;
    for (int k = 0; k < fresh; k++) seen |= heaps[k] == h;
    if (!seen) heaps[fresh++] = h;
  }
  for (int i = 0; i < t; i++) sem_post(&go);
  for (int i = 0; i < t; i++) pthread_join(tid[i], NULL);
  out("threads %d = %d new arenas, %d on the main arena\n", t, fresh, main_arena);
}

static void *idle(void *arg) { return arg; }

static const char *arena_of(const void *p) {
  return (const char *)p >= initial_break && (const char *)p < (char *)sbrk(0) ? "main-arena"
                                                                                : "other-arena";
}

static void *first_thread_main(void *arg) {
  (void)arg;
  sem_wait(&go); /* the main thread looks at the break first */
  thread_block = malloc(24);
  return NULL;
}

/* A program whose main thread has not called malloc creates a thread that does. */
static void first_thread(void) {
  sem_init(&go, 0, 0);
  pthread_t t;
  if (pthread_create(&t, NULL, first_thread_main, NULL) != 0) fail("pthread_create failed");
  unsigned long moved = (unsigned long)((char *)sbrk(0) - initial_break);
  sem_post(&go);
  pthread_join(t, NULL); /* the thread's exit hands its arena to the free list */
  if (thread_block == NULL) fail("malloc in a thread failed");
  const char *thread_where = arena_of(thread_block);
  void *p = malloc(24);
  if (p == NULL) fail("malloc failed");
  out("first-thread = create 0x%lx, thread %s, main %s\n", moved, thread_where, arena_of(p));
}

/* ---- the rest ---- */

static const char *where(long n) {
  char *p = malloc((size_t)n);
  void *guard = malloc(24);
  if (p == NULL || guard == NULL) fail("malloc failed");
  struct mallinfo2 a = mallinfo2();
  free(p);
  struct mallinfo2 b = mallinfo2();
  if (b.fsmblks > a.fsmblks) return "fastbin";
  if (b.fordblks == a.fordblks) return "tcache";
  return "bin";
}

static int mmapped(size_t n) {
  size_t before = mallinfo2().hblks;
  if (malloc(n) == NULL) fail("malloc failed");
  return mallinfo2().hblks > before;
}

int main(int argc, char **argv) {
  int i = 1;
  if (i < argc && strcmp(argv[i], "--env") == 0) {
    /* Run again with exactly the given environment. */
    char *envp[64];
    int n = 0;
    for (; i + 1 < argc && strcmp(argv[i], "--env") == 0; i += 2) {
      if (n == 63) fail("too many --env");
      envp[n++] = argv[i + 1];
    }
    envp[n] = NULL;
    if (i < argc && strcmp(argv[i], "--") == 0) i++;
    char *args[256];
    int k = 0;
    args[k++] = argv[0];
    args[k++] = "--";
    for (; i < argc && k < 255; i++) args[k++] = argv[i];
    args[k] = NULL;
    execve("/proc/self/exe", args, envp);
    fail("execve failed");
  }
  if (i < argc && strcmp(argv[i], "--") == 0) i++;
  initial_break = sbrk(0);

  while (i < argc) {
    const char *a = argv[i++];
    const char *x = i < argc ? argv[i] : "";
    const char *y = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(a, "mallopt") == 0) {
      if (i + 1 >= argc) fail("mallopt P V");
      i += 2;
      out("mallopt %s %s = %d\n", x, y, mallopt((int)num(x), (int)num(y)));
    } else if (strcmp(a, "where") == 0) {
      i++;
      out("where %s = %s\n", x, where(num(x)));
    } else if (strcmp(a, "fill") == 0) {
      i++;
      size_t n = (size_t)num(x);
      /* Read through a volatile pointer: the bytes are whatever malloc left there, on purpose. */
      const volatile unsigned char *p = malloc(n);
      if (p == NULL || n == 0) fail("fill N: malloc failed");
      size_t k = 1;
      while (k < n && p[k] == p[0]) k++;
      if (k == n) out("fill %s = 0x%02x\n", x, p[0]);
      else out("fill %s = mixed\n", x);
    } else if (strcmp(a, "dyn") == 0) {
      void *p = malloc(2 << 20);
      if (p == NULL) fail("malloc failed");
      free(p);
      out("dyn = %s\n", mmapped(2 << 20) ? "mmapped" : "heap");
    } else if (strcmp(a, "mmapped") == 0) {
      i++;
      out("mmapped %s = %s\n", x, mmapped((size_t)num(x)) ? "mmapped" : "heap");
    } else if (strcmp(a, "first-brk") == 0) {
      if (malloc(24) == NULL) fail("malloc failed");
      out("first-brk = 0x%lx\n", (unsigned long)((char *)sbrk(0) - initial_break));
    } else if (strcmp(a, "threads") == 0) {
      i++;
      threads((int)num(x));
    } else if (strcmp(a, "consolidate") == 0) {
      void *p = malloc(40), *q = malloc(40), *guard = malloc(24);
      if (p == NULL || q == NULL || guard == NULL) fail("malloc failed");
      free(p);
      free(q);
      struct mallinfo2 b = mallinfo2();
      int r = mallopt(999, 1);
      struct mallinfo2 c = mallinfo2();
      out("consolidate = returned %d, fastbin chunks %zu -> %zu, bin chunks %zu -> %zu\n", r, b.smblks, c.smblks,
          b.ordblks - 1, c.ordblks - 1); /* ordblks counts the top chunk too */
    } else if (strcmp(a, "dtv") == 0) {
      if (malloc(24) == NULL) fail("malloc failed"); /* the heap exists before we measure */
      size_t before = mallinfo2().uordblks;
      pthread_t t;
      if (pthread_create(&t, NULL, idle, NULL) != 0) fail("pthread_create failed");
      size_t after = mallinfo2().uordblks;
      pthread_join(t, NULL);
      out("dtv = %zu\n", after - before);
    } else if (strcmp(a, "first-thread") == 0) {
      first_thread();
    } else if (strcmp(a, "stdout") == 0) {
      if (malloc(24) == NULL) fail("malloc failed");
      size_t before = mallinfo2().uordblks;
      fputs("\n", stdout);
      fflush(stdout);
      out("stdout = %zu\n", mallinfo2().uordblks - before);
    } else if (strcmp(a, "nprocs") == 0) {
      out("nprocs = %d\n", get_nprocs());
    } else {
      fail("unknown action");
    }
  }
  return 0;
}
