-- wrk: filtered GET /tickets as agents and supervisors run them, in turn:
-- an agent's open queue, a customer's tickets, the urgent open tickets.
local n = 0
request = function()
  n = n + 1
  local kind = n % 3
  local path
  if kind == 0 then
    path = string.format("/tickets?status=new,open&assignee=agent-%d&limit=25", math.random(1, 200))
  elseif kind == 1 then
    path = string.format("/tickets?customer=00000000-0000-4000-8000-%012d", math.random(0, 99999))
  else
    path = string.format("/tickets?status=open&priority=urgent&limit=25&offset=%d", 25 * math.random(0, 19))
  end
  return wrk.format("GET", path)
end
