-- One benchmark case for wrk. Environment:
--   BENCH_COOKIE  a Cookie header sent with every request (the primed session), or unset;
--   BENCH_POOL    a file of Cookie header values, one per line: each request takes the next
--                 one (the login case needs a fresh anonymous session per request).
-- done() prints one line: BENCH {json}.
local cookie = os.getenv("BENCH_COOKIE") or ""
local pool_file = os.getenv("BENCH_POOL") or ""
local pool, size, index = {}, 0, 0
wrapped = 0
threads = {}

if cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end

if pool_file ~= "" then
  for line in io.lines(pool_file) do
    if line ~= "" then
      size = size + 1
      pool[size] = line
    end
  end
  request = function()
    index = index + 1
    if index > size then
      index = 1
      wrapped = wrapped + 1
    end
    wrk.headers["Cookie"] = pool[index]
    return wrk.format()
  end
end

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (tonumber(t:get("wrapped")) or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"non2xx":%d,"socket_errors":%d,"pool_wrapped":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, w))
end
