"""The asyncio client on sessions that survive (issue #11), over the fake runner."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agent.aio import AsyncClient
from agent.errors import InvalidArgument, NotFound
from proto.results import Verdict
from tests.daemon.fake_runner import fake_daemon


def test_async_interrupt_timeout_cancel_checkpoint_fork_attach() -> None:
    async def main() -> None:
        async with fake_daemon() as fake, AsyncClient(fake.target) as client:
            s = await client.session()
            await s.run("kept = 7")
            # interrupt() from another task
            task = asyncio.create_task(s.run("#loop"))
            await asyncio.sleep(0.2)
            assert await s.interrupt() is True
            assert (await task).verdict is Verdict.INTERRUPTED
            # timeout=
            assert (await s.run("#loop", timeout=0.2)).verdict is Verdict.INTERRUPTED
            # cancelling the task that runs the snippet interrupts it; the session stays
            task = asyncio.create_task(s.run("#loop"))
            await asyncio.sleep(0.2)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert (await s.run("kept * 6")).python_value == 42
            # leaving stream() early, closing the generator
            async with contextlib.aclosing(s.stream("#loop")) as items:
                async for _item in items:
                    break
            assert (await s.run("kept")).python_value == 7
            # checkpoints and fork
            cp = await s.checkpoint()
            await s.run("kept = 0")
            await s.rollback(cp)
            assert [c.checkpoint_id for c in await s.checkpoints()] == [cp]
            child = await s.fork(cp)
            assert (await child.run("kept")).python_value == 7
            await s.drop_checkpoint(cp)
            with pytest.raises(NotFound):
                await child.rollback(cp)
            with pytest.raises(InvalidArgument):
                await s.upload("f", b"x" * (65 << 10))
            # detach + attach from a second client
            sid = s.detach()
            await client.close()
            async with AsyncClient(fake.target) as other:
                again = await other.attach(sid)
                assert (await again.run("kept")).python_value == 7
                await again.close()

    asyncio.run(main())
