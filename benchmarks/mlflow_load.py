"""Keep an MLflow server as busy as a training run that logs to it, from a process of
its own: ``python benchmarks/mlflow_load.py URI RUN_ID METRICS_PER_SECOND``.

``logging_overhead.py --trackers`` times ember with no logger while this runs, so that
the no-logger row carries the co-located server's cost to the machine (its CPU on the
other core) and the ember MLflow row's extra time is what ember's own process pays.
It posts ``METRICS_PER_SECOND`` metrics a second in ``log-batch`` requests shaped like
ember-mlflow's (999 metrics at most, a fresh step for each pair), from the start and
every 0.1 s (more often than ember's 0.25 s linger: a run of 1000 steps lasts well under
a second), through one kept-alive connection and the standard library only. It prints
``ready`` once the server answered a first (empty) request, and runs until it is
terminated.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
from urllib.parse import urlsplit

INTERVAL_S = 0.1
PER_REQUEST = 999


def main(argv: list[str]) -> int:
    uri, run_id, rate = argv[0], argv[1], float(argv[2])
    where = urlsplit(uri)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=60)
    headers = {"Content-Type": "application/json"}

    def post(body: str) -> None:
        conn.request("POST", "/api/2.0/mlflow/runs/log-batch", body, headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"log-batch answered {response.status}: {answer[:500]!r}")

    post(json.dumps({"run_id": run_id}))
    print("ready", flush=True)
    step, owed = 0, rate * INTERVAL_S  # the first request goes out at once
    last = time.monotonic()
    while True:
        now = time.monotonic()
        owed += rate * (now - last)
        last = now
        metrics = []
        stamp = int(time.time() * 1000)
        while owed >= 2:
            metrics += [
                {"key": "loss", "value": 1.0 / (step + 1), "timestamp": stamp, "step": step},
                {"key": "acc", "value": step % 97 / 97, "timestamp": stamp, "step": step},
            ]
            step += 1
            owed -= 2
        for i in range(0, len(metrics), PER_REQUEST):
            post(json.dumps({"run_id": run_id, "metrics": metrics[i : i + PER_REQUEST]}))
        time.sleep(max(0.0, INTERVAL_S - (time.monotonic() - now)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
