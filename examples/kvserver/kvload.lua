-- kvload.lua: wrk's request mix for kvserver (scripts/kvload.sh).
-- GET /kv/key%08d on random keys below KV_KEYS, and every KV_SCAN_EVERY-th
-- request (per wrk thread) a GET /scan. wrk is closed-loop: read its
-- requests/s as throughput, not its latencies (each connection waits for its
-- answer before sending again, so a stalled server slows the client down).
local keys = tonumber(os.getenv("KV_KEYS") or "100000")
local scan_every = tonumber(os.getenv("KV_SCAN_EVERY") or "100")
local n = 0

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init(args)
  math.randomseed(id or 1)
end

function request()
  n = n + 1
  if scan_every > 0 and n % scan_every == 0 then
    return wrk.format("GET", "/scan?prefix=key0000" .. math.random(0, 9))
  end
  return wrk.format("GET", string.format("/kv/key%08d", math.random(0, keys - 1)))
end

-- One machine-readable line: requests/s, errors (connect, read, write,
-- timeouts and non-2xx answers), and wrk's own p50/p99 in ms.
function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format("WRK\t%.1f\t%d\t%.3f\t%.3f\n",
    summary.requests / (summary.duration / 1e6), errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
