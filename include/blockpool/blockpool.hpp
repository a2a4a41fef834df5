// blockpool/blockpool.hpp: everything but the Asio layer (<blockpool/asio.hpp>).
#pragma once

#include "blockpool/builder.hpp"
#include "blockpool/clock.hpp"
#include "blockpool/join_error.hpp"
#include "blockpool/join_handle.hpp"
#include "blockpool/metrics.hpp"
#include "blockpool/pool.hpp"
#include "blockpool/testing.hpp"
#include "blockpool/version.hpp"
