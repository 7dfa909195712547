// A small fixed pool of worker threads for the CPU kernels.
//
// ParallelFor splits [0, n) into one contiguous range per thread (the caller
// runs the first range) and returns when all are done. Every output element
// is computed by exactly one thread in a fixed order, so results do not
// depend on the number of threads.
//
// Thread-safety: ParallelFor may be called by one thread at a time (the
// model's owner); the pool itself is not reentrant.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvstore::kernels {

class ThreadPool {
 public:
  // num_threads counts the calling thread; 1 means run inline, no workers.
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop(int index);

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;  // guarded by mu_
  int64_t n_ = 0;                                              // guarded by mu_
  uint64_t generation_ = 0;                                    // guarded by mu_
  int pending_ = 0;                                            // guarded by mu_
  bool stop_ = false;                                          // guarded by mu_
  std::vector<std::thread> workers_;
};

// Runs fn over [0, n) on the pool, or inline when pool is null.
inline void ParallelFor(ThreadPool* pool, int64_t n,
                        const std::function<void(int64_t, int64_t)>& fn) {
  if (pool == nullptr || pool->size() == 1 || n <= 1) {
    if (n > 0) fn(0, n);
    return;
  }
  pool->ParallelFor(n, fn);
}

}  // namespace kvstore::kernels
