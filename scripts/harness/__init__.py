"""What the tests (tests/helpers.py), the demo, the benchmarks and the soak share: their plumbing.

- harness.processes (its names are also harness's own): start and stop the provider simulator,
  Lectr, bare mitmdump, N Lectr workers behind HAProxy with `lectr jobs --collect`;
- harness.peers: the LiteLLM proxy and Portkey's gateway, which the benchmark measures Lectr against;
- harness.client: the benchmarks' load client (`Conn`, `Reply`, `raw_request`);
- harness.measure: percentiles, and from /proc the machine and each process (CPU, RSS, role);
- harness.report: progress lines, results files (markdown and JSON), checks and tables.
"""

from .processes import (
    JOBS_OFF,
    LECTR_CLI,
    MITMDUMP,
    ROOT,
    Processes,
    Workers,
    accepts,
    clean_env,
    free_port,
    haproxy_binary,
    health,
    listening,
    simulator_env,
    start_haproxy,
    start_jobs,
    start_lectr,
    start_mitmdump,
    start_simulator,
    start_workers,
    stop,
    wait_until,
)

__all__ = [
    "JOBS_OFF",
    "LECTR_CLI",
    "MITMDUMP",
    "ROOT",
    "Processes",
    "Workers",
    "accepts",
    "clean_env",
    "free_port",
    "haproxy_binary",
    "health",
    "listening",
    "simulator_env",
    "start_haproxy",
    "start_jobs",
    "start_lectr",
    "start_mitmdump",
    "start_simulator",
    "start_workers",
    "stop",
    "wait_until",
]
