"""``erogaki worker hent-ai|deepcreampy``: a backend, a pipeline and the loop."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from erogaki_common.errors import Component, ConfigError
from erogaki_common.images import Limits
from erogaki_common.keys import HEARTBEAT_INTERVAL, HEARTBEAT_TTL, Queue
from erogaki_common.settings import Settings, environment
from erogaki_common.worker import Done, Forward, Job, Outcome, Processor, Worker
from workers import pipeline
from workers.backend import DeepCreamPyBackend, HentaiBackend
from workers.metrics import Metrics

log = logging.getLogger(__name__)

WORKERS = ("hent-ai", "deepcreampy")


@dataclass(frozen=True)
class WorkerOptions:
    worker: str  # one of WORKERS
    backend: str
    instance: str
    concurrency: int = 1
    metrics_port: int | None = None
    burst: bool = False
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    heartbeat_ttl: int = HEARTBEAT_TTL


def hentai_backend(name: str, settings: Settings) -> HentaiBackend:
    if name == "cpu":
        from workers.cpu_backend import CpuHentai

        return CpuHentai()
    if name == "onnx":
        from workers.onnx import OnnxConfig, OnnxHentai

        return OnnxHentai.load(OnnxConfig.from_env(environment()), settings.models_dir)
    raise ConfigError(f"unknown backend {name!r} for the hent-AI worker; use cpu or onnx")


def deepcreampy_backend(name: str, settings: Settings) -> DeepCreamPyBackend:
    if name == "cpu":
        from workers.cpu_backend import CpuDeepCreamPy

        return CpuDeepCreamPy()
    if name == "onnx":
        from workers.onnx import OnnxConfig, OnnxDeepCreamPy

        return OnnxDeepCreamPy.load(OnnxConfig.from_env(environment()), settings.models_dir)
    raise ConfigError(f"unknown backend {name!r} for the DeepCreamPy worker; use cpu or onnx")


def hentai_processor(backend: HentaiBackend, limits: Limits) -> Processor:
    async def process(job: Job) -> Outcome:
        # Image work runs in a thread so heartbeats keep beating meanwhile.
        if job.queue == Queue.HENTAI_BAR:
            masked = await asyncio.to_thread(
                pipeline.mask_bars, job.data, backend, limits, job.timings
            )
            return Forward(Queue.DEEPCREAMPY_BAR, masked)
        if job.queue == Queue.HENTAI_AUTO:
            image, bars_left = await asyncio.to_thread(
                pipeline.auto, job.data, backend, limits, job.timings
            )
            return Forward(Queue.DEEPCREAMPY_BAR, image) if bars_left else Done(image)
        restored = await asyncio.to_thread(
            pipeline.restore_mosaic, job.data, backend, limits, job.timings
        )
        return Done(restored)

    return process


def deepcreampy_processor(backend: DeepCreamPyBackend, limits: Limits) -> Processor:
    async def process(job: Job) -> Outcome:
        return Done(
            await asyncio.to_thread(pipeline.inpaint_green, job.data, backend, limits, job.timings)
        )

    return process


def build_worker(options: WorkerOptions, settings: Settings, metrics: Metrics | None) -> Worker:
    """The configured Worker; raises ConfigError for a bad backend setup."""
    limits = Limits(settings.max_image_bytes, settings.max_image_pixels)
    if options.worker == "hent-ai":
        hentai = hentai_backend(options.backend, settings)
        queues = [Queue.HENTAI_BAR, Queue.HENTAI_MOSAIC, Queue.HENTAI_AUTO]
        component = Component.HENTAI
        process = hentai_processor(hentai, limits)
    else:
        dcp = deepcreampy_backend(options.backend, settings)
        queues, component = [Queue.DEEPCREAMPY_BAR], Component.DEEPCREAMPY
        process = deepcreampy_processor(dcp, limits)
    return Worker(
        settings.redis_url,
        queues,
        process,
        component=component,
        instance=options.instance,
        concurrency=options.concurrency,
        max_attempts=settings.max_attempts,
        burst=options.burst,
        heartbeat_interval=options.heartbeat_interval,
        heartbeat_ttl=options.heartbeat_ttl,
        on_report=metrics.observe if metrics else None,
    )


async def run(options: WorkerOptions, settings: Settings) -> None:
    metrics = Metrics() if options.metrics_port is not None else None
    worker = build_worker(options, settings, metrics)
    worker.install_signal_handlers()
    tracker: asyncio.Task[None] | None = None
    if metrics is not None and options.metrics_port is not None:
        metrics.serve(options.metrics_port)
        tracker = asyncio.create_task(
            metrics.track_queues(settings.redis_url, worker.queues, options.heartbeat_interval)
        )
    log.info(
        "%s worker %s: backend %s, concurrency %d",
        options.worker, options.instance, options.backend, options.concurrency,
    )  # fmt: skip
    try:
        await worker.run()
    finally:
        if tracker is not None:
            tracker.cancel()
            await asyncio.gather(tracker, return_exceptions=True)


__all__ = ["WORKERS", "WorkerOptions", "build_worker", "run"]
