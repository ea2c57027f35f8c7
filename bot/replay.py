"""Replay: run a dump of mentions through the pipeline, batch by batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot.delivery import Deliverer, DeliveryStats
from bot.errors import InputError
from bot.models import Mention
from bot.pipeline import Pipeline, ProcessStats
from handlers.file_import import Record


@dataclass
class ReplayReport(ProcessStats):
    """What a replay did, for the final table: what the pipeline did, and what was read,
    stored, rejected and delivered."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[InputError] = field(default_factory=list)
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
        report.add(pipeline.process_pending())
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
