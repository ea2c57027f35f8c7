"""`earful run`: the long-running service, in one process on the embedded default.

One asyncio loop runs:

* the sources: each polled source (X, Telegram, feeds) on its own chain of APScheduler date
  jobs (`bot.polling`), and the signed webhook at ``/webhook/mentions``;
* the pipeline and the outbox delivery, each a worker that runs in a thread when woken (a
  source stored mentions, the pipeline wrote effects) and at least once a second (delivery
  four times a second, for cards waiting for their channel's turn);
* the SLA sweep on APScheduler (`bot.scheduler`);
* Slack's requests, when Slack is configured: over a Socket Mode WebSocket that Earful opens
  (with an app-level token; no public URL), or else at ``/slack/events`` on the HTTP server
  (through slack-bolt, which checks their signatures);
* an HTTP server (aiohttp): ``/healthz``, the webhook, and ``/slack/events`` in HTTP mode.

SIGTERM or SIGINT stops it: the socket closes, the workers and the scheduler finish what they
are running, and the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import TYPE_CHECKING

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import Services
from bot.polling import Intake, Poller, SourceScheduler
from bot.scheduler import SlaScheduler
from bot.sla import SlaTimers
from bot.sources import Endpoint, Source
from storage import status

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from handlers.slack_socket import SlackSocket

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"


class Worker:
    """Runs a blocking pass in a worker thread whenever woken, and at least every ``every`` s.

    Passes never overlap, so the pipeline never takes the same job twice.
    """

    def __init__(self, name: str, work: Callable[[], None], *, every: float = 1.0) -> None:
        self.name = name
        self.work = work
        self.every = every
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Ask for a pass now; safe to call from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._woken.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set; a failing pass is logged, not fatal."""
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.every)
            self._woken.clear()
            try:
                await asyncio.to_thread(self.work)
            except Exception:
                log.exception("%s pass failed", self.name)


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections for a long-running service.

    What start-up loaded (modules, configuration, playbooks) is moved out of the collector's
    sight, and the youngest generation collects after 10,000 allocations instead of 700: the
    pipeline and delivery allocate many short-lived objects (JSON, rows) that reference counting
    frees anyway. A profile under load showed the collector taking 8 % of the busy time.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class Service:
    """Sources, pipeline, delivery, the scheduler and the HTTP endpoint in one loop."""

    def __init__(
        self,
        *,
        services: Services,
        slack_app: AsyncApp | None,
        host: str,
        port: int,
        slack_socket: SlackSocket | None = None,
        sources: Sequence[Source] = (),
        endpoints: Callable[[Intake], list[Endpoint]] = lambda _intake: [],
    ) -> None:
        self.services = services
        self.slack_app = slack_app
        # With a socket, Slack's requests arrive over it and no HTTP route is mounted for them.
        self.slack_socket = slack_socket
        self.host = host
        self.port = port
        self.pipeline = Worker("pipeline", self._process)
        # Often: a card waiting for its channel's next second (Slack's pace) is due then.
        self.delivery = Worker("delivery", self._deliver, every=0.25)
        intake = Intake(
            database=services.database, clock=services.pipeline.clock, on_new=self.pipeline.wake
        )
        self.pollers = [Poller(source=source, intake=intake) for source in sources]
        # Built with the intake, so that what they store wakes the pipeline.
        self.endpoints = endpoints(intake)

    def _process(self) -> None:
        if self.services.pipeline.process_pending().effects:
            self.delivery.wake()

    def _deliver(self) -> None:
        self.services.deliverer.deliver_due()

    async def _healthz(self, _request: web.Request) -> web.Response:
        def counts() -> dict[str, int]:
            with self.services.database.transaction() as session:
                found = status.counts(session, now=self.services.pipeline.clock())
            return {
                "mentions": found.mentions,
                "outbox_pending": found.outbox_pending,
                "jobs_pending": found.jobs_pending,
                "sla_overdue": found.sla_overdue,
            }

        return web.json_response({"ok": True, **await asyncio.to_thread(counts)})

    def _web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        for endpoint in self.endpoints:
            app.add_routes(endpoint.routes)
        if self.slack_app is not None and self.slack_socket is None:
            from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

            bolt = self.slack_app

            async def slack_events(request: web.Request) -> web.Response:
                response = await bolt.async_dispatch(await to_bolt_request(request))
                return await to_aiohttp_response(response)

            app.router.add_post(SLACK_PATH, slack_events)
        return app

    async def run(self, *, on_ready: asyncio.Event | None = None) -> None:
        """Serve until SIGTERM or SIGINT."""
        _tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if self.slack_socket is not None:
            # First, so that a token Slack refuses stops start-up before anything runs.
            await self.slack_socket.connect()
        try:
            await self._serve(stop, on_ready)
        finally:
            if self.slack_socket is not None:  # also when the server failed to start
                await self.slack_socket.close()

    async def _serve(self, stop: asyncio.Event, on_ready: asyncio.Event | None) -> None:
        scheduler = AsyncIOScheduler(timezone=UTC)
        SourceScheduler(pollers=self.pollers, scheduler=scheduler).start()
        SlaScheduler(
            timers=SlaTimers(database=self.services.database, clock=self.services.pipeline.clock),
            scheduler=scheduler,
        ).start()
        workers = [
            asyncio.create_task(worker.run(stop)) for worker in (self.pipeline, self.delivery)
        ]
        runner = web.AppRunner(self._web_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
            log.info("listening on http://%s:%d", self.host, self.port)
            for endpoint in self.endpoints:
                if endpoint.on_start is not None:
                    await endpoint.on_start()
            if on_ready is not None:
                on_ready.set()
            await stop.wait()
        finally:
            stop.set()
            if self.slack_socket is not None:  # take no new requests while jobs finish
                await self.slack_socket.close()
            for endpoint in self.endpoints:
                if endpoint.on_stop is not None:
                    try:
                        await endpoint.on_stop()
                    except Exception:  # the others must still stop
                        log.exception("%s: stopping failed", endpoint.label)
            await runner.cleanup()
            await asyncio.gather(*workers)
            scheduler.shutdown(wait=True)
