"""Load tests for SGLang vision-language deployments: images and payloads prepared before the timed path,
a streaming HTTP client that timestamps every SSE line as it arrives, per-request samples, SLOs with exit
codes, and the Locust side. Reports of finished runs live in `sglang_epd.reports`, the client's stand-in
server in `sglang_epd.standin`, its accuracy benchmark in `sglang_epd.bench.client_accuracy`. Only
`locust_plugin` imports Locust (and with it gevent's monkey patching); everything else is plain Python so
tests and scripts can use it.
"""
