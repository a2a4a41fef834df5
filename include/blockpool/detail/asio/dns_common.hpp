// blockpool/detail/asio/dns_common.hpp: the parts of blockpool's name lookup
// (<blockpool/dns.hpp>) that do not depend on which Asio it serves: the call
// to getaddrinfo, its errors, and the parsing of IP literals. Not a public
// header. dns.ipp builds the Asio operation on top, once per flavour.
#pragma once

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace blockpool::detail::dns_common {

// The error category of getaddrinfo's EAI_* codes (message: gai_strerror).
// EAI_SYSTEM is never reported with it: that error carries errno, in
// std::system_category().
class Category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "blockpool.dns"; }
  [[nodiscard]] std::string message(int ev) const override { return ::gai_strerror(ev); }
};
inline const std::error_category& category() noexcept {
  static const Category c;
  return c;
}

// Test seam: the getaddrinfo that lookups call. A replacement must return
// what ::getaddrinfo returns (a list that ::freeaddrinfo frees, or an error
// with nothing allocated); tests use it to make a lookup block on a gate or
// fail in a chosen way. Read once per lookup.
using GetAddrInfoFn = int (*)(const char*, const char*, const ::addrinfo*, ::addrinfo**);
inline std::atomic<GetAddrInfoFn> g_getaddrinfo_for_testing{&::getaddrinfo};

// An endpoint of the caller's Asio flavour holding `size` bytes of `addr`.
template <class Endpoint>
Endpoint to_endpoint(const ::sockaddr* addr, std::size_t size) {
  Endpoint ep;
  if (size > ep.capacity()) throw std::system_error(std::make_error_code(std::errc::address_family_not_supported));
  std::memcpy(static_cast<void*>(ep.data()), addr, size);
  ep.resize(size);
  return ep;
}

// "host" (service "service"), for error messages.
inline std::string describe(const std::string& host, const std::string& service) {
  std::string s = "blockpool::dns: cannot resolve \"" + host + "\"";
  if (!service.empty()) s += " (service \"" + service + "\")";
  return s;
}

// The error for getaddrinfo's result `rc` (not 0), errno as it left it.
inline std::system_error lookup_error(int rc, int saved_errno, const std::string& host, const std::string& service) {
  if (rc == EAI_SYSTEM) return {std::error_code(saved_errno, std::system_category()), describe(host, service)};
  return {std::error_code(rc, category()), describe(host, service)};
}

// A numeric service ("" is port 0); false for a name ("http") or a number
// out of range, which only getaddrinfo can turn into a port.
inline bool parse_port(const std::string& service, unsigned short& port) {
  unsigned long v = 0;
  for (char c : service) {
    if (c < '0' || c > '9' || service.size() > 5) return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v > 65535) return false;
  port = static_cast<unsigned short>(v);
  return true;
}

// An IPv4 or IPv6 literal host with a numeric or empty service: the one
// endpoint it names, with no lookup (no file read, no socket). False for
// anything else (names, IPv6 scope ids, services given by name), which goes
// to getaddrinfo on the pool.
template <class Endpoint>
bool parse_literal(const std::string& host, const std::string& service, std::vector<Endpoint>& out) {
  unsigned short port = 0;
  if (host.empty() || !parse_port(service, port)) return false;
  ::sockaddr_in v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
    out.push_back(to_endpoint<Endpoint>(reinterpret_cast<const ::sockaddr*>(&v4), sizeof v4));
    return true;
  }
  ::sockaddr_in6 v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
    out.push_back(to_endpoint<Endpoint>(reinterpret_cast<const ::sockaddr*>(&v6), sizeof v6));
    return true;
  }
  return false;
}

// getaddrinfo for TCP (any address family, in the order the system's
// configuration sorts them). Blocks for as long as the lookup takes. Throws
// std::system_error naming the host: category() for EAI_* codes,
// std::system_category() with errno for EAI_SYSTEM. An empty host or service
// is passed as null (getaddrinfo's loopback / port 0).
template <class Endpoint>
std::vector<Endpoint> lookup(const std::string& host, const std::string& service) {
  ::addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  ::addrinfo* list = nullptr;
  errno = 0;
  const int rc = g_getaddrinfo_for_testing.load(std::memory_order_acquire)(
      host.empty() ? nullptr : host.c_str(), service.empty() ? nullptr : service.c_str(), &hints, &list);
  const int saved_errno = errno;
  if (rc != 0) throw lookup_error(rc, saved_errno, host, service);
  std::unique_ptr<::addrinfo, void (*)(::addrinfo*)> owner(list, &::freeaddrinfo);
  std::vector<Endpoint> out;
  for (const ::addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    out.push_back(to_endpoint<Endpoint>(ai->ai_addr, ai->ai_addrlen));
  }
  return out;
}

}  // namespace blockpool::detail::dns_common
