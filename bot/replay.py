"""Replay: run a dump of mentions through the pipeline, batch by batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.delivery import Deliverer, DeliveryStats
from bot.errors import InputError
from bot.models import Mention
from bot.pipeline import Change, Pipeline
from handlers.file_import import Record


@dataclass
class ReplayReport:
    """What a replay did, for the final table."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[InputError] = field(default_factory=list)
    routed: Counter[str] = field(default_factory=Counter)
    outbound_logged: int = 0
    failed: int = 0
    effects: int = 0
    incidents_opened: int = 0
    incident_reports: int = 0
    timers_armed: int = 0
    compared: int = 0
    changes: list[Change] = field(default_factory=list)
    delivery: DeliveryStats = field(default_factory=DeliveryStats)


def replay(
    records: Iterable[Record],
    *,
    pipeline: Pipeline,
    deliverer: Deliverer | None,
    source: str,
    batch_size: int,
    on_error: Callable[[InputError], None] = lambda _e: None,
    on_batch: Callable[[int], None] = lambda _stored: None,
) -> ReplayReport:
    """Store, process and (unless ``deliverer`` is None) deliver, one batch at a time.

    Each batch is stored with its jobs and the checkpoint ``source`` → last line before it
    is processed, so a run killed at any moment can simply be run again.
    """
    report = ReplayReport()
    batch: list[Mention] = []
    last_line = 0

    def flush() -> None:
        stored = pipeline.ingest(batch, checkpoint=(source, str(last_line)))
        report.stored += stored
        report.duplicates += len(batch) - stored
        batch.clear()
        stats = pipeline.process_pending()
        report.routed.update(stats.routed)
        report.outbound_logged += stats.outbound_logged
        report.failed += stats.failed
        report.effects += stats.effects
        report.incidents_opened += stats.incidents_opened
        report.incident_reports += stats.incident_reports
        report.timers_armed += stats.timers_armed
        report.compared += stats.compared
        report.changes += stats.changes
        if deliverer is not None:
            deliverer.deliver_due(report.delivery)
        on_batch(report.stored)

    for record in records:
        report.read += 1
        last_line = record.line
        if record.error is not None:
            report.rejected.append(record.error)
            on_error(record.error)
            continue
        assert record.mention is not None  # noqa: S101 - a record has one or the other
        batch.append(record.mention)
        if len(batch) >= batch_size:
            flush()
    flush()
    if deliverer is not None:
        drained = deliverer.drain()
        report.delivery.delivered += drained.delivered
        report.delivery.retried += drained.retried
        report.delivery.failed += drained.failed
    return report
