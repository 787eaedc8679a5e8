/*
 * The ways a program ends, each after a few allocator calls logged to DIR/endings.log:
 *   abort     a double free that glibc detects: glibc aborts from inside free (SIGABRT)
 *   segv      a write through a null pointer (SIGSEGV)
 *   term      SIGTERM from the program itself
 *   int       SIGINT from the program itself (as Ctrl-C sends it)
 *   handler   SIGINT again, to a handler of the program's own, installed where it found the
 *             default action (as CPython installs KeyboardInterrupt's): exit(4) from main once
 *             the handler ran; 6 if the program did not find the default action, 7 if the
 *             handler did not run
 *   _exit     _exit(3), which runs no destructor
 *   thread    exit(5) from a second thread while the main thread waits in pthread_join
 * Usage: endings MODE DIR
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "log.h"

static struct log lg;
static const char *dir;

static void *t_malloc(size_t n) {
  void *p = malloc(n);
  lg_s(&lg, "malloc"), lg_u(&lg, n), lg_p(&lg, p), lg_end(&lg);
  return p;
}

static void t_free(void *p) {
  lg_s(&lg, "free"), lg_p(&lg, p), lg_end(&lg); /* logged first: the abort case never returns */
  free(p);
}

static void save(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/endings.log", dir);
  lg_write(&lg, path);
}

static volatile sig_atomic_t got_int;
static void on_int(int sig) { got_int = sig; }

static void *exiter(void *arg) {
  (void)arg;
  void *p = t_malloc(99);
  t_free(p);
  save();
  exit(5);
}

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  const char *mode = argv[1];
  dir = argv[2];
  void *a = t_malloc(40), *b = t_malloc(40), *c = t_malloc(5000);
  t_free(b);
  if (strcmp(mode, "abort") == 0) {
    save();
    /* The log already holds this free: save it again once the line is there. */
    lg_s(&lg, "free"), lg_p(&lg, b), lg_end(&lg);
    save();
    free(b); /* free(): double free detected in tcache 2 */
    return 0;
  }
  if (strcmp(mode, "segv") == 0) {
    save();
    *(volatile int *)(uintptr_t)(a == c ? 1 : 0) = 1;
    return 0;
  }
  if (strcmp(mode, "term") == 0) {
    save();
    raise(SIGTERM);
    return 0;
  }
  if (strcmp(mode, "int") == 0) {
    save();
    raise(SIGINT);
    return 0;
  }
  if (strcmp(mode, "handler") == 0) {
    struct sigaction now;
    if (sigaction(SIGINT, NULL, &now) != 0 || now.sa_handler != SIG_DFL) return 6;
    if (signal(SIGQUIT, SIG_DFL) != SIG_DFL) return 6;
    if (signal(SIGINT, on_int) != SIG_DFL || signal(SIGINT, on_int) != on_int) return 6;
    t_free(a);
    save();
    raise(SIGINT);
    return got_int ? 4 : 7;
  }
  if (strcmp(mode, "_exit") == 0) {
    t_free(a);
    save();
    _exit(3);
  }
  if (strcmp(mode, "thread") == 0) {
    pthread_t t;
    if (pthread_create(&t, NULL, exiter, NULL) != 0) return 1;
    pthread_join(t, NULL);
    return 0;
  }
  return 2;
}
