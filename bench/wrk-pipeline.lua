-- wrk script: pipelined SSP POSTs, DEPTH per batch.
--
--   wrk -t1 -c8 -d5s -s bench/wrk-pipeline.lua http://127.0.0.1:PORT/ssp -- 16
--   wrk -t1 -c8 -d5s -s bench/wrk-pipeline.lua http://127.0.0.1:PORT/ssp -- 16 SESSIONID unique
--   DEPTH=16 wrk ... -s bench/wrk-pipeline.lua http://127.0.0.1:PORT/ssp
--
-- Arguments after `--`: the depth (else $DEPTH, else 1); the session id for
-- x-wv-sessionid and the body's Session (default S5_a); `unique` to give the
-- requests distinct transaction ids (a full node drops a resent id as a
-- duplicate): batches are built once, at start-up, for 8,192 distinct ids and
-- sent in turn, so an id comes back only after 8,192 others, when the node's
-- dedupe window (4,096 per session by default) has long forgotten it (each wrk
-- run has its own id prefix); wrk's cost per request stays that of the static batch.
-- wrk counts the requests in what request() returns (it parses it once at
-- start-up) and waits for that many responses before sending the next batch.
-- Each POST is the same ~450-byte request as bench/framing.mjs builds
-- (application/vnd.wv.ssp+xml, x-wv-transactionid, x-wv-sessionid, an SSP
-- SendMessageRequest body); transaction ids differ within a batch.

local depth = tonumber(os.getenv("DEPTH") or "1") or 1
local sid = "S5_a"
local unique = false
local batch
local pool = {}
local nextBatch = 0
local seq = 0
local UNIQUE_IDS = 8192

local function body(tid)
  return '<WV-SSP-Message xmlns="http://www.openmobilealliance.org/DTD/WV-SSP1.3">' ..
    '<Session sessionID="' .. sid .. '"><Transaction mode="Request" transactionID="' .. tid .. '">' ..
    '<SendMessageRequest><MessageInfo messageID="m1"/><ContentData>hello</ContentData></SendMessageRequest>' ..
    '</Transaction></Session></WV-SSP-Message>'
end

local function build(prefix)
  local parts = {}
  for i = 1, depth do
    seq = seq + 1
    local tid = string.format("%s%07d", prefix, seq)
    -- wrk.format adds Host (from the URL) and Content-Length (from the body)
    parts[i] = wrk.format("POST", "/ssp", {
      ["Content-Type"] = "application/vnd.wv.ssp+xml",
      ["x-wv-transactionid"] = tid,
      ["x-wv-sessionid"] = sid
    }, body(tid))
  end
  return table.concat(parts)
end

function init(args)
  if args[1] ~= nil then depth = tonumber(args[1]) or depth end
  if args[2] ~= nil then sid = args[2] end
  unique = args[3] == "unique"
  batch = build("T")
  if unique then
    -- A prefix of its own per wrk run (runs are seconds apart): the next run's ids are not the last run's.
    local prefix = string.format("W%x_", os.time() % 1048576)
    for i = 1, math.ceil(UNIQUE_IDS / depth) do pool[i] = build(prefix) end
  end
end

function request()
  if unique then
    nextBatch = nextBatch % #pool + 1
    return pool[nextBatch]
  end
  return batch
end
