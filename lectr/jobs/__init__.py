"""The background jobs' process: aggregation, anomalies and alerts, recommendations.

`runs` has one call per job, used by the proxy's schedule (lectr/proxy/addons/schedule.py,
in a child process) and by the CLI. Jobs read and write stored data only.
"""
