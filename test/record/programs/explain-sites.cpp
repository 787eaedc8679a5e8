// Allocation sites of a C++ program for test/record/explain-sites.test.ts, built -O2
// -fomit-frame-pointer -g: objects made with new (through operator new, an allocator wrapper the
// explanation folds into its caller) that are deleted (churn), then deleted small objects that
// stay in the tcache (fill_cache) and in the fastbins (make_small), below one small object made
// last (keep_config) that pins the heap. Each allocating line carries a SITE marker the test looks
// for.
#include <cstddef>

struct Buffer {
  char bytes[2000];
};
struct Small {
  char bytes[40];
};
struct Config {
  long values[3];
};

static Buffer *volatile churn[40];
static Small *volatile cache[7];
static Small *volatile small[13];
static Config *volatile config;

__attribute__((noinline)) static void make_churn() {
  for (int i = 0; i < 40; i++) churn[i] = new Buffer(); // SITE make_churn
}

__attribute__((noinline)) static void fill_cache() {
  for (int i = 0; i < 7; i++) cache[i] = new Small(); // SITE fill_cache
}

__attribute__((noinline)) static void make_small() {
  for (int i = 0; i < 13; i++) small[i] = new Small(); // SITE make_small
}

__attribute__((noinline)) static void keep_config() {
  config = new Config(); // SITE keep_config
}

int main() {
  make_churn();
  fill_cache();
  make_small();
  keep_config(); // SITE main
  for (int i = 0; i < 40; i++) delete churn[i];
  for (int i = 0; i < 7; i++) delete cache[i];
  for (int i = 0; i < 13; i++) delete small[i];
  return 0;
}
