// One reader for /etc/passwd and /etc/group: the proxy user's UID (HostFacts::user_id) and the
// owner-match groups (EtcGroupResolver) are both looked up in such a file, never through NSS.
//
// glibc parses both formats with the same protocol (fgetpwent_r, fgetgrent_r: a caller's buffer,
// ERANGE for "too small", ENOENT at the end of the file), so the file handling around it is
// written once here: the path is opened as a regular file only (host_facts.h says why), an absent
// file has no entries, as glibc's files backend says, and every failure names the path. A
// template in a header, because the two entry types share no base.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "system/host_facts.h"

namespace istio_iptables {

/// Hands each entry of the passwd- or group-style file at `path`, as glibc's `next`
/// (fgetpwent_r or fgetgrent_r) parses it, to `visit` until `visit` returns false. A missing file
/// has no entries; one that cannot be opened or read, or holds a line over 1 MiB, is an error.
template <typename Entry, typename Visit>
Status read_etc_file(const std::string& path, int (*next)(std::FILE*, Entry*, char*, std::size_t, Entry**),
                     Visit visit) {
  int open_errno = 0;
  auto opened = open_regular_file(path, &open_errno);  // refuses a directory, a FIFO, a device
  if (!opened) {
    if (open_errno == ENOENT) return ok_status();  // no file: no entries
    return Error{opened.error().message};
  }
  std::FILE* file = ::fdopen(opened.value(), "r");
  if (file == nullptr) {
    int saved = errno;
    ::close(opened.value());
    return Error{file_error("read", path, std::strerror(saved))};
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, std::fclose);
  // ERANGE asks for a larger buffer (a long member list, say), up to 1 MiB a line.
  std::vector<char> buffer(4096);
  while (true) {
    Entry entry{};
    Entry* found = nullptr;
    int rc = next(file, &entry, buffer.data(), buffer.size(), &found);
    if (rc == ERANGE) {
      if (buffer.size() >= (std::size_t{1} << 20)) return Error{file_error("read", path, "a line longer than 1 MiB")};
      buffer.resize(buffer.size() * 2);
      continue;  // glibc rewinds to the start of the line it could not hold
    }
    if (rc == ENOENT) return ok_status();  // end of file
    if (rc != 0 || found == nullptr) return Error{file_error("read", path, std::strerror(rc))};
    if (!visit(*found)) return ok_status();
  }
}

}  // namespace istio_iptables
