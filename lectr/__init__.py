"""Lectr: a zero-code-change proxy for LLM API traffic.

The packages follow the processes Lectr runs as (README, "Layout"):

- `proxy`: the mitmproxy process. `proxy.addons` holds the addon classes (the hooks);
  the modules beside it are the pure hot-path logic they call: routing, headers, paths.
- `record`: the writer process: events in, token counts and cost, rows out.
- `jobs`: the background jobs' process: aggregation, anomalies and alerts, recommendations.
- `store`: the only package that speaks SQL, for every process.
- `prices`: price data and model families, read by the proxy (rule checks), the writer
  (cost) and the jobs (recommendations).
- `admin`: the `lectr` command and the files it and the dashboard edit.
- `common`: what more than one process speaks: providers, rules, keys, the event, usage.

The proxy never imports `record`, `jobs` or `admin` at load time (tests/test_layout.py);
it reaches the writer and the jobs only inside the child processes it starts.
"""

__version__ = "0.1.0"
