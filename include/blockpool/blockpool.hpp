// blockpool/blockpool.hpp: everything but the Asio layer (<blockpool/asio.hpp>).
#pragma once

#include "blockpool/builder.hpp"
#include "blockpool/clock.hpp"
#include "blockpool/histogram.hpp"
#include "blockpool/join_error.hpp"
#include "blockpool/join_handle.hpp"
#include "blockpool/metrics.hpp"
#include "blockpool/lane.hpp"
#include "blockpool/pool.hpp"
#include "blockpool/prometheus.hpp"
#include "blockpool/task_options.hpp"
#include "blockpool/testing.hpp"
#include "blockpool/version.hpp"
