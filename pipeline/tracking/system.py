"""MLflow's system metrics (CPU, memory, disk, network, GPUs) beside a training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.tracking.store import tracking_uri

# System metrics: one sample every 15 s, logged every 4th (once a minute). A cycle costs ~13 ms
# of one core (a 0.1 ms sample, MLflow's 6 ms run-status read, a quarter of a 25 ms log call;
# benchmarks/system_metrics.py): 0.09% of the training it runs beside, and 28 points for the
# 7-minute CPU default. Logging once a minute, not MLflow's every 10 s, spares a store shared by
# parallel experiments. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL and
# MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING override both.
SYSTEM_METRICS_INTERVAL_S, SYSTEM_METRICS_SAMPLES_PER_LOG = 15.0, 4


@contextmanager
def system_metrics(run_id: str) -> Iterator[None]:
    """MLflow's system metrics (``system/*``: CPU, memory, disk, network, and each GPU's
    utilisation and memory when nvidia-ml-py finds one) sampled in a thread for the block; a
    resumed run continues its steps. The thread only warns and stops if the store fails."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SYSTEM_METRICS_INTERVAL_S,
        samples_before_logging=SYSTEM_METRICS_SAMPLES_PER_LOG,
        resume_logging=True,
        tracking_uri=tracking_uri(),
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()
