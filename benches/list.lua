-- wrk script: POSTs the model list query (a page of 50 with owners and versions) and prints
-- the latency percentiles.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("MODELHUB_BENCH_TOKEN")
wrk.body = os.getenv("MODELHUB_BENCH_BODY")

done = function(summary, latency, requests)
  io.write(string.format("list query: %.0f requests/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, errors %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
