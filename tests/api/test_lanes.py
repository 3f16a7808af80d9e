"""A rights check whose request is cancelled while it awaits its audit commit still
raises its alerts once the event is committed (a canary hit must never go unreported)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import pytest

from tierspayant.api.lanes import LookupLane, runs_inline
from tierspayant.app.platform import Platform
from tierspayant.security.audit import AuditEvent
from tierspayant.services.lookup import Deferred


def _deferred(event: Future[AuditEvent], done: threading.Event) -> Deferred[str]:
    return Deferred(lambda: "answer", event, done.set, lambda: None)


def test_given_a_committed_event_then_the_answer_and_the_after_commit_work(
    platform: Platform,
) -> None:
    event: Future[AuditEvent] = Future()
    done = threading.Event()

    async def scenario() -> str:
        task = asyncio.ensure_future(LookupLane(platform).run(lambda: _deferred(event, done)))
        await asyncio.sleep(0.05)
        assert not task.done()  # waits for the commit
        event.set_result(None)  # type: ignore[arg-type]  # the writer's answer
        return await task

    assert asyncio.run(scenario()) == "answer"
    assert done.is_set()


def test_given_a_request_cancelled_while_waiting_then_alerts_still_follow_the_commit(
    platform: Platform,
) -> None:
    event: Future[AuditEvent] = Future()
    done = threading.Event()

    async def scenario() -> None:
        task = asyncio.ensure_future(LookupLane(platform).run(lambda: _deferred(event, done)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not event.cancelled()  # the writer can still settle it
        event.set_result(None)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # the loop runs the done-callback

    asyncio.run(scenario())
    assert done.wait(5)


def test_given_each_engine_then_only_the_embedded_one_runs_on_the_loop(
    platform: Platform,
) -> None:
    assert runs_inline(platform) is (platform.engine.dialect.name == "sqlite")
