// blockpool/version.hpp: the library version.
#pragma once

#define BLOCKPOOL_VERSION_MAJOR 0
#define BLOCKPOOL_VERSION_MINOR 1
#define BLOCKPOOL_VERSION_PATCH 0

namespace blockpool {
inline constexpr const char* kVersion = "0.1.0";
}  // namespace blockpool
