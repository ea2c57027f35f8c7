"""The durable pipeline: ingest → resolve contact → classify → decide → route → log.

Ingest stores each mention with its job in one transaction; processing takes pending jobs in
the order they were stored, so a crash at any point repeats work but never loses a mention
or stores it twice. Routing writes a card effect to the outbox (idempotency key
``card:<interaction id>``), or, for mentions a volume-spike rule matched, one incident card
and then updates to it; respond decisions arm the SLA timer of their conversation or
incident. In a dry run it writes nothing for the outside world and arms no timer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy import update as update_rows
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot import effects
from bot.models import (
    Action,
    Classification,
    Clock,
    ContactSnapshot,
    ConversationState,
    Decision,
    Direction,
    Interaction,
    Mention,
    Platform,
    Suggestion,
    now_utc,
)
from bot.traffic import RecentTraffic, similarity_key
from classifiers.base import Classifier
from playbooks.base import Decider
from playbooks.suggest import PastReply, Suggester
from storage import contacts, conversations, incidents, ingest, outbox, recent, replies, sla
from storage.codec import (
    author_from_json,
    classification_from_json,
    classification_to_json,
    decision_to_json,
)
from storage.database import Database
from storage.ingest import PendingJob
from storage.schema import InteractionRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Change:
    """How another playbook set would have judged one mention differently."""

    external_id: str
    text: str
    before: Decision
    after: Decision

    @property
    def fields(self) -> tuple[str, ...]:
        """Which of action, priority and channel differ."""
        return tuple(
            name
            for name in ("action", "priority", "channel")
            if getattr(self.before, name) != getattr(self.after, name)
        )


@dataclass
class ProcessStats:
    """What one processing pass did."""

    routed: Counter[str] = field(default_factory=Counter)
    outbound_logged: int = 0
    failed: int = 0
    effects: int = 0  # outbox rows written: cards, incident cards and updates
    incidents_opened: int = 0
    incident_reports: int = 0  # mentions that joined an incident instead of getting a card
    timers_armed: int = 0
    compared: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def processed(self) -> int:
        """Jobs that completed, inbound and outbound."""
        return sum(self.routed.values()) + self.outbound_logged


def _mention_of(row: Row[Any]) -> Mention:
    return Mention(
        platform=Platform(row.platform),
        external_id=row.external_id,
        text=row.text,
        author=author_from_json(row.author),
        created_at=row.created_at,
        conversation_id=row.platform_conversation_id,
        in_reply_to=row.in_reply_to,
        url=row.url,
        direction=Direction(row.direction),
        engagement=row.engagement,
        raw=row.raw,
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    job: PendingJob
    update: dict[str, object]  # the interaction's columns to write, filled in step by step
    mention: Mention
    contact: ContactSnapshot
    conversation_id: int
    awaiting: bool  # the conversation still waits for a response once the batch is threaded


def _with_earlier(
    history: dict[int, ContactSnapshot], contact_id: int | None, seen: Counter[int]
) -> ContactSnapshot:
    """The contact as it stands before this mention, counting earlier mentions of the batch."""
    if contact_id is None:
        return ContactSnapshot(contact_id=None)
    snapshot = replace(
        history[contact_id],
        inbound_count=history[contact_id].inbound_count + seen[contact_id],
    )
    seen[contact_id] += 1
    return snapshot


class Pipeline:
    """Runs stored jobs through the steps; built by the composition root with its steps."""

    def __init__(
        self,
        *,
        database: Database,
        classifier: Classifier,
        decider: Decider,
        batch_size: int = 200,
        dry_run: bool = False,
        clock: Clock = now_utc,
        compare: Decider | None = None,
        suggester: Suggester | None = None,
    ) -> None:
        self.database = database
        self.classifier = classifier
        self.decider = decider
        self.compare = compare
        self.suggester = suggester
        self._history_read = False
        self.batch_size = batch_size
        self.dry_run = dry_run
        self.clock = clock

    def ingest(
        self, mentions: Sequence[Mention], *, checkpoint: tuple[str, str] | None = None
    ) -> int:
        """Store mentions with their jobs in one transaction; return how many were new."""
        with self.database.transaction() as session:
            return len(
                ingest.ingest(session, mentions, received_at=self.clock(), checkpoint=checkpoint)
            )

    def process_pending(self) -> ProcessStats:
        """Process every pending job, batch by batch, until none is left."""
        stats = ProcessStats()
        while True:
            with self.database.transaction() as session:
                jobs = ingest.pending_jobs(session, limit=self.batch_size)
            if not jobs:
                return stats
            try:
                with self.database.transaction() as session:
                    self._process(session, jobs, stats)
            except SQLAlchemyError:
                log.exception("batch of %d jobs failed; retrying one by one", len(jobs))
                self._process_singly(jobs, stats)

    def _process_singly(self, jobs: list[PendingJob], stats: ProcessStats) -> None:
        for job in jobs:
            try:
                with self.database.transaction() as session:
                    self._process(session, [job], stats)
            except SQLAlchemyError as exc:
                with self.database.transaction() as session:
                    ingest.fail_job(session, job, f"storage: {exc}", at=self.clock())
                stats.failed += 1

    def _process(self, session: Session, jobs: list[PendingJob], stats: ProcessStats) -> None:
        """One batch in one transaction: a few queries for the whole batch, not per mention."""
        now = self.clock()
        rows = {
            row.id: row
            for row in session.execute(
                select(InteractionRow.__table__).where(
                    InteractionRow.id.in_([job.interaction_id for job in jobs])
                )
            )
        }
        mentions = [_mention_of(rows[job.interaction_id]) for job in jobs]
        inbound = [m.direction == Direction.INBOUND for m in mentions]
        resolved = iter(
            contacts.resolve_authors(
                session, [m for m, is_in in zip(mentions, inbound, strict=True) if is_in], at=now
            )
        )
        customer_ids = [next(resolved) if is_in else None for is_in in inbound]
        threads = conversations.attach_all(session, mentions, customer_ids, at=now)
        history = contacts.snapshots(session, customer_ids)
        seen: Counter[int] = Counter()  # earlier mentions of this batch count as history too

        updates: list[dict[str, object]] = []
        prepared: list[_Prepared] = []
        done: list[int] = []
        for job, mention, thread, customer in zip(
            jobs, mentions, threads, customer_ids, strict=True
        ):
            update: dict[str, object] = {"id": job.interaction_id, "conversation_id": thread.id}
            if mention.direction == Direction.OUTBOUND:
                # The company's own account is no contact: the reply goes on the customer's history.
                update["contact_id"] = thread.contact_id
                update["agent"] = mention.author.handle or mention.author.display_name
                stats.outbound_logged += 1
                done.append(job.job_id)
            else:
                update["contact_id"] = customer
                snapshot = _with_earlier(history, customer, seen)
                awaiting = thread.state in (ConversationState.NEW, ConversationState.ASSIGNED)
                prepared.append(_Prepared(job, update, mention, snapshot, thread.id, awaiting))
            updates.append(update)
        # Threads and contacts first: the suggester reads this batch's replies in their threads.
        session.execute(update_rows(InteractionRow), updates)
        outbound_ids = [
            job.interaction_id
            for job, mention in zip(jobs, mentions, strict=True)
            if mention.direction == Direction.OUTBOUND
        ]

        classifications = self._classify(session, prepared, stats)
        traffic = self._traffic(session, prepared, classifications)
        judged: list[tuple[_Prepared, Classification, Decision]] = []
        for item, classification in zip(prepared, classifications, strict=True):
            if classification is None:
                continue
            try:
                decision = self.decider.decide(item.mention, classification, item.contact, traffic)
                if self.compare is not None:
                    other = self.compare.decide(item.mention, classification, item.contact, traffic)
                    stats.compared += 1
                    change = Change(item.mention.external_id, item.mention.text, decision, other)
                    if change.fields:
                        stats.changes.append(change)
            except Exception as exc:  # one mention's failure must not stop the others
                self._fail(session, item.job, exc, stats)
                continue
            judged.append((item, classification, decision))

        suggestions = self._suggest(session, judged, outbound_ids)
        routed: list[tuple[_Prepared, Interaction, Decision]] = []
        for (item, classification, decision), suggested in zip(judged, suggestions, strict=True):
            interaction = Interaction(
                id=item.job.interaction_id,
                mention=item.mention,
                conversation_id=item.conversation_id,
                contact=item.contact,
                classification=classification,
                decision=decision,
                suggestions=suggested,
            )
            item.update["classification"] = classification_to_json(classification)
            item.update["decision"] = decision_to_json(decision)
            stats.routed[decision.channel] += 1
            done.append(item.job.job_id)
            routed.append((item, interaction, decision))

        pending_effects, armings = self._route(session, routed, stats)
        if judged:
            session.execute(update_rows(InteractionRow), [item.update for item, _, _ in judged])
        if not self.dry_run:
            outbox.enqueue_all(session, pending_effects, at=now)
            stats.effects += len(pending_effects)
            stats.timers_armed += sla.arm_all(session, armings, at=now)
        ingest.finish_jobs(session, done, at=now)

    def _route(
        self,
        session: Session,
        routed: list[tuple[_Prepared, Interaction, Decision]],
        stats: ProcessStats,
    ) -> tuple[list[effects.Effect], list[sla.Arming]]:
        """A card per mention, or one card per incident; the SLA timers the decisions start."""
        out: list[effects.Effect] = []
        armings: list[sla.Arming] = []
        spikes = [(item, i, d) for item, i, d in routed if d.incident is not None]
        joined = incidents.join_all(
            session,
            [incidents.Report(i.mention.created_at, d) for _, i, d in spikes],
            window=self.decider.spike_window or timedelta(0),
        )
        for item, interaction, decision in routed:
            if decision.incident is not None:
                continue
            out.append(effects.card(interaction))
            if decision.action == Action.RESPOND and item.awaiting:
                armings.append(
                    sla.Arming(
                        subject=f"conversation:{item.conversation_id}",
                        conversation_id=item.conversation_id,
                        incident_id=None,
                        interaction_id=interaction.id,
                        decision=decision,
                    )
                )
        batch: dict[int, list[tuple[Interaction, incidents.Joined]]] = {}
        for (item, interaction, _), report in zip(spikes, joined, strict=True):
            item.update["incident_id"] = report.incident.id
            batch.setdefault(report.incident.id, []).append((interaction, report))
        for members in batch.values():
            first, report = members[0]
            incident = members[-1][1].incident  # counting every report of this batch
            if report.opened:
                stats.incidents_opened += 1
                out.append(effects.incident_opened(incident, first))
                opening = first.decision
                if opening is not None and opening.action == Action.RESPOND:
                    armings.append(
                        sla.Arming(
                            subject=f"incident:{incident.id}",
                            conversation_id=first.conversation_id,
                            incident_id=incident.id,
                            interaction_id=first.id,
                            decision=opening,
                        )
                    )
            else:
                out.append(effects.incident_updated(incident, members[-1][0], len(members)))
            stats.incident_reports += len(members)
        return out, armings

    def _suggest(
        self,
        session: Session,
        judged: list[tuple[_Prepared, Classification, Decision]],
        outbound_ids: list[int],
    ) -> list[tuple[Suggestion, ...]]:
        """Replies to suggest; the suggester learns the history, then this batch's replies."""
        if self.suggester is None:
            return [() for _ in judged]
        if not self._history_read:
            pairs = replies.past_replies(session)  # the whole history, this batch's included
            self._history_read = True
        else:
            pairs = replies.past_replies(session, ids=outbound_ids) if outbound_ids else []
        try:
            self.suggester.add_past([PastReply(c, r, "history", i) for c, r, i in pairs])
            return self.suggester.suggest([(i.mention, i.contact, c, d) for i, c, d in judged])
        except Exception:  # a card without suggestions beats no card
            log.exception("suggested replies failed for a batch of %d", len(judged))
            return [() for _ in judged]

    def _traffic(
        self,
        session: Session,
        items: list[_Prepared],
        classifications: list[Classification | None],
    ) -> RecentTraffic | None:
        """Similar mentions stored before this batch, and this batch's own, in the spike window."""
        window = self.decider.spike_window
        judged = [(i, c) for i, c in zip(items, classifications, strict=True) if c is not None]
        if window is None or not judged:
            return None
        times = [item.mention.created_at for item, _ in judged]
        earlier = recent.judged_between(session, min(times) - window, max(times))
        traffic = RecentTraffic(
            (at, similarity_key(classification_from_json(data))) for at, data in earlier
        )
        for item, classification in judged:
            traffic.add(item.mention.created_at, similarity_key(classification))
        return traffic

    def _classify(
        self, session: Session, items: list[_Prepared], stats: ProcessStats
    ) -> list[Classification | None]:
        batch = [(item.mention, item.contact) for item in items]
        try:
            return list(self.classifier.classify(batch))
        except Exception:
            log.exception("classifier %s failed on a batch; isolating", self.classifier.name)
        results: list[Classification | None] = []
        for item in items:
            try:
                results.append(self.classifier.classify([(item.mention, item.contact)])[0])
            except Exception as exc:
                self._fail(session, item.job, exc, stats)
                results.append(None)
        return results

    def _fail(self, session: Session, job: PendingJob, exc: Exception, stats: ProcessStats) -> None:
        log.warning("interaction %d failed: %s: %s", job.interaction_id, type(exc).__name__, exc)
        ingest.fail_job(session, job, f"{type(exc).__name__}: {exc}", at=self.clock())
        stats.failed += 1
