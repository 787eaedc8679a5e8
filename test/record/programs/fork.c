/*
 * fork and exec under the recorder. The parent allocates, then forks four children:
 *   1  allocates, frees blocks it inherited, leaves with exit()
 *   2  allocates, leaves with _exit()
 *   3  allocates once, then execs this program as `fork --exec DIR`, which allocates and exits
 *   4  makes no allocator call at all and leaves with _exit() (so it should leave no trace)
 * The parent waits for each child before forking the next, then allocates again and exits.
 * Each process image logs the trace lines it expects to DIR/parent.log, DIR/child1.log, ...,
 * DIR/exec.log; the parent also logs `# child N PID` and `# fork-after N` (its own events so far).
 * Usage: fork DIR
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "log.h"

static struct log lg;
static unsigned long n_events;

static void *t_malloc(size_t n) {
  void *p = malloc(n);
  lg_s(&lg, "malloc"), lg_u(&lg, n), lg_p(&lg, p), lg_end(&lg);
  n_events++;
  return p;
}

static void t_free(void *p) {
  free(p);
  lg_s(&lg, "free"), lg_p(&lg, p), lg_end(&lg);
  n_events++;
}

static void save(const char *dir, const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  lg_write(&lg, path);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--exec") == 0) {
    void *a = t_malloc(123), *b = t_malloc(4567);
    t_free(a);
    t_free(b);
    save(argv[2], "exec.log");
    return 0;
  }
  if (argc != 2) return 2;
  const char *dir = argv[1];
  void *keep[20];
  for (int i = 0; i < 20; i++) keep[i] = t_malloc(24 + 40 * (size_t)i);
  for (int i = 0; i < 20; i += 3) t_free(keep[i]);
  for (int c = 1; c <= 4; c++) {
    char note[64];
    snprintf(note, sizeof note, "# fork-after %d %lu\n", c, n_events);
    lg_s(&lg, note);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
      lg.len = 0; /* the child's log holds the child's own calls */
      char name[32];
      snprintf(name, sizeof name, "child%d.log", c);
      if (c == 4) _exit(0);
      void *mine = t_malloc(300 + (size_t)c);
      t_free(keep[1]); /* inherited from the parent */
      t_free(keep[2]);
      void *more = t_malloc(5000);
      if (c == 3) {
        save(dir, name);
        execl("/proc/self/exe", "fork", "--exec", dir, (char *)NULL);
        _exit(99);
      }
      t_free(mine);
      t_free(more);
      save(dir, name);
      if (c == 2) _exit(7);
      exit(0);
    }
    snprintf(note, sizeof note, "# child %d %d\n", c, (int)pid);
    lg_s(&lg, note);
    int st;
    waitpid(pid, &st, 0);
  }
  for (int i = 1; i < 20; i += 3) t_free(keep[i]);
  void *late = t_malloc(777);
  t_free(late);
  save(dir, "parent.log");
  return 0;
}
