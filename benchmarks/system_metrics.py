"""What MLflow's system-metrics thread costs during training, at the pipeline's interval.

Times, on this machine, the pieces of one cycle of `SystemMetricsMonitor` against a SQLite store
in a temporary folder (the default store; a server answers in the same order of time): one
sample (psutil CPU, memory, disk, network; GPUs with nvidia-ml-py when present), the run-status
read MLflow does after each sample, and one logging call (aggregate + log_batch). The thread's
share of the time is (sample + status read + logging / samples per log) / sampling interval;
a training step loses at most that share (the thread holds the GIL or a core that long).

    .venv/bin/python benchmarks/system_metrics.py --repeats 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mlflow import MlflowClient
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

from pipeline.tracking import SYSTEM_METRICS_INTERVAL_S, SYSTEM_METRICS_SAMPLES_PER_LOG


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("bench")).info.run_id
        monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
        monitor.collect_metrics()  # the first CPU percentage has no interval to measure yet
        sample_ms = median_ms(monitor.collect_metrics, args.repeats)
        status_ms = median_ms(lambda: client.get_run(run_id), args.repeats)

        def log() -> None:
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()

        log_ms = median_ms(log, args.repeats) - sample_ms
        metrics = sorted(client.get_run(run_id).data.metrics)
    cycle_ms = sample_ms + status_ms + log_ms / SYSTEM_METRICS_SAMPLES_PER_LOG
    print(
        json.dumps(
            {
                "sampling_interval_s": SYSTEM_METRICS_INTERVAL_S,
                "samples_per_log": SYSTEM_METRICS_SAMPLES_PER_LOG,
                "sample_ms": round(sample_ms, 2),
                "status_read_ms": round(status_ms, 2),
                "log_ms": round(log_ms, 2),
                "share_of_training_time": round(cycle_ms / (1000 * SYSTEM_METRICS_INTERVAL_S), 6),
                "share_at_mlflow_default_10s_1": round((sample_ms + status_ms + log_ms) / 1e4, 6),
                "metrics": metrics,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
