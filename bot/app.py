"""The composition root: builds the database, pipeline steps and delivery from settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot import effects
from bot.config import Settings
from bot.delivery import Deliverer, Sink
from bot.errors import ConfigError
from bot.pipeline import Pipeline
from classifiers.base import Classifier
from classifiers.unclassified import Unclassified
from handlers.reply_log import LoggedReplies
from handlers.ticket_webhook import TicketWebhook
from playbooks.engine import PlaybookDecider
from playbooks.loader import load_playbooks
from storage.database import Database

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from classifiers.text_model import MiniLMModel
    from playbooks.suggest import Suggester


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

    if settings.slack_signing_secret is None:
        raise ConfigError(
            "Slack needs EARFUL_SLACK_SIGNING_SECRET (Basic Information → App Credentials) "
            "to accept its requests"
        )
    agents = [a.strip() for a in (settings.slack_agents or "").split(",") if a.strip()]
    if not agents:
        raise ConfigError(
            "EARFUL_SLACK_AGENTS is empty: list the Slack user ids allowed to act on cards"
        )
    return build_app(
        token=settings.slack_bot_token.get_secret_value(),
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        workbench=Workbench(database=database),
        agents=agents,
        api_url=settings.slack_api_url,
    )


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
    return Deliverer(database=database, sinks=sinks)


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
    )
    return Services(settings=settings, database=database, pipeline=pipeline, deliverer=deliverer)
