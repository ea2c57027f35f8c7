"""The composition root: builds the database, pipeline steps and delivery from settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Settings
from bot.delivery import Deliverer, Sink
from bot.pipeline import CARD_EFFECT, Pipeline
from classifiers.unclassified import Unclassified
from playbooks.triage import TriageOnly
from storage.database import Database


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


def build(
    *, settings: Settings, card_sink: Sink, dry_run: bool = False, database: Database | None = None
) -> Services:
    """Wire the pipeline with its steps and the deliverer with its sinks."""
    database = database or open_database(settings)
    pipeline = Pipeline(
        database=database,
        # Real classifiers and playbooks replace these visible pass-throughs in later issues.
        classifier=Unclassified(),
        decider=TriageOnly(channel=settings.triage_channel),
        batch_size=settings.batch_size,
        dry_run=dry_run,
    )
    sinks: Mapping[str, Sink] = {CARD_EFFECT: card_sink}
    deliverer = Deliverer(database=database, sinks=sinks)
    return Services(settings=settings, database=database, pipeline=pipeline, deliverer=deliverer)
