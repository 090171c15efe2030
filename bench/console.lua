-- wrk: GET a console page through the gateway as the bench's signed-in agent
-- (bench/console.py puts the agent's API token in BENCH_CONSOLE_TOKEN; the console takes bearer tokens).
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_CONSOLE_TOKEN")
