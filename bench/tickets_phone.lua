-- wrk: GET /customers?phone= with a number typed the national way ("030 2xxxxxxx", region DE).
request = function()
  return wrk.format("GET", string.format("/customers?phone=030%%20%d", 20000000 + math.random(0, 99999)))
end
