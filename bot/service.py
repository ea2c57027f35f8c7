"""`earful run`: the long-running service, in one process on the embedded default.

One asyncio loop runs:

* APScheduler (`AsyncIOScheduler`): the pipeline over stored jobs and outbox delivery every
  second, and the SLA sweep (`bot.scheduler`); the sync jobs run in the loop's thread pool;
* an HTTP server (aiohttp): Slack's requests at ``/slack/events`` (through slack-bolt, which
  checks their signatures) when Slack is configured, and ``/healthz``.

SIGTERM or SIGINT stops it: the scheduler finishes the running jobs and the server closes.
The sources (X, Telegram, feeds, the webhook) join this loop with the sources issue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC
from typing import TYPE_CHECKING

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import Services
from bot.scheduler import SlaScheduler
from bot.sla import SlaTimers
from storage import status

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"


class Service:
    """The scheduler and the HTTP endpoint around the pipeline and the outbox."""

    def __init__(
        self, *, services: Services, slack_app: AsyncApp | None, host: str, port: int
    ) -> None:
        self.services = services
        self.slack_app = slack_app
        self.host = host
        self.port = port

    def _process(self) -> None:
        self.services.pipeline.process_pending()

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
        if self.slack_app is not None:
            from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

            bolt = self.slack_app

            async def slack_events(request: web.Request) -> web.Response:
                response = await bolt.async_dispatch(await to_bolt_request(request))
                return await to_aiohttp_response(response)

            app.router.add_post(SLACK_PATH, slack_events)
        return app

    async def run(self, *, on_ready: asyncio.Event | None = None) -> None:
        """Serve until SIGTERM or SIGINT."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        scheduler = AsyncIOScheduler(timezone=UTC)
        for job, name in ((self._process, "pipeline"), (self._deliver, "delivery")):
            scheduler.add_job(job, "interval", seconds=1, id=name, max_instances=1, coalesce=True)
        SlaScheduler(
            timers=SlaTimers(database=self.services.database, clock=self.services.pipeline.clock),
            scheduler=scheduler,
        ).start()
        runner = web.AppRunner(self._web_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        log.info("listening on http://%s:%d", self.host, self.port)
        if on_ready is not None:
            on_ready.set()
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            await runner.cleanup()
