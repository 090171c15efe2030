-- wrk: POST /responses as an agent's console records a follow-up survey: every request is a
-- different call (call_id), so none is refused as a second submission; one in four is a low score.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
local prefix = ""

function init(args)
  -- os.time() differs between the warm-up and the measured run, tid between threads.
  prefix = string.format("%d-%d", os.time(), tid or 0)
end

-- wrk.format with a headers table of its own would drop the signed header wrk got with -H.
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local store = (counter % 4 == 0) and 3 or 9
  local body = string.format(
    '{"customer_id": "5b0e8f4e-2a61-4d3c-9d1e-0c7f3a9b2d41", "agent_id": "agent-%d", "call_id": "bench-%s-%d",'
      .. ' "answers": {"product": 9, "service": 8, "purchase": 10, "recommend_product": 9, "recommend_store": %d}}',
    counter % 20, prefix, counter, store)
  return wrk.format("POST", "/responses", nil, body)
end
