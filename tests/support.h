// Helpers shared by the tests: a MachineFacts fake, a shell-word splitter for catalogue args,
// and running the CLI in-process.
#pragma once

#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "app.h"
#include "core/settings.h"

namespace istio_iptables::testing {

/// MachineFacts with fixed answers; counts what it was asked.
class FakeFacts : public MachineFacts {
 public:
  using MachineFacts::read_file;
  std::optional<bool> ipv6;                  // nullopt: "no valid local IP address found"
  std::map<std::string, std::string> files;  // path -> text
  std::map<std::string, std::uint32_t> users;
  std::optional<std::string> passwd_error;  // set: the passwd file cannot be read
  std::size_t last_max_bytes = 0;           // the limit of the last read_file
  int questions = 0;
  int ipv6_questions = 0;

  Result<bool> ipv6_enabled(bool) override {
    ++questions;
    ++ipv6_questions;
    if (ipv6) return *ipv6;
    return Error{"no valid local IP address found"};
  }
  Result<std::string> read_file(const std::string& path, std::size_t max_bytes) override {
    ++questions;
    last_max_bytes = max_bytes;
    auto it = files.find(path);
    if (it == files.end()) return Error{"cannot open \"" + path + "\": No such file or directory"};
    if (it->second.size() > max_bytes)
      return Error{"cannot read \"" + path + "\": larger than " + std::to_string(max_bytes) + " bytes"};
    return it->second;
  }
  Result<std::optional<std::uint32_t>> user_id(const std::string& user) override {
    ++questions;
    if (passwd_error) return Error{*passwd_error};
    auto it = users.find(user);
    if (it == users.end()) return std::optional<std::uint32_t>();
    return std::optional<std::uint32_t>(it->second);
  }
};

/// Splits a line as a POSIX shell would (single quotes, double quotes, backslash); no expansion.
inline std::vector<std::string> shell_words(const std::string& line) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\'') {
      std::size_t end = line.find('\'', i + 1);
      if (end == std::string::npos) throw std::runtime_error("unterminated ' in: " + line);
      word += line.substr(i + 1, end - i - 1);
      i = end;
      in_word = true;
    } else if (c == '"') {
      ++i;
      while (i < line.size() && line[i] != '"') {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        word += line[i++];
      }
      if (i >= line.size()) throw std::runtime_error("unterminated \" in: " + line);
      in_word = true;
    } else if (c == '\\' && i + 1 < line.size()) {
      word += line[++i];
      in_word = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(word);
  return out;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

inline CliResult run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                     MachineFacts& facts) {
  CliContext context;
  context.environment = env;
  context.facts = &facts;
  StringLogSink out, err;
  int code = run_cli(args, context, out, err);
  return {code, out.text(), err.text()};
}

}  // namespace istio_iptables::testing
