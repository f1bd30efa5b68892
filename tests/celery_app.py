"""The Celery app of tests/test_celery.py: the integration's tasks with quick pacing, on the Redis broker
named by TEST_CELERY_BROKER. Its worker runs as `python -m celery -A celery_app worker`."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from tarash_router.integrations.celery import Pacing, Tasks, register_tasks

QUICK = Pacing(slot_retry=(1.0, 4.0), slot_wait=120.0, webhook_check_after=5.0)


def make_app(broker: str, **options: Any) -> tuple[Celery, Tasks]:
    app = Celery("tarash-tests", broker=broker)
    app.conf.update(broker_connection_retry_on_startup=True, task_ignore_result=True)
    tasks = register_tasks(app, pacing=QUICK, **options)

    @app.task(name="tests.record_done", shared=False)
    def record_done(job: dict[str, Any], key: str) -> None:
        """An `on_done` callback: note the finished job in a Redis list the test reads."""
        import redis

        with redis.Redis.from_url(broker) as connection:
            connection.rpush(key, f"{job['id']} {job['state']}")

    return app, tasks


app, tasks = make_app(os.environ.get("TEST_CELERY_BROKER", "redis://127.0.0.1:6379/1"))
