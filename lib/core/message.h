// Input echoed in messages, made safe for a terminal and a log.
//
// A message that names a bad value must show the value, but the value comes from a flag, an
// environment variable or a file, and it may hold anything: ESC and BEL that drive the terminal,
// bytes that are not UTF-8, bidirectional overrides that make text read differently from what
// it is, a newline that forges a second log line, or a hundred megabytes. Every value a message
// echoes goes through quoted_for_message, which escapes all of these and cuts what is too long,
// saying how much was cut, so that the reader sees what was given without being misled by it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace istio_iptables {

/// `value` in double quotes, with \" \\ \n \r \t escaped, every other control byte (C0, DEL, C1),
/// every byte that is not part of well-formed UTF-8 and the bytes of Unicode's invisible
/// direction controls as \xNN. At most `limit` bytes of `value` are shown (cut at a character
/// boundary); the rest is announced as `… (N more bytes)` after the closing quote.
std::string quoted_for_message(std::string_view value, std::size_t limit = 200);

/// Collapses repeated messages of one kind: the first `shown` are kept, the rest counted.
class RepeatedMessages {
 public:
  explicit RepeatedMessages(std::size_t shown = 3) : shown_(shown) {}
  /// True when the next message is to be shown; otherwise it is counted.
  bool admit() { return ++seen_ <= shown_; }
  /// How many were counted and not shown.
  std::size_t hidden() const { return seen_ > shown_ ? seen_ - shown_ : 0; }

 private:
  std::size_t shown_;
  std::size_t seen_ = 0;
};

}  // namespace istio_iptables
