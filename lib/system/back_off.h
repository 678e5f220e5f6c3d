// Retrying after another writer: the pause between attempts, shared by every store.
//
// A read or commit that lost to another writer (the generation moved during a dump, libiptc's
// EAGAIN) is tried again after a pause that grows: 1 ms, doubling every four attempts up to 64 ms,
// with a jitter so two retrying writers part ways; about 3 s over kRetryAttempts before giving
// up. A writer in the middle of a burst gets to finish it; an idle machine never waits.
#pragma once

#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace istio_iptables {

/// How many times a read or commit that lost to another writer is tried in all.
inline constexpr int kRetryAttempts = 64;

/// Sleeps before retry number `attempt` + 1 (0-based).
inline void back_off(int attempt) {
  const long base_us = 1000L << std::min(attempt / 4, 6);
  const long jitter_us = static_cast<long>(
      (static_cast<unsigned>(::getpid()) * 2654435761U + static_cast<unsigned>(attempt) * 40503U) % 1000U);
  timespec pause{0, (base_us + jitter_us) * 1000L};
  ::nanosleep(&pause, nullptr);
}

}  // namespace istio_iptables
