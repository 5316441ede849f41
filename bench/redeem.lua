-- wrk script: each request redeems one unit on a random card at an outlet.
--
--   wrk --latency -t2 -c64 -d10s -s bench/redeem.lua http://127.0.0.1:8000 -- DATA_FILE
--   (or CANASTA_WRK_DATA=DATA_FILE instead of "-- DATA_FILE")
--
-- DATA_FILE has one tab-separated record a line (blank lines and lines starting with # are skipped):
--   programme<TAB>NAME            exactly one
--   outlet<TAB>OUTLET_ID<TAB>TOKEN at least one; rotated per request, each thread starting elsewhere
--   card<TAB>CARD_ID              at least one; one picked at random per request
-- Idempotency keys are "<run nonce>-<thread>-<counter>", unique across threads and runs.
-- done() prints one line: RESULT {"rps": ..., "latency_us": {...}, "status": {...}, ...}

local path = "/api/v1/redemptions"
local threads = {}

local function random_hex(bytes)
  local f = assert(io.open("/dev/urandom", "rb"))
  local raw = f:read(bytes)
  f:close()
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local run_nonce = random_hex(8)

function setup(thread)
  thread:set("thread_id", #threads)
  thread:set("nonce", run_nonce)
  table.insert(threads, thread)
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local programme, outlets, cards, counter = nil, {}, {}, 0

function init(args)
  local file = args[1] or os.getenv("CANASTA_WRK_DATA")
  assert(file, "redeem.lua: pass the data file as '-- FILE' or in CANASTA_WRK_DATA")
  for line in io.lines(file) do
    if line ~= "" and line:sub(1, 1) ~= "#" then
      local kind, a, b = line:match("^([^\t]+)\t([^\t]+)\t?([^\t]*)$")
      if kind == "programme" then
        programme = a
      elseif kind == "outlet" and b ~= "" then
        table.insert(outlets, { id = json_string(a), auth = "Bearer " .. b })
      elseif kind == "card" then
        table.insert(cards, json_string(a))
      else
        error("redeem.lua: bad line in " .. file .. ": " .. line)
      end
    end
  end
  assert(programme and #outlets > 0 and #cards > 0, "redeem.lua: need a programme, outlets and cards")
  programme = json_string(programme)
  math.randomseed(os.time() + 7919 * thread_id)
  statuses = {}
end

function request()
  counter = counter + 1
  local outlet = outlets[(thread_id + counter) % #outlets + 1]
  local body = '{"card": ' .. cards[math.random(#cards)]
    .. ', "programme": ' .. programme
    .. ', "quantity": "1", "outlet": ' .. outlet.id
    .. ', "idempotency_key": "' .. nonce .. "-" .. thread_id .. "-" .. counter .. '"}'
  return wrk.format("POST", path, {
    ["Authorization"] = outlet.auth,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency)
  local counts, non_2xx = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
      if status < 200 or status > 299 then non_2xx = non_2xx + n end
    end
  end
  local status_parts = {}
  for status, n in pairs(counts) do
    table.insert(status_parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  local duration_s = summary.duration / 1e6
  print(string.format(
    'RESULT {"requests": %d, "duration_s": %.3f, "rps": %.2f, "non_2xx": %d, "status": {%s}, '
      .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}',
    summary.requests, duration_s, summary.requests / duration_s, non_2xx, table.concat(status_parts, ", "),
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
