-- wrk: POST /customers with a valid customer, as a client of the tickets API would.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name": "Bench Customer", "phone": "+4915112345678"}'
