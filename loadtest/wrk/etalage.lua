-- wrk script for the throughput and latency rows of `make loadtest`: the
-- same generator and method as the anchors in docs/PERFORMANCE.md (wrk, one
-- thread, 64 or 8 connections). Requests are formatted once in init() and
-- replayed round robin, so the generator spends its core on the wire.
--
--   wrk -t1 -c64 -d10s -s etalage.lua URL -- MODE [VISITORS_FILE]
--
-- MODE: get     plain GET of URL (the hello baseline)
--       decide  POST /v1/decide for each visitor in turn, 3 slots
--       events  POST /v1/events, a batch of 5 events per request
-- done() prints one line, "WRK_RESULT {json}", that the runner parses.

local UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
local reqs = {}
local n = 0

local function visitors(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  assert(#out > 0, "no visitors in " .. path)
  return out
end

init = function(args)
  local mode = args[1] or "get"
  if mode == "get" then return end
  local hdr = { ["Content-Type"] = "application/json", ["User-Agent"] = UA }
  for i, v in ipairs(visitors(args[2])) do
    local body
    if mode == "decide" then
      body = '{"visitor":"' .. v .. '","slots":["home-hero","banner-top","home-picks"],"context":{"url":"/demo/"}}'
      reqs[#reqs + 1] = wrk.format("POST", "/v1/decide", hdr, body)
    elseif mode == "events" then
      -- The first event is the one the runner counts afterwards: every
      -- acknowledged batch adds exactly one view of /demo/c/running.
      body = '{"visitor":"' .. v .. '","events":['
        .. '{"type":"page_view","url":"/demo/c/running"},'
        .. '{"type":"page_view","url":"/demo/p/trail-runner-' .. (i % 50) .. '"},'
        .. '{"type":"click","target":"add-to-cart","url":"/demo/p/trail-runner"},'
        .. '{"type":"cart_add","sku":"trail-runner","category":"running","price":119},'
        .. '{"type":"email_open","campaign":"winter-' .. (i % 10) .. '"}]}'
      reqs[#reqs + 1] = wrk.format("POST", "/v1/events", hdr, body)
    else
      error("unknown mode " .. mode)
    end
  end
  request = function()
    n = n % #reqs + 1
    return reqs[n]
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,' ..
    '"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
