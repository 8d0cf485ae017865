"""The workers' Prometheus endpoint (``--metrics-port``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from erogaki_common.keys import Queue
from erogaki_common.redis_io import CONNECTION_ERRORS, connect
from erogaki_common.worker import JobReport

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "erogaki_jobs", "Jobs handled, by queue and outcome", ["queue", "outcome", "error"],
            registry=self.registry,
        )  # fmt: skip
        self.seconds = Histogram(
            "erogaki_processing_seconds", "Seconds from claim to finish, by queue", ["queue"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=self.registry,
        )  # fmt: skip
        self.queue_length = Gauge(
            "erogaki_queue_length", "Jobs waiting, by queue", ["queue"], registry=self.registry
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
        log.info("metrics on http://0.0.0.0:%d/metrics", port)

    def observe(self, report: JobReport) -> None:
        self.jobs.labels(report.queue, report.outcome.value, report.error).inc()
        if "total" in report.seconds:
            self.seconds.labels(report.queue).observe(report.seconds["total"])

    async def track_queues(self, redis_url: str, queues: Sequence[Queue], every: float) -> None:
        """Refresh the queue-length gauges until cancelled."""
        client = connect(redis_url)
        try:
            while True:
                try:
                    for queue in queues:
                        self.queue_length.labels(queue.value).set(await client.llen(queue))
                except CONNECTION_ERRORS:
                    pass  # the worker loop reports outages; a stale gauge is fine
                await asyncio.sleep(every)
        finally:
            await client.aclose()
