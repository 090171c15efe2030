-- wrk: POST /tickets for one of the bench's customers, as the agent console would.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local customer = string.format("00000000-0000-4000-8000-%012d", math.random(0, 99999))
  local body = '{"subject": "Kettle leaks at the lid", "description": "Water on the counter after boiling.",'
    .. ' "category": "quality_issue", "priority": "high", "channel": "phone", "customer_id": "' .. customer .. '"}'
  return wrk.format(nil, nil, nil, body)
end
