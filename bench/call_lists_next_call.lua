-- wrk: POST /agents/<id>/next-call, each request for an agent who holds no lease yet, so that every
-- request is a real hand-out (a lease of a randomly chosen due entry), not the renewal of a lease.
-- Agent ids: bench-<round>-<thread>-<n>; the bench registers them beforehand. The round comes
-- after "--" on wrk's command line, so the warm-up and the measurement use different agents.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local round, counter = "0", 0
function init(args)
  round = args[1] or "0"
end

wrk.method = "POST"
request = function()
  local path = string.format("/agents/bench-%s-%d-%d/next-call", round, tid, counter)
  counter = counter + 1
  return wrk.format(nil, path)
end
