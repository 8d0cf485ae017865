"""The chaos scenarios of ``bench/chaos.py`` in a short form (issue 11).

Each runs a private redis-server, a stand-in fleet and a submitter with jobs
in flight when the fault hits, then checks what a user would see: every job
answered, correctly and once, and no key left once the fleet is idle.
``python bench/chaos.py`` runs the same at full size and prints the figures.
"""

from __future__ import annotations

from bench import chaos


def _check(figures: chaos.Figures) -> None:
    assert figures.clean, figures


async def test_redis_restarted_with_persistence_under_100_jobs() -> None:
    _check(await chaos.restart(jobs=100))


async def test_redis_full_for_a_while_during_load() -> None:
    figures = await chaos.full(jobs=60, seconds=3.0)
    _check(figures)
    assert figures.refused_at_submit == 0  # all were queued before it filled


async def test_client_pause_longer_than_the_heartbeat_ttl() -> None:
    _check(await chaos.pause(jobs=60, seconds=4.0))


async def test_a_worker_process_stopped_past_its_ttl_mid_job() -> None:
    figures = await chaos.stall(jobs=60, stalls=2)
    _check(figures)
    assert figures.notes["stalls"] >= 1
