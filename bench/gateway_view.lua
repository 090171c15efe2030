-- wrk: GET the customer view through the gateway as the bench's signed-in agent
-- (bench/gateway_view.py puts its API token in BENCH_VIEW_TOKEN).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_VIEW_TOKEN")
