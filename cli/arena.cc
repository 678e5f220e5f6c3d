// operator new and delete for the istio-iptables process: the first 4 MiB come from an arena.
//
// The tool is a short-lived process on every pod's start path, and a native apply of the injected
// sidecar makes about a thousand small C++ allocations (strings, map nodes, the plan, netlink
// buffers). glibc's malloc and free spent about a fifth of the process's own instructions on them
// (callgrind: ~240 000 of ~1.2 M). Here an allocation is a pop from a free list or a bump of one
// counter, and a delete a push.
//
// Why free lists and not a bare bump: a bump arena never reuses a block, so every temporary
// (a string built and dropped, a vector's old storage after it grew, each 16 KiB receive buffer)
// lands on fresh memory, and each fresh page is a page fault: the sidecar's apply touched 47 pages
// of arena without reuse and 37 with it (the whole process: about 180 faults against 164), and a
// page fault costs about a hundred allocations. A sized delete (what std::allocator and every
// delete-expression of a complete type call) names the block's size, so its block goes back on
// the list of its size class: 16-byte steps to 1 KiB, then powers of two to 64 KiB, the size
// rounded the same way on both sides. An unsized delete, and a block above 64 KiB, leave their
// memory to the arena.
//
// Bounded, not a leak: the arena is a fixed 4 MiB of .bss (pages are only mapped when first
// written), and once it is spent an allocation that no free list can serve goes to malloc, and a
// delete of such memory to free, as before. The 10 000-rule scale cases spend it and continue on malloc (their peak RSS
// is at most 4 MiB higher). Requests larger than the arena, and the aligned forms of new (never
// used here), are malloc's. One spin lock guards the lists and the counter: the process starts no
// thread today, and one added tomorrow must not corrupt them.
//
// Only the istio-iptables executable links this file (not the libraries, the tests or the
// sanitizer and fuzz builds, whose allocators must see every allocation).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {

constexpr std::size_t kArenaSize = std::size_t{4} << 20;
constexpr std::size_t kAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
constexpr std::size_t kSmall = 64;    // classes 1..64: sizes up to 1 KiB, in steps of kAlign
constexpr std::size_t kClasses = 70;  // classes 65..70: powers of two from 2 KiB to 64 KiB

alignas(kAlign) char g_arena[kArenaSize];
std::size_t g_used = 0;  // bytes bumped so far; never past kArenaSize
struct FreeBlock {
  FreeBlock* next;
};
FreeBlock* g_free[kClasses + 1] = {};  // by size class; class 0 unused
std::atomic_flag g_lock = ATOMIC_FLAG_INIT;

class Lock {
 public:
  Lock() noexcept {
    while (g_lock.test_and_set(std::memory_order_acquire)) {
    }
  }
  ~Lock() { g_lock.clear(std::memory_order_release); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
};

bool in_arena(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(g_arena) < kArenaSize;
}

// A request's size class and the size of its block: the same for its new and its sized delete.
struct SizeClass {
  std::size_t index;  // 0: no class, never reused
  std::size_t size;
};

SizeClass size_class(std::size_t n) {
  const std::size_t small = n == 0 ? kAlign : (n + kAlign - 1) & ~(kAlign - 1);
  if (small / kAlign <= kSmall) return {small / kAlign, small};
  std::size_t index = kSmall + 1;
  std::size_t size = 2 * kSmall * kAlign;
  while (size < n && index < kClasses) {
    size *= 2;
    ++index;
  }
  if (size < n) return {0, small};
  return {index, size};
}

void* allocate(std::size_t n) noexcept {
  if (n <= kArenaSize) {
    const SizeClass c = size_class(n);
    Lock lock;
    if (c.index != 0 && g_free[c.index] != nullptr) {
      FreeBlock* block = g_free[c.index];
      g_free[c.index] = block->next;
      return block;
    }
    if (g_used <= kArenaSize - c.size) {
      void* p = g_arena + g_used;
      g_used += c.size;
      return p;
    }
  }
  return std::malloc(n == 0 ? 1 : n);
}

void* allocate_or_throw(std::size_t n) {
  void* p = allocate(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void release(void* p) noexcept {
  if (p != nullptr && !in_arena(p)) std::free(p);
}

// A sized delete knows the block's class: small blocks go back on their list for the next
// allocation of that class. An unsized delete cannot, and leaves its block to the arena.
void release(void* p, std::size_t n) noexcept {
  if (p == nullptr) return;
  if (!in_arena(p)) {
    std::free(p);
    return;
  }
  const SizeClass c = size_class(n);
  if (c.index == 0) return;
  Lock lock;
  auto* block = static_cast<FreeBlock*>(p);
  block->next = g_free[c.index];
  g_free[c.index] = block;
}

}  // namespace

void* operator new(std::size_t n) { return allocate_or_throw(n); }
void* operator new[](std::size_t n) { return allocate_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t& /*tag*/) noexcept { return allocate(n); }
void* operator new[](std::size_t n, const std::nothrow_t& /*tag*/) noexcept { return allocate(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t size) noexcept { release(p, size); }
void operator delete[](void* p, std::size_t size) noexcept { release(p, size); }
void operator delete(void* p, const std::nothrow_t& /*tag*/) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t& /*tag*/) noexcept { release(p); }
