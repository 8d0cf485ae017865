"""Celery's identity job, Redis as broker and result backend.

``celery -A peers_jobs.celery_jobs worker``
"""

from __future__ import annotations

import os

from celery import Celery

URL = os.environ["PEERS_REDIS_URL"]

app = Celery("peers", broker=URL, backend=URL)
app.conf.update(
    # pickle carries bytes as they are; JSON would need base64 (a third larger).
    task_serializer="pickle",
    result_serializer="pickle",
    accept_content=["pickle"],
    result_accept_content=["pickle"],
    # The submitter forgets each result once read; this only bounds leftovers.
    result_expires=60,
    broker_connection_retry_on_startup=True,
)


@app.task(name="identity")
def identity(data: bytes) -> bytes:
    return data
