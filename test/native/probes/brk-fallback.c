/*
 * brk-fallback: what glibc's sysmalloc does when the program break cannot grow. Run by
 * test/native/probes.test.ts; the facts it measures are docs/glibc-facts.md#brk-fallback and
 * #brk-fallback-later.
 *
 * Before malloc is first used, an anonymous page is mapped (MAP_FIXED_NOREPLACE) 0x23000 bytes
 * above the initial program break. Linux refuses a brk that would come within a page of the next
 * mapping, so the break can grow to initial+0x21000 (the first heap) and no further. With
 * M_MMAP_MAX 0 no chunk may be mmapped, so malloc(3 MiB) must grow the heap: brk fails and glibc
 * falls back to mmapping the new heap memory.
 *
 * Mapped bytes are measured as the sum of the sizes of every mapping in /proc/self/maps (the stack,
 * which grows on its own, left out), before and after each call: a new mapping counts whether or
 * not the kernel merges it with a neighbour. Nothing else maps memory between the two readings.
 *
 * The probe keeps its own needs out of glibc's heap: no stdio (output with snprintf into a stack
 * buffer and write), /proc/self/maps read with open/read into a static buffer.
 *
 * Output: one "name value" line per figure, numbers in decimal. Exit status 0, or 1 with a
 * message on stderr when the set-up fails (the page above the break is taken, say).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL

static char maps[1 << 20];

static void out(const char *fmt, ...) {
  char buf[256];
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

static unsigned long hex(const char **p) {
  unsigned long v = 0;
  for (;; (*p)++) {
    char c = **p;
    if (c >= '0' && c <= '9') v = v * 16 + (unsigned long)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (unsigned long)(c - 'a' + 10);
    else return v;
  }
}

/* Total bytes of all mappings but the stack; *within gets the mapping holding addr, if any. */
static unsigned long mapped_bytes(uintptr_t addr, unsigned long *start, unsigned long *end) {
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) fail("cannot open /proc/self/maps");
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, maps + len, sizeof maps - 1 - len);
    if (n < 0) fail("cannot read /proc/self/maps");
    if (n == 0) break;
    len += (size_t)n;
    if (len == sizeof maps - 1) fail("/proc/self/maps is too long");
  }
  close(fd);
  maps[len] = '\0';
  unsigned long total = 0;
  if (start) *start = *end = 0;
  for (const char *p = maps; *p != '\0';) {
    const char *line = p;
    unsigned long lo = hex(&p);
    p++; /* '-' */
    unsigned long hi = hex(&p);
    const char *eol = strchr(line, '\n');
    if (eol == NULL) eol = line + strlen(line);
    if (memmem(line, (size_t)(eol - line), "[stack]", 7) == NULL) total += hi - lo;
    if (start && addr >= lo && addr < hi) {
      *start = lo;
      *end = hi;
    }
    p = *eol ? eol + 1 : eol;
  }
  return total;
}

/* One malloc with brk blocked: the figures the tests check. */
static void *step(const char *name, size_t bytes) {
  char *brk_before = sbrk(0);
  unsigned long before = mapped_bytes(0, NULL, NULL);
  char *p = malloc(bytes);
  if (p == NULL) fail("malloc failed");
  unsigned long lo, hi;
  unsigned long after = mapped_bytes((uintptr_t)p, &lo, &hi);
  struct mallinfo2 mi = mallinfo2();
  out("%s.mapped %lu\n", name, after - before);
  out("%s.brk_moved %ld\n", name, (long)((char *)sbrk(0) - brk_before));
  out("%s.usable %zu\n", name, malloc_usable_size(p));
  /* The chunk starts 16 bytes before the pointer; it must lie inside one mapping. */
  out("%s.in_mapping %d\n", name, lo != 0 && (uintptr_t)p - 16 >= lo && (uintptr_t)p - 16 + bytes + 16 <= hi);
  out("%s.arena %zu\n", name, mi.arena);
  out("%s.ordblks %zu\n", name, mi.ordblks);
  out("%s.hblks %zu\n", name, mi.hblks);
  out("%s.hblkhd %zu\n", name, mi.hblkhd);
  out("%s.keepcost %zu\n", name, mi.keepcost);
  return p;
}

int main(void) {
  char *base = sbrk(0);
  uintptr_t block = ((uintptr_t)base + PAGE - 1) / PAGE * PAGE + 0x23000;
  void *m = mmap((void *)block, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m == MAP_FAILED || (uintptr_t)m != block) fail("cannot map the page that blocks the break");

  out("mallopt %d\n", mallopt(M_MMAP_MAX, 0));
  void *first = malloc(24);
  if (first == NULL) fail("malloc(24) failed");
  struct mallinfo2 mi = mallinfo2();
  out("heap.brk %ld\n", (long)((char *)sbrk(0) - base));
  out("heap.arena %zu\n", mi.arena);

  step("first", 3 << 20);
  step("second", 3 << 20);
  return 0;
}
