/*
 * Threads that allocate, free each other's blocks and exit, in two rounds (the second round's
 * threads reuse the arenas the first round's left on glibc's free list), plus a detached thread
 * and one that leaves through pthread_exit. Each thread logs the trace lines it expects to
 * DIR/tN.log (DIR/main.log for the main thread); a line `strerror P` names the buffer strerror
 * allocated, which glibc frees only in __libc_thread_freeres, after the pthread_key destructors.
 * After joining worker N the main thread calls malloc(7000 + N): the test checks that worker N's
 * `exit` comes before it.   Usage: threads DIR
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log.h"

#define NW 4
#define ROUNDS 2
#define NT (NW * ROUNDS + 2) /* workers, the detached thread, the pthread_exit one */

static struct log logs[NT + 1]; /* logs[NT] is the main thread's */
static void *from_main[NT], *handoff[NT];
static volatile int detached_done;

static void *t_malloc(struct log *l, size_t n) {
  void *p = malloc(n);
  lg_s(l, "malloc"), lg_u(l, n), lg_p(l, p), lg_end(l);
  return p;
}

static void t_free(struct log *l, void *p) {
  free(p);
  lg_s(l, "free"), lg_p(l, p), lg_end(l);
}

static void leave(struct log *l, void *p) {
  t_free(l, p);
  pthread_exit(NULL);
}

static void *worker(void *arg) {
  int idx = (int)(intptr_t)arg;
  struct log *l = &logs[idx];
  void *p[50];
  for (int i = 0; i < 50; i++) p[i] = t_malloc(l, 16 + (size_t)((idx * 7 + i * 13) % 300));
  t_free(l, from_main[idx]); /* a block of the main arena, freed from this thread */
  for (int i = 1; i < 50; i += 2) t_free(l, p[i]);
  for (int i = 0; i < 50; i += 10) {
    void *q = realloc(p[i], 500 + (size_t)i);
    lg_s(l, "realloc"), lg_p(l, p[i]), lg_u(l, 500 + (uint64_t)i), lg_p(l, q), lg_end(l);
    p[i] = q;
  }
  void *c = calloc(3, 40 + (size_t)idx);
  lg_s(l, "calloc"), lg_u(l, 3), lg_u(l, 40 + (uint64_t)idx), lg_p(l, c), lg_end(l);
  void *m = memalign(128, 256);
  lg_s(l, "memalign"), lg_u(l, 128), lg_u(l, 256), lg_p(l, m), lg_end(l);
  handoff[idx] = t_malloc(l, 1000 + (size_t)idx); /* the main thread frees it */
  char *s = strerror(100000 + idx);
  lg_s(l, "strerror"), lg_p(l, s), lg_end(l);
  for (int i = 0; i < 50; i += 2) t_free(l, p[i]);
  t_free(l, c);
  if (idx == NW * ROUNDS + 1) leave(l, m); /* ends in pthread_exit, two frames down */
  t_free(l, m);
  if (idx == NW * ROUNDS) detached_done = 1;
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  struct log *l = &logs[NT];
  pthread_t th[NT];
  for (int r = 0; r < ROUNDS; r++) {
    for (int w = r * NW; w < (r + 1) * NW; w++) {
      from_main[w] = t_malloc(l, 64 + (size_t)w);
      if (pthread_create(&th[w], NULL, worker, (void *)(intptr_t)w) != 0) return 1;
    }
    for (int w = r * NW; w < (r + 1) * NW; w++) {
      pthread_join(th[w], NULL);
      void *marker = t_malloc(l, 7000 + (size_t)w);
      t_free(l, handoff[w]);
      t_free(l, marker);
    }
  }
  /* A detached thread: nobody joins it; its exit is noticed once its tid word is cleared. */
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  int d = NW * ROUNDS;
  from_main[d] = t_malloc(l, 64 + (size_t)d);
  if (pthread_create(&th[d], &a, worker, (void *)(intptr_t)d) != 0) return 1;
  while (!detached_done) sched_yield();
  struct timespec ts = {0, 200 * 1000 * 1000};
  nanosleep(&ts, NULL);
  t_free(l, handoff[d]);
  int e = NW * ROUNDS + 1;
  from_main[e] = t_malloc(l, 64 + (size_t)e);
  if (pthread_create(&th[e], NULL, worker, (void *)(intptr_t)e) != 0) return 1;
  pthread_join(th[e], NULL);
  void *marker = t_malloc(l, 7000 + (size_t)e);
  t_free(l, handoff[e]);
  t_free(l, marker);
  for (int i = 0; i <= NT; i++) {
    char path[4096];
    if (i == NT) snprintf(path, sizeof path, "%s/main.log", argv[1]);
    else snprintf(path, sizeof path, "%s/t%d.log", argv[1], i);
    lg_write(&logs[i], path);
  }
  return 0;
}
