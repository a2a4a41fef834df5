// bench/dns/slow_getaddrinfo.cpp: an LD_PRELOAD library whose getaddrinfo
// sleeps (50 ms, or BLOCKPOOL_SLOW_GAI_MS) and then calls the real one, so a
// benchmark can give every lookup the latency of a remote DNS server while
// resolving only local names. Both sides of bench/dns/dns_bench.cpp (blockpool
// and Asio's resolver) call this same function.
#include <dlfcn.h>
#include <netdb.h>
#include <time.h>

#include <cstdlib>

namespace {

using GetAddrInfo = int (*)(const char*, const char*, const addrinfo*, addrinfo**);

long delay_ms() {
  const char* s = std::getenv("BLOCKPOOL_SLOW_GAI_MS");
  return s != nullptr ? std::strtol(s, nullptr, 10) : 50;
}

}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  static const GetAddrInfo real = reinterpret_cast<GetAddrInfo>(dlsym(RTLD_NEXT, "getaddrinfo"));
  static const long ms = delay_ms();
  timespec delay{ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&delay, &delay) != 0) {
  }
  return real(node, service, hints, res);
}
