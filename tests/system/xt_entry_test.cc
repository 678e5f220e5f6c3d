// The binary codecs without the kernel: every rule of the catalogue survives encode then decode,
// and foreign entries that the model cannot express decode as opaque (nullopt), never as some
// other rule. Also the root-free parts of the system layer that read input files.
#include <catch2/catch.hpp>

// Header order as in xt_entry.cc (libiptc first; see docs on libiptc's headers).
#include <libiptc/libiptc.h>
extern "C" {
#include <libiptc/libip6tc.h>
}
#include <arpa/inet.h>
#include <linux/netfilter/xt_NFLOG.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/restore_text.h"
#include "core/rule_text.h"
#include "support.h"
#include "system/host_facts.h"
#include "system/xt_entry.h"

using namespace istio_iptables;
namespace fs = std::filesystem;

namespace {

// Group names of the catalogue, as numbers: any fixed mapping serves both sides of the comparison.
class FixedGroups final : public GroupResolver {
 public:
  Result<std::optional<std::uint32_t>> lookup(const std::string& name) override {
    std::uint32_t n = 5000;
    for (char c : name) n = n * 31 + static_cast<unsigned char>(c);
    return std::optional<std::uint32_t>(n % 60000 + 2000);
  }
};

std::string canonical_spec(const Rule& rule, GroupResolver& groups) {
  return rule_spec(canonical(rule, [&](const std::string& name) { return groups.gid(name); }));
}

std::string encoded(Family family, const std::string& spec) {
  auto rule = parse_rule_spec(spec);
  REQUIRE(rule);
  FixedGroups groups;
  auto blob = encode_entry(family, *rule, groups);
  REQUIRE(blob);
  return blob.value();
}

template <typename Entry>
Entry header_of(const std::string& blob) {
  Entry e;
  std::memcpy(&e, blob.data(), sizeof e);
  return e;
}

template <typename Entry>
void set_header(std::string& blob, const Entry& e) {
  std::memcpy(blob.data(), &e, sizeof e);
}

// The offset of the named match's header in an IPv4 entry blob.
std::size_t match_offset(const std::string& blob, const char* name) {
  auto e = header_of<ipt_entry>(blob);
  for (std::size_t off = sizeof(ipt_entry); off < e.target_offset;) {
    xt_entry_match m;
    std::memcpy(&m, blob.data() + off, sizeof m);
    if (std::strcmp(m.u.user.name, name) == 0) return off;
    off += m.u.match_size;
  }
  FAIL("no match " << name);
  return 0;
}

std::size_t target_offset(const std::string& blob) { return header_of<ipt_entry>(blob).target_offset; }

}  // namespace

TEST_CASE("entry codec: every rule of the catalogue decodes to its canonical form after encoding") {
  const fs::path root = fs::path(ISTIO_IPTABLES_SOURCE_DIR) / "rules";
  FixedGroups groups;
  std::size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto text = testing::read_text((entry.path() / "expected.rules").string());
    auto parsed = parse_ruleset_text(text);
    INFO(entry.path().filename().string());
    REQUIRE(parsed);
    for (Family family : {Family::V4, Family::V6})
      for (const auto& table : family == Family::V4 ? parsed.value().v4 : parsed.value().v6)
        for (const auto& chain : table.chains)
          for (const auto& rule : chain.rules) {
            INFO(rule.spec);
            REQUIRE(rule.rule);  // every rule we write is inside the model
            auto blob = encode_entry(family, *rule.rule, groups);
            REQUIRE(blob);
            auto decoded = decode_entry(family, blob.value());
            REQUIRE(decoded);
            CHECK(canonical_spec(*decoded, groups) == canonical_spec(*rule.rule, groups));
            ++checked;
          }
  }
  CHECK(checked > 1000);
}

TEST_CASE("entry codec: a non-contiguous IPv4 mask is opaque, not 0.0.0.0/0") {
  // iptables -A OUTPUT -d 10.0.0.0/255.0.255.0 -j RETURN
  std::string blob = encoded(Family::V4, "-d 10.0.0.0/8 -j RETURN");
  auto e = header_of<ipt_entry>(blob);
  e.ip.dmsk.s_addr = htonl(0xff00ff00U);
  set_header(blob, e);
  CHECK_FALSE(decode_entry(Family::V4, blob).has_value());
  // Address bits outside a contiguous mask match nothing a prefix would: opaque too.
  e.ip.dmsk.s_addr = htonl(0xff000000U);
  e.ip.dst.s_addr = htonl(0x0a000001U);
  set_header(blob, e);
  CHECK_FALSE(decode_entry(Family::V4, blob).has_value());
  // The same field with a contiguous mask is a prefix.
  e.ip.dst.s_addr = htonl(0x0a000000U);
  set_header(blob, e);
  auto r = decode_entry(Family::V4, blob);
  REQUIRE(r);
  CHECK(rule_spec(*r) == "-d 10.0.0.0/8 -j RETURN");
}

TEST_CASE("entry codec: a non-contiguous IPv6 mask and a protocol without IP6T_F_PROTO are opaque") {
  std::string blob = encoded(Family::V6, "-d 2001:db8::/32 -p tcp -j RETURN");
  REQUIRE(decode_entry(Family::V6, blob));
  auto e = header_of<ip6t_entry>(blob);
  auto bad = e;
  bad.ipv6.dmsk.s6_addr[5] = 0xff;  // ffff:ffff:00ff::
  set_header(blob, bad);
  CHECK_FALSE(decode_entry(Family::V6, blob).has_value());
  bad = e;
  bad.ipv6.flags = 0;  // the kernel ignores the protocol: this rule matches every protocol
  set_header(blob, bad);
  CHECK_FALSE(decode_entry(Family::V6, blob).has_value());
}

TEST_CASE("entry codec: header fields outside the model make the entry opaque") {
  const std::string blob = encoded(Family::V4, "-s 192.0.2.0/24 -i eth0 -p tcp -j RETURN");
  REQUIRE(decode_entry(Family::V4, blob));
  const auto e = header_of<ipt_entry>(blob);
  auto opaque_with = [&](auto change) {
    std::string b = blob;
    auto h = e;
    change(h);
    set_header(b, h);
    return !decode_entry(Family::V4, b).has_value();
  };
  CHECK(opaque_with([](ipt_entry& h) { h.ip.flags = IPT_F_GOTO; }));  // -g, not -j
  CHECK(opaque_with([](ipt_entry& h) { h.ip.flags = IPT_F_FRAG; }));  // -f
  CHECK(opaque_with([](ipt_entry& h) { h.ip.invflags = IPT_INV_FRAG; }));
  CHECK(opaque_with([](ipt_entry& h) { h.ip.invflags = IPT_INV_DSTIP; }));  // ! -d 0.0.0.0/0
  CHECK(opaque_with([](ipt_entry& h) { h.ip.iniface_mask[4] = 0; }));       // eth0 without its NUL
  CHECK(opaque_with([](ipt_entry& h) { std::memset(h.ip.iniface, 'e', IFNAMSIZ); }));
  CHECK(opaque_with([](ipt_entry& h) { h.ip.proto = 132; }));  // sctp
  CHECK(opaque_with([](ipt_entry& h) { h.target_offset = 8; }));
  CHECK(opaque_with([](ipt_entry& h) { h.next_offset = 60000; }));
}

TEST_CASE("entry codec: unknown matches, targets and revisions make the entry opaque") {
  const std::string blob = encoded(
      Family::V4, "-p tcp --dport 80 -m owner --uid-owner 1337 -m multiport --dports 1,2 -j REDIRECT --to-ports 15001");
  REQUIRE(decode_entry(Family::V4, blob));
  auto opaque_with = [&](auto change) {
    std::string b = blob;
    change(b);
    return !decode_entry(Family::V4, b).has_value();
  };
  auto name_at = [](std::string& b, std::size_t off) { return b.data() + off + offsetof(xt_entry_match, u.user.name); };
  auto revision_at = [](std::string& b, std::size_t off) {
    return b.data() + off + offsetof(xt_entry_match, u.user.revision);
  };
  CHECK(opaque_with([&](std::string& b) { std::strcpy(name_at(b, match_offset(b, "owner")), "socket"); }));
  CHECK(opaque_with([&](std::string& b) { *revision_at(b, match_offset(b, "owner")) = 0; }));
  CHECK(opaque_with([&](std::string& b) { *revision_at(b, match_offset(b, "multiport")) = 2; }));
  CHECK(opaque_with([&](std::string& b) { std::strcpy(name_at(b, target_offset(b)), "DNAT"); }));
  CHECK(opaque_with([&](std::string& b) { *revision_at(b, target_offset(b)) = 1; }));
  // A match size of 0 used to end the walk early and drop the matches after it.
  CHECK(opaque_with([&](std::string& b) {
    std::uint16_t zero = 0;
    std::memcpy(b.data() + match_offset(b, "owner"), &zero, sizeof zero);
  }));
  // A multiport count beyond the 15 ports the payload holds.
  CHECK(opaque_with([&](std::string& b) {
    b[match_offset(b, "multiport") + XT_ALIGN(sizeof(xt_entry_match)) + 1] = static_cast<char>(200);
  }));
  // --tcp-flags SYN SYN beside --dport: not the rule "--dport 80".
  CHECK(opaque_with([&](std::string& b) { b[match_offset(b, "tcp") + XT_ALIGN(sizeof(xt_entry_match)) + 9] = 0x02; }));
  // A truncated entry is no entry.
  for (std::size_t n = 0; n < header_of<ipt_entry>(blob).next_offset; ++n)
    CHECK_FALSE(decode_entry(Family::V4, blob.substr(0, n)).has_value());
}

TEST_CASE("entry codec: the NFLOG trace twin is the entry iptables 1.8.9 writes, and reads back") {
  // The target payload iptables-legacy 1.8.9 stored for "-p tcp -j NFLOG --nflog-prefix
  // JumpInbound --nflog-group 1337 --nflog-size 20", as libiptc read it back from the kernel
  // (tests/system/xt_dump): len 20, group 1337, threshold 0, flags COPY_LEN, the prefix.
  const std::string spec = "-p tcp -j NFLOG --nflog-prefix JumpInbound --nflog-group 1337 --nflog-size 20";
  const std::string blob = encoded(Family::V4, spec);
  const std::string payload = blob.substr(target_offset(blob) + XT_ALIGN(sizeof(xt_entry_target)));
  std::string kernel("\x14\x00\x00\x00\x39\x05\x00\x00\x01\x00\x00\x00JumpInbound", 23);
  kernel.resize(XT_ALIGN(sizeof(xt_nflog_info)), '\0');  // and the alignment padding
  CHECK(payload == kernel);
  auto back = decode_entry(Family::V4, blob);
  REQUIRE(back);
  CHECK(rule_spec(*back) == spec);
  // 1.22/1.23's quoted spelling is the same entry: iptables-restore strips the quotes.
  CHECK(encoded(Family::V4, "-p tcp -j NFLOG --nflog-prefix \"JumpInbound\" --nflog-group 1337 --nflog-size 20") ==
        blob);
  // A threshold or a prefix without its NUL is not a shape we write: opaque.
  std::string b = blob;
  b[target_offset(b) + XT_ALIGN(sizeof(xt_entry_target)) + offsetof(xt_nflog_info, threshold)] = 1;
  CHECK_FALSE(decode_entry(Family::V4, b).has_value());
}

TEST_CASE("entry codec: an unreadable group file is an error, a missing group is not a failure to read") {
  char dir_template[] = "/tmp/xt_entry_test.XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const fs::path dir = dir_template;
  { std::ofstream(dir / "group") << "root:x:0:\nistio-proxy:x:1337:\nwheel:x:10:root,admin\n"; }
  EtcGroupResolver groups((dir / "group").string());
  auto proxy = groups.lookup("istio-proxy");
  REQUIRE(proxy);
  CHECK(proxy.value() == std::optional<std::uint32_t>(1337));
  auto missing = groups.lookup("nobody-here");
  REQUIRE(missing);
  CHECK_FALSE(missing.value().has_value());

  EtcGroupResolver directory(dir.string());  // a directory: cannot be read
  auto r = directory.lookup("root");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("is a directory"));
  EtcGroupResolver absent((dir / "absent").string());  // no group file: no groups
  auto a = absent.lookup("root");
  REQUIRE(a);
  CHECK_FALSE(a.value().has_value());
  fs::remove_all(dir);
}

TEST_CASE("host facts: only regular files are read, up to a limit, and failures name the path") {
  char dir_template[] = "/tmp/host_facts_test.XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const fs::path dir = dir_template;
  HostFacts facts;
  { std::ofstream(dir / "resolv.conf") << "nameserver 192.0.2.53\n"; }
  auto text = facts.read_file((dir / "resolv.conf").string(), 1024);
  REQUIRE(text);
  CHECK(text.value() == "nameserver 192.0.2.53\n");
  auto exact = facts.read_file((dir / "resolv.conf").string(), 22);  // exactly the limit
  CHECK(exact);

  auto too_large = facts.read_file((dir / "resolv.conf").string(), 21);
  REQUIRE_FALSE(too_large);
  CHECK_THAT(too_large.error().message, Catch::Contains("larger than 21 bytes"));

  auto directory = facts.read_file(dir.string(), 1024);  // was an empty text before
  REQUIRE_FALSE(directory);
  CHECK_THAT(directory.error().message, Catch::Contains(dir.string()) && Catch::Contains("is a directory"));

  auto device = facts.read_file("/dev/zero", 1024);  // grew without bound before
  REQUIRE_FALSE(device);
  CHECK_THAT(device.error().message, Catch::Contains("is not a regular file"));

  REQUIRE(mkfifo((dir / "fifo").c_str(), 0600) == 0);
  auto fifo = facts.read_file((dir / "fifo").string(), 1024);  // blocked forever before
  REQUIRE_FALSE(fifo);
  CHECK_THAT(fifo.error().message, Catch::Contains("is not a regular file"));

  auto missing = facts.read_file((dir / "absent").string(), 1024);
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message, Catch::Contains("No such file or directory"));

  auto escaped = facts.read_file((dir / "bell\a").string(), 1024);
  REQUIRE_FALSE(escaped);
  CHECK_THAT(escaped.error().message, Catch::Contains("bell\\x07"));
  fs::remove_all(dir);
}

TEST_CASE("host facts: the passwd file is read without NSS, unreadable is an error, missing has no users") {
  char dir_template[] = "/tmp/host_facts_test.XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const fs::path dir = dir_template;
  {
    std::ofstream(dir / "passwd") << "root:x:0:0:root:/root:/bin/sh\n"
                                  << "istio-proxy:x:1337:1337::/home/istio-proxy:/bin/false\n";
  }
  HostFacts facts((dir / "passwd").string());
  auto proxy = facts.user_id("istio-proxy");
  REQUIRE(proxy);
  CHECK(proxy.value() == std::optional<std::uint32_t>(1337));
  auto nobody = facts.user_id("nobody-here");
  REQUIRE(nobody);
  CHECK_FALSE(nobody.value().has_value());

  auto directory = HostFacts(dir.string()).user_id("root");  // before: silently "no such user", UID 1337
  REQUIRE_FALSE(directory);
  CHECK_THAT(directory.error().message, Catch::Contains("is a directory"));
  auto absent = HostFacts((dir / "absent").string()).user_id("root");
  REQUIRE(absent);
  CHECK_FALSE(absent.value().has_value());
  fs::remove_all(dir);
}
