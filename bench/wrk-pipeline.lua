-- wrk script: pipelined SSP POSTs, DEPTH per batch.
--
--   wrk -t1 -c8 -d5s -s bench/wrk-pipeline.lua http://127.0.0.1:PORT/ssp -- 16
--   DEPTH=16 wrk ... -s bench/wrk-pipeline.lua http://127.0.0.1:PORT/ssp
--
-- The depth is the first script argument (after `--`), else $DEPTH, else 1.
-- wrk counts the requests in what request() returns (it parses it once at
-- start-up) and waits for that many responses before sending the next batch.
-- Each POST is the same ~450-byte request as bench/framing.mjs builds
-- (application/vnd.wv.ssp+xml, x-wv-transactionid, x-wv-sessionid, an SSP
-- SendMessageRequest body); transaction ids differ within a batch.

local depth = tonumber(os.getenv("DEPTH") or "1") or 1
local batch

local function body(tid)
  return '<WV-SSP-Message xmlns="http://www.openmobilealliance.org/DTD/WV-SSP1.3">' ..
    '<Session sessionID="S5_a"><Transaction mode="Request" transactionID="' .. tid .. '">' ..
    '<SendMessageRequest><MessageInfo messageID="m1"/><ContentData>hello</ContentData></SendMessageRequest>' ..
    '</Transaction></Session></WV-SSP-Message>'
end

function init(args)
  if args[1] ~= nil then depth = tonumber(args[1]) or depth end
  local parts = {}
  for i = 1, depth do
    local tid = string.format("T%07d", i)
    -- wrk.format adds Host (from the URL) and Content-Length (from the body)
    parts[i] = wrk.format("POST", "/ssp", {
      ["Content-Type"] = "application/vnd.wv.ssp+xml",
      ["x-wv-transactionid"] = tid,
      ["x-wv-sessionid"] = "S5_a"
    }, body(tid))
  end
  batch = table.concat(parts)
end

function request()
  return batch
end
