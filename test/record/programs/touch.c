/*
 * Large blocks and the pages the program writes in them, for the recorder's #:touch records and
 * RSS samples. Each mode logs, to standard output (or DIR/child.log for a forked child):
 *   block NAME TOKEN SIZE   a block it got (in the order of its calls)
 *   wrote NAME OFF LEN      bytes it wrote, from OFF, in the block NAME
 *   read NAME OFF LEN       bytes it only read
 *   mark NAME               it called ptsim_mark(NAME)
 * Transparent huge pages are off (prctl), so that a write makes exactly its own pages resident.
 * Usage: touch MODE [DIR], MODE one of big, calloc, realloc, small, live, threads, fork, marks,
 * slow, trim, malloc_trim, own, own-child, sandbox.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "log.h"

static struct log lg;
static void (*mark_fn)(const char *);

static void *blk(const char *name, void *p, size_t n) {
  lg_s(&lg, "block "), lg_s(&lg, name), lg_p(&lg, p), lg_u(&lg, n), lg_end(&lg);
  return p;
}

static void note(const char *what, const char *name, size_t off, size_t len) {
  lg_s(&lg, what), lg_s(&lg, " "), lg_s(&lg, name), lg_u(&lg, off), lg_u(&lg, len), lg_end(&lg);
}

static void fill(const char *name, char *p, size_t off, size_t len) {
  memset(p + off, 0x5a, len);
  note("wrote", name, off, len);
}

static unsigned read_bytes(const char *name, const char *p, size_t off, size_t len) {
  unsigned sum = 0;
  for (size_t i = 0; i < len; i++) sum += ((const volatile char *)p)[off + i];
  note("read", name, off, len);
  return sum;
}

static void mark(const char *name) {
  if (mark_fn) mark_fn(name);
  lg_s(&lg, "mark "), lg_s(&lg, name), lg_end(&lg);
}

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define PAGE 4096

/* 64 MiB of which 1 MiB and a bit is written, from an offset inside a page. */
static void big(void) {
  char *p = blk("big", malloc(64 * MiB), 64 * MiB);
  fill("big", p, 10000, MiB + 100);
  free(p);
}

/* A sparse table: every 100th page written (in its middle), every 7th only read. */
static void sparse_calloc(void) {
  size_t n = 8192;
  char *t = blk("table", calloc(n, PAGE), n * PAGE);
  unsigned sum = 0;
  for (size_t i = 0; i < n; i += 7) sum += read_bytes("table", t, i * PAGE + 100, 1);
  for (size_t i = 0; i < n; i += 100) fill("table", t, i * PAGE + 2000, 8);
  if (sum != 0) abort();
  free(t);
}

/* A heap block grown into an mmapped one, shrunk, then a heap block shrunk in place. */
static void grow_shrink(void) {
  char *a = blk("a", malloc(20000), 20000);
  fill("a", a, 0, 20000);
  char *b = blk("b", realloc(a, MiB), MiB); /* glibc copies a's 20000 bytes */
  note("wrote", "b", 0, 20000);
  fill("b", b, 512 * KiB, 10000);
  char *c = blk("c", realloc(b, 300000), 300000); /* copies (or keeps) the first 300000 */
  note("wrote", "c", 0, 20000);
  fill("c", c, 200000, 100);
  free(c);
  char *d = blk("d", malloc(40000), 40000);
  fill("d", d, 0, 40000);
  char *e = blk("e", realloc(d, 9000), 9000);
  fill("e", e, 0, 9000);
  free(e);
}

/* Blocks under 4096 bytes get no records; 4096 is the first size that does. */
static void small(void) {
  void *keep[600];
  for (int i = 0; i < 600; i++) {
    size_t n = 16 + (size_t)(i * 37) % 4000;
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    keep[i] = blk(name, malloc(n), n);
    fill(name, keep[i], 0, n);
  }
  char *edge = blk("edge", malloc(4095), 4095);
  fill("edge", edge, 0, 4095);
  char *first = blk("first", malloc(4096), 4096);
  fill("first", first, 0, 4096);
  for (int i = 0; i < 600; i++) free(keep[i]);
  free(edge);
  free(first);
}

/* A block the program never frees. */
static void live(void) {
  char *p = blk("kept", malloc(2 * MiB), 2 * MiB);
  fill("kept", p, 0, 100 * KiB);
  char *q = blk("freed", malloc(MiB), MiB);
  fill("freed", q, 300 * KiB, 10);
  free(q);
}

/* Threads: each writes its 100 KiB heap block (in its own arena) except pages 8-15 and hands it
   to the main thread, which frees it after a mark. */
#define THREADS 4
struct job {
  char name[8];
  char *p;
};

static void *worker(void *arg) {
  struct job *j = arg;
  j->p = malloc(100 * KiB);
  memset(j->p, 0x5a, 8 * PAGE);
  memset(j->p + 16 * PAGE, 0x5a, 100 * KiB - 16 * PAGE);
  return NULL;
}

static void threads(void) {
  pthread_t t[THREADS];
  struct job jobs[THREADS];
  mark("threads-start");
  for (int i = 0; i < THREADS; i++) {
    snprintf(jobs[i].name, sizeof jobs[i].name, "t%d", i);
    if (pthread_create(&t[i], NULL, worker, &jobs[i]) != 0) abort();
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < THREADS; i++) {
    blk(jobs[i].name, jobs[i].p, 100 * KiB);
    note("wrote", jobs[i].name, 0, 8 * PAGE);
    note("wrote", jobs[i].name, 16 * PAGE, 100 * KiB - 16 * PAGE);
  }
  mark("threads-done");
  for (int i = 0; i < THREADS; i++) free(jobs[i].p);
}

/* A forked child writes other pages of its parent's block than the parent does after the fork. */
static void forked(const char *dir) {
  char *p = blk("shared", malloc(4 * MiB), 4 * MiB);
  fill("shared", p, 0, 10 * PAGE);
  pid_t pid = fork();
  if (pid < 0) abort();
  if (pid == 0) {
    lg.len = 0;
    fill("shared", p, 100 * PAGE, 10 * PAGE);
    free(p);
    char path[4096];
    snprintf(path, sizeof path, "%s/child.log", dir);
    lg_write(&lg, path);
    exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  fill("shared", p, 200 * PAGE, 10 * PAGE);
  free(p);
}

/* Samples at marks: the anonymous memory grows by what the program writes, and falls when the
   block is unmapped. */
static void marks(void) {
  mark("m0");
  char *p = blk("buffer", malloc(64 * MiB), 64 * MiB);
  fill("buffer", p, 3 * MiB, 8 * MiB);
  mark("m1 (8 MiB written)");
  free(p);
  mark("m2");
}

/* 50 blocks, one every 10 ms: samples by count and by time. Slow enough that a sample every 10
   events never waits for the recorder's limit on their cost (at most 1 % of the time), on a machine
   where reading the process's memory counters is slow too. */
static void slow(void) {
  for (int i = 0; i < 50; i++) {
    char name[16];
    snprintf(name, sizeof name, "w%d", i);
    char *p = blk(name, malloc(5000), 5000);
    fill(name, p, 0, 5000);
    usleep(10000);
    free(p);
  }
}

/* A heap block filled and freed, its pages given back by glibc, then a block at the same place of
   which the program writes only the first pages: the others are not resident. `by_free`: the free
   lowers the break (systrim); else malloc_trim gives back the pages of the free chunk. */
static void given_back(int by_free) {
  mallopt(M_MMAP_THRESHOLD, 4 * MiB); /* 512 KiB blocks from the heap */
  mallopt(M_TOP_PAD, 0);
  mallopt(M_TRIM_THRESHOLD, by_free ? 64 * KiB : 64 * MiB);
  char *a = blk("a", malloc(512 * KiB), 512 * KiB);
  fill("a", a, 0, 512 * KiB);
  char *pin = by_free ? NULL : malloc(100); /* keeps a's chunk off the top */
  mark("a-written");
  free(a);
  if (!by_free) malloc_trim(0);
  char *b = blk("b", malloc(512 * KiB), 512 * KiB);
  if (b != a) abort();
  fill("b", b, 0, 10 * PAGE);
  free(b);
  free(pin);
}

/* 24 MiB the program maps and writes itself, outside malloc; `child`: in a forked child, which
   keeps it to the end. */
static void own_memory(int child) {
  if (child) {
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid > 0) {
      int st;
      waitpid(pid, &st, 0);
      return;
    }
    free(malloc(10)); /* the child's first call: its first sample */
  }
  char *m = mmap(NULL, 24 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) abort();
  memset(m, 0x5a, 24 * MiB);
  if (child) exit(0);
  mark("peak");
  munmap(m, 24 * MiB);
}

/* A large block, then a seccomp filter that makes ioctl and pread64 fail (as a sandbox might),
   then its free: the recorder can no longer read the pages. */
static void sandbox(void) {
  char *p = blk("boxed", malloc(64 * KiB), 64 * KiB);
  fill("boxed", p, 0, 64 * KiB);
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pread64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) abort();
  free(p);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
  mark_fn = (void (*)(const char *))dlsym(RTLD_DEFAULT, "ptsim_mark");
  /* A first allocator call: the recording starts with it (a mark before any call is not recorded). */
  void *first = malloc(1);
  const char *m = argv[1];
  if (strcmp(m, "big") == 0) big();
  else if (strcmp(m, "calloc") == 0) sparse_calloc();
  else if (strcmp(m, "realloc") == 0) grow_shrink();
  else if (strcmp(m, "small") == 0) small();
  else if (strcmp(m, "live") == 0) live();
  else if (strcmp(m, "threads") == 0) threads();
  else if (strcmp(m, "fork") == 0 && argc == 3) forked(argv[2]);
  else if (strcmp(m, "marks") == 0) marks();
  else if (strcmp(m, "slow") == 0) slow();
  else if (strcmp(m, "trim") == 0) given_back(1);
  else if (strcmp(m, "malloc_trim") == 0) given_back(0);
  else if (strcmp(m, "own") == 0) own_memory(0);
  else if (strcmp(m, "own-child") == 0) own_memory(1);
  else if (strcmp(m, "sandbox") == 0) sandbox();
  else return 2;
  free(first);
  lg_write(&lg, NULL);
  return 0;
}
