// A Platform fake for the CLI tests: an in-memory store that lives across runs, and a log of
// every call in order, so a test can say exactly which runs wrote and in what order the machine
// was asked (namespace first, then facts).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "memory_nft_store.h"
#include "memory_store.h"
#include "system/platform.h"

namespace istio_iptables::testing {

class FakePlatform : public Platform {
 public:
  MemoryStore tables;                ///< what the "kernel" holds in x_tables
  MemoryNftStore nft;                ///< and in nf_tables
  int nft_commits = 0;               ///< transactions nf_tables took
  std::vector<std::string>* events;  ///< shared with facts fakes, in call order
  std::vector<std::string> own_events;
  bool deny_reads = false;  ///< as an unprivileged process sees the tables
  bool fail_validation = false;
  int route_writes = 0;
  int validations = 0;

  FakePlatform() : events(&own_events) {}

  /// Table commits, nf_tables transactions and route changes: everything that changes the machine.
  int writes() const { return tables.commits + nft_commits + route_writes; }

  Status enter_network_namespace(const std::string& path) override {
    events->push_back("enter " + path);
    return ok_status();
  }
  Result<std::shared_ptr<void>> lock(double, const std::string& file) override {
    events->push_back(file.empty() ? "lock" : "lock " + file);
    return std::shared_ptr<void>();
  }
  Result<OpenedStore> open_store(const BackendRequest& request) override {
    events->push_back("open_store " + (request.force_binary.empty() ? "auto" : request.force_binary));
    return OpenedStore{std::make_unique<Forward>(*this), "fake", true};
  }
  Result<std::unique_ptr<nft::NftStore>> open_nft_store() override {
    events->push_back("open_nft_store");
    return std::unique_ptr<nft::NftStore>(std::make_unique<ForwardNft>(*this));
  }
  Status configure_routes(const RouteRequest&) override {
    events->push_back("configure_routes");
    ++route_writes;
    return ok_status();
  }
  Status remove_routes(const RouteRequest&) override {
    events->push_back("remove_routes");
    ++route_writes;
    return ok_status();
  }
  Status validate(const ValidationRequest&, const ValidationRecord& record) override {
    events->push_back("validate");
    ++validations;
    record(false, "probe ran");
    if (fail_validation) return Error{"no redirect seen"};
    return ok_status();
  }

 private:
  // The store handed out: forwards to `tables`, or refuses every read like the kernel does
  // to a process without CAP_NET_ADMIN.
  class Forward : public NetfilterStore {
   public:
    explicit Forward(FakePlatform& p) : p_(p) {}
    Result<bool> table_exists(Family f, Table t) override {
      if (p_.deny_reads) return Error{"cannot read /proc/net/ip_tables_names: permission denied (needs CAP_NET_ADMIN)"};
      return p_.tables.table_exists(f, t);
    }
    Result<InstalledRule> encode(Family f, Table t, const Rule& r) override { return p_.tables.encode(f, t, r); }
    Result<Snapshot> read(Family f, Table t) override {
      if (p_.deny_reads) return Error{"cannot read table nat: permission denied (needs CAP_NET_ADMIN)"};
      return p_.tables.read(f, t);
    }
    Result<bool> transact(Family f, Table t,
                          const std::function<Result<std::optional<TableWrite>>(const Snapshot&)>& decide) override {
      if (p_.deny_reads) return Error{"cannot read table nat: permission denied (needs CAP_NET_ADMIN)"};
      p_.events->push_back(std::string("commit ") + table_name(t));
      return p_.tables.transact(f, t, decide);
    }

   private:
    FakePlatform& p_;
  };
  class ForwardNft : public nft::NftStore {
   public:
    explicit ForwardNft(FakePlatform& p) : p_(p) {}
    Result<nft::InstalledState> read() override {
      if (p_.deny_reads) return Error{"cannot list nf_tables tables: permission denied (needs CAP_NET_ADMIN)"};
      return p_.nft.read();
    }
    Result<std::string> fingerprint(const std::string& table, const nft::Rule& rule) override {
      return p_.nft.fingerprint(table, rule);
    }
    Result<nft::CommitOutcome> commit(const nft::Transaction& tx) override {
      p_.events->push_back("nft commit");
      auto r = p_.nft.commit(tx);
      if (r && r.value() == nft::CommitOutcome::Committed) ++p_.nft_commits;
      return r;
    }

   private:
    FakePlatform& p_;
  };
};

}  // namespace istio_iptables::testing
