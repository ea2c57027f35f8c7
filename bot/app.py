"""The composition root: builds the database, pipeline steps and delivery from settings."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from bot import effects, workbench
from bot.config import Settings
from bot.delivery import Deliverer, PlatformReplies, Sink
from bot.errors import ConfigError
from bot.models import Platform
from bot.pipeline import Pipeline
from bot.polling import Intake
from bot.sources import Endpoint, Source, SourcesConfig, XConfig
from classifiers.base import Classifier
from classifiers.unclassified import Unclassified
from handlers.reply_log import LoggedReplies
from handlers.ticket_webhook import TicketWebhook
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage import outbox, replies
from storage.database import Database
from storage.outbox import Effect

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp
    from sqlalchemy.orm import Session

    from classifiers.text_model import MiniLMModel
    from handlers.slack_socket import SlackSocket
    from playbooks.suggest import Suggester

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a command needs, built once."""

    settings: Settings
    database: Database
    pipeline: Pipeline
    deliverer: Deliverer


def open_database(settings: Settings) -> Database:
    """The configured database, with its schema ready (see `Database.ensure_ready`)."""
    database = Database(url=settings.resolved_database_url)
    database.ensure_ready()
    return database


def build_embedder(settings: Settings) -> MiniLMModel:
    """The shipped encoder (sentiment and sentence embedding); loads on first use."""
    from classifiers.text_model import BUNDLED_SENTIMENT

    return _minilm(settings, BUNDLED_SENTIMENT)


def _minilm(settings: Settings, directory: Path) -> MiniLMModel:
    from classifiers.text_model import MiniLMModel

    return MiniLMModel(
        directory=directory, batch_size=settings.model_batch_size, threads=settings.model_threads
    )


def build_classifier(settings: Settings, *, embedder: MiniLMModel | None = None) -> Classifier:
    """The configured classifier; models load on the first batch, not here."""
    if settings.classifier == "none":
        return Unclassified()
    from classifiers.intent import IntentHead
    from classifiers.language import LanguageDetector
    from classifiers.suite import ClassifierSuite
    from classifiers.text_model import META_FILE, HubSentimentModel, TextModel, parse_label_map

    shipped = embedder or build_embedder(settings)
    text_model: TextModel = shipped
    choice = settings.sentiment_model
    if choice != "bundled":
        if (Path(choice) / META_FILE).is_file():
            text_model = _minilm(settings, Path(choice))
        elif not settings.sentiment_labels:
            raise ConfigError(
                f"sentiment model {choice!r} needs EARFUL_SENTIMENT_LABELS, e.g. "
                "LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive"
            )
        else:
            text_model = HubSentimentModel(
                model=choice, label_map=parse_label_map(settings.sentiment_labels), embedder=shipped
            )
    return ClassifierSuite(text_model=text_model, intent=IntentHead(), language=LanguageDetector())


def build_suggester(
    settings: Settings, decider: PlaybookDecider, *, embedder: MiniLMModel
) -> Suggester | None:
    """Suggested replies from the playbooks' templates and past replies; None without models."""
    if settings.classifier == "none":
        return None
    from playbooks.suggest import Suggester, load_bundled

    return Suggester(
        embed=embedder.embed,
        slots=decider.set.settings.slots,
        templates=decider.templates,
        past=load_bundled(),
    )


def build_decider(settings: Settings) -> PlaybookDecider:
    """The playbooks of ``settings.playbooks`` (default: the bundled set), validated now."""
    return PlaybookDecider(
        load_playbooks(settings.playbooks), triage_channel=settings.triage_channel
    )


def build_slack_surface(settings: Settings, database: Database) -> Sink:
    """Cards, incidents and escalations in Slack, with the configured token and channels."""
    from slack_sdk import WebClient

    from handlers.slack_surface import SlackSurface, channel_map
    from storage.slack import SlackPlaces

    if settings.slack_bot_token is None:
        raise ConfigError("Slack needs EARFUL_SLACK_BOT_TOKEN (a bot token, xoxb-…)")
    try:
        channels = channel_map(settings.slack_channels)
    except ValueError as exc:
        raise ConfigError(f"setting EARFUL_SLACK_CHANNELS: {exc}") from None
    client = WebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    return SlackSurface(client=client, places=SlackPlaces(database), channels=channels)


def build_slack_app(settings: Settings, database: Database) -> AsyncApp | None:
    """The Slack app for card buttons, or None when no Slack token is configured."""
    if settings.slack_bot_token is None:
        return None
    from bot.workbench import Workbench
    from handlers.slack_actions import build_app

    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        raise ConfigError(
            "Slack needs EARFUL_SLACK_APP_TOKEN (xapp-…, Socket Mode) or, for HTTP mode, "
            "EARFUL_SLACK_SIGNING_SECRET (Basic Information → App Credentials) to take its requests"
        )
    agents = [a.strip() for a in (settings.slack_agents or "").split(",") if a.strip()]
    if not agents:
        raise ConfigError(
            "EARFUL_SLACK_AGENTS is empty: list the Slack user ids allowed to act on cards"
        )
    return build_app(
        token=settings.slack_bot_token.get_secret_value(),
        # Socket Mode needs no signing secret: its requests never come over HTTP, and
        # `earful run` mounts no HTTP route for Slack then.
        signing_secret=(
            settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else ""
        ),
        workbench=Workbench(database=database),
        agents=agents,
        api_url=settings.slack_api_url,
    )


def build_slack_socket(settings: Settings, slack_app: AsyncApp | None) -> SlackSocket | None:
    """Socket Mode for ``slack_app`` when an app-level token is set; None means HTTP mode."""
    if slack_app is None or settings.slack_app_token is None:
        return None
    from handlers.slack_socket import SlackSocket

    return SlackSocket(app=slack_app, app_token=settings.slack_app_token.get_secret_value())


def build_deliverer(
    database: Database,
    *,
    team_sink: Sink,
    ticket_sink: Sink | None = None,
    reply_sink: Sink | None = None,
) -> Deliverer:
    """Delivery of every effect kind: the team surface shows cards, incidents and escalations;
    ticket steps go to their webhook; replies to their source (logged until sources exist)."""
    sinks: dict[str, Sink] = {kind: team_sink for kind in effects.TEAM_KINDS}
    sinks[effects.TICKET] = ticket_sink or TicketWebhook()
    sinks[effects.REPLY] = reply_sink or LoggedReplies()
    return Deliverer(database=database, sinks=sinks, on_failure={effects.REPLY: reply_undelivered})


def reply_undelivered(session: Session, failed: Effect, reason: str, at: datetime) -> None:
    """A reply failed for good: the contact history says it was not delivered, the
    conversation awaits a response again (its SLA timer resumes), the card it was sent from
    says so, and the agent who sent it is told in the card's thread."""
    interaction_id = failed.payload.get("interaction_id")
    reopened = isinstance(interaction_id, int) and replies.record_undelivered(
        session, interaction_id, reason, at=at
    )
    outbox.enqueue_all(
        session,
        [
            *workbench.reply_undelivered_status(session, failed, reopened=reopened),
            effects.reply_failed(failed, reason),
        ],
        at=at,
    )


def build(
    *,
    settings: Settings,
    team_sink: Sink | None = None,
    ticket_sink: Sink | None = None,
    dry_run: bool = False,
    database: Database | None = None,
    compare: Path | None = None,
) -> Services:
    """Wire the pipeline with its steps and the deliverer with its sinks.

    ``team_sink``: where cards go; None for Slack, as configured.
    ``compare``: a second playbook directory whose decisions are recorded beside the real ones.
    """
    decider = build_decider(settings)
    other = build_decider(settings.model_copy(update={"playbooks": compare})) if compare else None
    database = database or open_database(settings)
    embedder = build_embedder(settings)
    pipeline = Pipeline(
        database=database,
        classifier=build_classifier(settings, embedder=embedder),
        decider=decider,
        batch_size=settings.batch_size,
        dry_run=dry_run,
        compare=other,
        suggester=build_suggester(settings, decider, embedder=embedder),
    )
    deliverer = build_deliverer(
        database,
        team_sink=team_sink or build_slack_surface(settings, database),
        ticket_sink=ticket_sink,
        reply_sink=build_reply_sink(settings, database),
    )
    return Services(settings=settings, database=database, pipeline=pipeline, deliverer=deliverer)


def _secret(value: SecretStr | None, name: str, why: str) -> str:
    if value is None:
        raise ConfigError(f"{why}: set {name}")
    return value.get_secret_value()


def build_sources(settings: Settings, config: SourcesConfig) -> list[Source]:
    """The polled sources the sources file names, with their tokens from the environment."""
    found: list[Source] = []
    if config.x is not None and not config.x.stream:  # a stream is an endpoint
        from handlers.x_mentions import x_sources

        token = _secret(
            settings.x_bearer_token, "EARFUL_X_BEARER_TOKEN", "the sources file watches X"
        )
        found += x_sources(config.x, bearer_token=token)
    if config.telegram is not None and config.telegram.webhook_url is None:
        from handlers.telegram_updates import TelegramSource

        token = _secret(
            settings.telegram_bot_token,
            "EARFUL_TELEGRAM_BOT_TOKEN",
            "the sources file watches Telegram",
        )
        found.append(
            TelegramSource(config.telegram, token=token, api_url=settings.telegram_api_url)
        )
    if config.feeds:
        from handlers.feeds import feed_sources

        found += feed_sources(config.feeds)
    return found


def build_reply_sink(settings: Settings, database: Database | None = None) -> PlatformReplies:
    """Replies go back to X and Telegram where their credentials are set; others are logged.

    With ``database``, a reply posted on X takes the post's id there (`replies.record_posted`).
    """
    sinks: dict[str, Sink] = {}
    x_keys = (
        settings.x_consumer_key,
        settings.x_consumer_secret,
        settings.x_access_token,
        settings.x_access_token_secret,
    )
    if all(key is not None for key in x_keys):
        from handlers.x_mentions import XReplies

        key, secret, token, token_secret = (k.get_secret_value() for k in x_keys if k)
        sinks[Platform.X.value] = XReplies(
            consumer_key=key,
            consumer_secret=secret,
            access_token=token,
            access_token_secret=token_secret,
            posted=_record_posted(database) if database is not None else None,
        )
    if settings.telegram_bot_token is not None:
        from handlers.telegram_updates import TelegramReplies

        sinks[Platform.TELEGRAM.value] = TelegramReplies(
            token=settings.telegram_bot_token.get_secret_value(),
            api_url=settings.telegram_api_url,
        )
    return PlatformReplies(sinks=sinks, fallback=LoggedReplies())


def _record_posted(database: Database) -> Callable[[int, str, str], None]:
    def record(interaction_id: int, external_id: str, url: str) -> None:
        with database.transaction() as session:
            if not replies.record_posted(session, interaction_id, external_id, url):
                log.info("reply %d: its post %s was stored already", interaction_id, external_id)

    return record


def _x_stream(settings: Settings, config: XConfig, intake: Intake) -> Endpoint:
    """X's filtered stream: no routes; it opens on start and closes on shutdown."""
    from handlers.x_mentions import XStream

    token = _secret(settings.x_bearer_token, "EARFUL_X_BEARER_TOKEN", "the sources file watches X")
    stream = XStream(config, bearer_token=token, store=intake.store, checkpoint=intake.checkpoint)

    async def start() -> None:
        await asyncio.to_thread(stream.start)

    async def stop() -> None:
        await asyncio.to_thread(stream.stop)

    rules = ", ".join(repr(value) for value in stream.rules.values())
    return Endpoint(f"X's filtered stream ({rules})", [], on_start=start, on_stop=stop)


def build_endpoints(settings: Settings, config: SourcesConfig, intake: Intake) -> list[Endpoint]:
    """The pushed sources the sources file enables: the signed webhook, Telegram's webhook,
    X's filtered stream."""
    endpoints = []
    if config.x is not None and config.x.stream:
        endpoints.append(_x_stream(settings, config.x, intake))
    if config.webhook is not None and config.webhook.enabled:
        from handlers.webhook import WebhookReceiver

        secret = _secret(
            settings.webhook_secret, "EARFUL_WEBHOOK_SECRET", "the sources file enables the webhook"
        )
        receiver = WebhookReceiver(
            config.webhook,
            secret=secret,
            store=functools.partial(intake.store, "webhook"),
            max_text_chars=settings.max_text_chars,
        )
        endpoints.append(Endpoint("webhook at POST /webhook/mentions", receiver.routes()))
    if config.telegram is not None and config.telegram.webhook_url is not None:
        from aiohttp import web

        from handlers.telegram_updates import TelegramSource, telegram_webhook_handler

        why = "the sources file sets telegram.webhook_url"
        token = _secret(settings.telegram_bot_token, "EARFUL_TELEGRAM_BOT_TOKEN", why)
        secret = _secret(settings.telegram_webhook_secret, "EARFUL_TELEGRAM_WEBHOOK_SECRET", why)
        source = TelegramSource(config.telegram, token=token, api_url=settings.telegram_api_url)
        url = str(config.telegram.webhook_url)
        path = config.telegram.webhook_url.path or "/"
        handler = telegram_webhook_handler(
            source, secret_token=secret, store=functools.partial(intake.store, source.name)
        )
        endpoints.append(
            Endpoint(
                f"telegram updates at POST {path}",
                [web.post(path, handler)],
                on_start=functools.partial(source.set_webhook, url=url, secret_token=secret),
            )
        )
    return endpoints
