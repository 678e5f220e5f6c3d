// Our typed rules as binary x_tables entries, and entries read back as typed rules.
//
// The encoding is the one iptables 1.8 itself builds from our restore text (checked entry by
// entry against iptables-legacy-restore in tests/system): the same match order, revisions
// (tcp/udp 0, multiport 1, owner 1, conntrack 3, mark 1, connmark 1; REDIRECT 0, TPROXY 1,
// MARK 2, CONNMARK 2, CT 2), payload values and interface masks. docs/libiptc.md
// has the measured facts behind each choice (IP6T_F_PROTO, name padding, ...).
//
// A blob is the entry's bytes as the kernel keeps them (a standard target is named "" and its
// verdict zeroed), followed by the standard target's label ("RETURN", a chain name; empty for
// module targets): libiptc needs the label in the name to append the entry again, and the label
// cannot live in the name field itself, where a 40-byte module target such as MARK looks just
// like a standard one. The identity is the normalised blob: counters, kernel-written fields and
// name padding zeroed.
//
// iptables-nft puts these same match and target payloads, unchanged, into nf_tables' compat
// expressions; entry_extensions and decode_xt_* give them to the nf_tables store
// (iptables_nft_store.h), so that their layout is known in this one place.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/result.h"

namespace istio_iptables {

/// Resolves group names to GIDs (the owner match carries numbers).
class GroupResolver {
 public:
  virtual ~GroupResolver() = default;
  /// The GID of a group; nullopt when there is no such group; an error when the group database
  /// cannot be read (an unreadable file is not "no such group").
  virtual Result<std::optional<std::uint32_t>> lookup(const std::string& name) = 0;
  /// lookup() with a failure read as "no such group" (the name then stays a name): only for
  /// tests and fuzzers that compare identities; the stores call lookup().
  std::optional<std::uint32_t> gid(const std::string& name) {
    auto r = lookup(name);
    return r ? r.value() : std::nullopt;
  }
};

/// Reads /etc/group directly with fgetgrent_r (no NSS: Istio hit network lookups through
/// nsswitch), once. A missing /etc/group has no groups; one that cannot be read is an error.
class EtcGroupResolver final : public GroupResolver {
 public:
  explicit EtcGroupResolver(std::string path = "/etc/group") : path_(std::move(path)) {}
  Result<std::optional<std::uint32_t>> lookup(const std::string& name) override;

 private:
  Result<std::map<std::string, std::uint32_t>> read_groups() const;
  std::string path_;
  std::optional<Result<std::map<std::string, std::uint32_t>>> groups_;
};

/// Encodes a rule as an entry blob for `family`.
Result<std::string> encode_entry(Family family, const Rule& rule, GroupResolver& groups);

/// The identity of a blob (see above).
std::string entry_identity(Family family, const std::string& blob);

/// Decodes an entry blob into our model; nullopt when any part of it is outside the model (an
/// unknown match or target, another revision, a non-contiguous address mask, ...) or when the
/// blob is not a well-formed entry: such a rule is opaque, never read as some other rule.
std::optional<Rule> decode_entry(Family family, const std::string& blob);

/// The blob of an entry read through libiptc; `label` is iptc_get_target's answer.
std::string blob_from_kernel(Family family, const void* entry, const char* label);

/// The entry of a blob, ready for iptc_append_entry (the label written into the name), in `out`.
void entry_for_append(Family family, const std::string& blob, std::string& out);

/// One x_tables extension as nft_compat carries it in NFTA_MATCH_* / NFTA_TARGET_*: the name, the
/// revision and the payload, exactly the bytes an entry holds (XT_ALIGN'ed, zero-padded).
struct XtExtension {
  std::string name;
  std::uint32_t revision = 0;
  std::string info;
};

/// The matches of an entry blob in order, and its module target (nullopt for a standard one).
struct EntryExtensions {
  std::vector<XtExtension> matches;
  std::optional<XtExtension> target;
};

/// The extensions of an entry blob made by encode_entry; nullopt when it is not a well-formed entry.
std::optional<EntryExtensions> entry_extensions(Family family, const std::string& blob);

/// One match payload read into our model, in a rule whose protocol (`-p`, not negated) is
/// `protocol`: nullopt when outside the model or when encoding it again would not give the same
/// bytes (the legacy decoder decides, on an entry holding only this match).
std::optional<Match> decode_xt_match(Family family, std::optional<Protocol> protocol, const XtExtension& match);

/// One target payload read into our model, as decode_xt_match.
std::optional<Target> decode_xt_target(Family family, const XtExtension& target);

}  // namespace istio_iptables
