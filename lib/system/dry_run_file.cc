// Istio's stub opens the file without O_TRUNC and writes its whole record from offset 0 after
// every would-be command; the final content is what its last write left, which is what one
// write of the whole record here leaves. A short write is retried until done or failed.
#include "system/dry_run_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/message.h"

namespace istio_iptables {

Status write_from_start(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Error{"cannot open DRY_RUN_FILE_PATH " + quoted_for_message(path) + ": " + std::strerror(errno)};
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::pwrite(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = n < 0 ? errno : EIO;
      ::close(fd);
      return Error{"cannot write DRY_RUN_FILE_PATH " + quoted_for_message(path) + ": " + std::strerror(saved)};
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0)
    return Error{"cannot write DRY_RUN_FILE_PATH " + quoted_for_message(path) + ": " + std::strerror(errno)};
  return ok_status();
}

}  // namespace istio_iptables
