// Allocation sites of a C++ program for test/record/sites.test.ts, built -O2
// -fomit-frame-pointer -g: objects made with new (through operator new, an allocator wrapper)
// and a std::vector's buffer. Each allocating line carries a SITE marker the test looks for.
#include <vector>

struct Node {
  int v;
  Node *next;
};

static Node *volatile list;
static std::vector<int> *volatile vec;

__attribute__((noinline)) static Node *make_list(int n) {
  Node *h = nullptr;
  for (int i = 0; i < n; i++) h = new Node{i, h}; // SITE make_list
  return h;
}

__attribute__((noinline)) static std::vector<int> *make_vec(int n) {
  auto *v = new std::vector<int>(); // SITE make_vec_object
  v->reserve(n); // SITE make_vec_reserve
  return v;
}

int main() {
  list = make_list(10);
  vec = make_vec(1000);
  return 0;
}
