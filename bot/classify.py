"""`earful classify`: JSON Lines in, one judgement per line out; reads the history, never writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bot.models import ContactSnapshot, Mention, Suggestion
from classifiers.base import Classifier
from handlers.file_import import Record
from playbooks.base import Decider
from playbooks.suggest import PastReply, Suggester
from storage import contacts, replies
from storage.codec import classification_to_json, decision_to_json
from storage.database import Database


@dataclass(frozen=True, slots=True)
class Output:
    """One output line, and whether it reports an error."""

    line: dict[str, Any]
    error: bool = False


def _judged(
    mention: Mention, classification: Any, decision: Any, suggestions: tuple[Suggestion, ...]
) -> dict[str, Any]:
    labels = classification_to_json(classification)
    verdict = decision_to_json(decision)
    return {
        "id": mention.external_id,
        "sentiment": labels["sentiment"],
        "intent": labels["intent"],
        "flags": labels["flags"],
        "language": labels["language"],
        "influence": labels["influence"],
        "value": labels["value"],
        "decision": verdict["action"],
        "priority": verdict["priority"],
        "reasons": verdict["reasons"],
        "channel": verdict["channel"],
        "playbook": verdict["playbook"],
        "suggestions": [
            {"text": s.text, "source": s.source, "score": s.score} for s in suggestions
        ],
    }


def classify_records(
    records: Iterable[Record],
    *,
    database: Database,
    classifier: Classifier,
    decider: Decider,
    batch_size: int,
    suggester: Suggester | None = None,
) -> Iterator[Output]:
    """Judge each record in input order; a bad record yields an error line in its place."""
    pending: list[Record] = []
    if suggester is not None:
        with database.transaction() as session:
            history = replies.past_replies(session)
        suggester.add_past([PastReply(c, r, "history", i) for c, r, i in history])

    def flush() -> Iterator[Output]:
        mentions = [r.mention for r in pending if r.mention is not None]
        with database.transaction() as session:
            ids = contacts.lookup_authors(session, mentions)
            history = contacts.snapshots(session, ids)
        known = [history.get(cid) if cid is not None else None for cid in ids]
        snapshots = [snap or ContactSnapshot(contact_id=None) for snap in known]
        classifications = classifier.classify(list(zip(mentions, snapshots, strict=True)))
        decisions = [
            decider.decide(mention, classification, snapshot)
            for mention, classification, snapshot in zip(
                mentions, classifications, snapshots, strict=True
            )
        ]
        judged = list(zip(mentions, snapshots, classifications, decisions, strict=True))
        suggested = suggester.suggest(judged) if suggester else [() for _ in judged]
        results = iter(zip(classifications, decisions, suggested, strict=True))
        for record in pending:
            if record.mention is None:
                assert record.error is not None  # noqa: S101 - a record has one or the other
                yield Output({"line": record.line, "error": str(record.error)}, error=True)
                continue
            classification, decision, suggestions = next(results)
            yield Output(_judged(record.mention, classification, decision, suggestions))
        pending.clear()

    for record in records:
        pending.append(record)
        if len(pending) >= batch_size:
            yield from flush()
    if pending:
        yield from flush()
