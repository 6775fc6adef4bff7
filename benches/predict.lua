-- wrk script: POSTs one `predict` call (the body benches/predict.py wrote) and prints the rate
-- and latency percentiles.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MODELHUB_BENCH_TOKEN")
local file = io.open(os.getenv("MODELHUB_BENCH_BODY_FILE"), "rb")
wrk.body = file:read("*a")
file:close()

done = function(summary, latency, requests)
  io.write(string.format("predict: %.0f requests/s, p50 %.2f ms, p99 %.2f ms, errors %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
