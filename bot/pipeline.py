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
from datetime import datetime, timedelta
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
    classification_to_json,
    decision_to_json,
)
from storage.database import Database
from storage.ingest import PendingJob
from storage.schema import Conversation, InteractionRow

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

    def add(self, other: ProcessStats) -> None:
        """Count what another part of the pass did."""
        self.routed.update(other.routed)
        self.outbound_logged += other.outbound_logged
        self.failed += other.failed
        self.effects += other.effects
        self.incidents_opened += other.incidents_opened
        self.incident_reports += other.incident_reports
        self.timers_armed += other.timers_armed
        self.compared += other.compared
        self.changes += other.changes


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
class _Inbound:
    """An inbound mention, threaded, with its contact as it stood: ready for the steps."""

    job: PendingJob
    mention: Mention
    contact: ContactSnapshot
    conversation_id: int


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A batch once threaded: its inbound mentions, and what the steps read of the history."""

    inbound: list[_Inbound]
    traffic: RecentTraffic | None  # judged mentions stored before the batch, in the spike window
    past: list[PastReply]  # agents' replies the suggester has not learnt yet


@dataclass(frozen=True, slots=True)
class _Judged:
    """What the steps made of one inbound mention."""

    item: _Inbound
    classification: Classification
    decision: Decision
    suggestions: tuple[Suggestion, ...]
    change: Change | None  # how the compared playbooks differ, when they were run


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
    """Runs stored jobs through the steps; built by the composition root with its steps.

    A batch takes two short write transactions with the steps (classify, decide, suggest: the
    slow part) in between, outside any transaction, so that delivery, Slack actions and
    sources can write while the models run. The first threads the batch and logs its outbound
    replies; the second stores the judgements, routes them and finishes their jobs, for the
    jobs still pending as they were read: whatever another pass finished meanwhile is skipped.
    """

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
                self._process(jobs, stats)
            except SQLAlchemyError:
                log.exception("batch of %d jobs failed; retrying one by one", len(jobs))
                self._process_singly(jobs, stats)

    def _process_singly(self, jobs: list[PendingJob], stats: ProcessStats) -> None:
        for job in jobs:
            try:
                self._process([job], stats)
            except SQLAlchemyError as exc:
                with self.database.transaction() as session:
                    failed = ingest.fail_job(session, job, f"storage: {exc}", at=self.clock())
                stats.failed += failed

    def _process(self, jobs: list[PendingJob], stats: ProcessStats) -> None:
        """One batch: thread it, run the steps with no transaction open, store and route."""
        now = self.clock()
        loaded = self._load(jobs, stats, now)
        judged, failures = self._judge(loaded)
        self._store(judged, failures, stats, now)

    def _load(self, jobs: list[PendingJob], stats: ProcessStats, now: datetime) -> _Loaded:
        """Thread the batch, resolve its authors and log its replies; read what the steps need.

        A few queries for the whole batch, not per mention. An outbound reply needs no step:
        its job is done here.
        """
        with self.database.transaction() as session:
            jobs = ingest.still_pending(session, jobs)
            if not jobs:  # another pass took them all meanwhile
                return _Loaded([], None, [])
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
                    session,
                    [m for m, is_in in zip(mentions, inbound, strict=True) if is_in],
                    at=now,
                )
            )
            customer_ids = [next(resolved) if is_in else None for is_in in inbound]
            # Replies whose delivery failed before they were threaded are no answer; read under
            # a lock, so that a failure recorded now either is seen here or sees the thread.
            failed = replies.failed_for_good(
                session,
                [job.interaction_id for job, is_in in zip(jobs, inbound, strict=True) if not is_in],
            )
            threads = conversations.attach_all(
                session,
                mentions,
                customer_ids,
                at=now,
                undelivered={rows[i].external_id for i in failed},
            )
            history = contacts.snapshots(
                session, customer_ids, excluding=[job.interaction_id for job in jobs]
            )
            seen: Counter[int] = Counter()  # earlier mentions of this batch count as history too

            updates: list[dict[str, object]] = []
            items: list[_Inbound] = []
            outbound: list[PendingJob] = []
            for job, mention, thread, customer in zip(
                jobs, mentions, threads, customer_ids, strict=True
            ):
                update: dict[str, object] = {"id": job.interaction_id, "conversation_id": thread.id}
                if mention.direction == Direction.OUTBOUND:
                    # The company's own account is no contact: the reply goes on the customer's
                    # history.
                    update["contact_id"] = thread.contact_id
                    update["agent"] = mention.author.handle or mention.author.display_name
                    outbound.append(job)
                else:
                    update["contact_id"] = customer
                    snapshot = _with_earlier(history, customer, seen)
                    items.append(_Inbound(job, mention, snapshot, thread.id))
                updates.append(update)
            if updates:
                session.execute(update_rows(InteractionRow), updates)
            logged = ingest.finish_jobs(session, outbound, at=now)
        stats.outbound_logged += len(logged)
        # Read after the replies are threaded: the suggester learns this batch's replies too.
        with self.database.transaction() as session:
            traffic = self._traffic(session, items)
            past = self._past_replies(
                session, [job.interaction_id for job in outbound if job.job_id in logged]
            )
        return _Loaded(items, traffic, past)

    def _past_replies(self, session: Session, outbound_ids: list[int]) -> list[PastReply]:
        """The replies the suggester has not learnt: the whole history at first, then new ones."""
        if self.suggester is None:
            return []
        if not self._history_read:
            pairs = replies.past_replies(session)  # the whole history, this batch's included
            self._history_read = True
        else:
            pairs = replies.past_replies(session, ids=outbound_ids) if outbound_ids else []
        return [PastReply(c, r, "history", i) for c, r, i in pairs]

    def _traffic(self, session: Session, items: list[_Inbound]) -> RecentTraffic | None:
        """Judged mentions stored before this batch in the spike window of any of its mentions.

        The steps add this batch's own once classified.
        """
        window = self.decider.spike_window
        if window is None or not items:
            return None
        times = [item.mention.created_at for item in items]
        return RecentTraffic(recent.similar_between(session, min(times) - window, max(times)))

    def _judge(self, loaded: _Loaded) -> tuple[list[_Judged], list[tuple[PendingJob, str]]]:
        """Classify, decide and suggest, with no transaction open; one error boundary each."""
        failures: list[tuple[PendingJob, str]] = []
        classifications = self._classify(loaded.inbound, failures)
        classified = [
            (item, c)
            for item, c in zip(loaded.inbound, classifications, strict=True)
            if c is not None
        ]
        traffic = loaded.traffic
        if traffic is not None:
            for item, classification in classified:
                traffic.add(item.mention.created_at, similarity_key(classification))
        decided: list[tuple[_Inbound, Classification, Decision, Change | None]] = []
        for item, classification in classified:
            try:
                decision = self.decider.decide(item.mention, classification, item.contact, traffic)
                change = None
                if self.compare is not None:
                    other = self.compare.decide(item.mention, classification, item.contact, traffic)
                    change = Change(item.mention.external_id, item.mention.text, decision, other)
            except Exception as exc:  # one mention's failure must not stop the others
                failures.append((item.job, _failure(item.job, exc)))
                continue
            decided.append((item, classification, decision, change))
        suggestions = self._suggest(loaded.past, decided)
        judged = [
            _Judged(item, classification, decision, suggested, change)
            for (item, classification, decision, change), suggested in zip(
                decided, suggestions, strict=True
            )
        ]
        return judged, failures

    def _classify(
        self, items: list[_Inbound], failures: list[tuple[PendingJob, str]]
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
                failures.append((item.job, _failure(item.job, exc)))
                results.append(None)
        return results

    def _suggest(
        self,
        past: list[PastReply],
        decided: list[tuple[_Inbound, Classification, Decision, Change | None]],
    ) -> list[tuple[Suggestion, ...]]:
        """Replies to suggest; the suggester learns the history, then this batch's replies."""
        if self.suggester is None:
            return [() for _ in decided]
        try:
            self.suggester.add_past(past)
            return self.suggester.suggest([(i.mention, i.contact, c, d) for i, c, d, _ in decided])
        except Exception:  # a card without suggestions beats no card
            log.exception("suggested replies failed for a batch of %d", len(decided))
            return [() for _ in decided]

    def _store(
        self,
        judged: list[_Judged],
        failures: list[tuple[PendingJob, str]],
        stats: ProcessStats,
        now: datetime,
    ) -> None:
        """Store the judgements, route them and finish their jobs, in one short transaction.

        Only for the jobs still pending as they were read; the counts join ``stats`` once the
        transaction has committed.
        """
        stored = ProcessStats()
        with self.database.transaction() as session:
            for job, error in failures:
                stored.failed += ingest.fail_job(session, job, error, at=self.clock())
            finished = ingest.finish_jobs(session, [j.item.job for j in judged], at=now)
            kept = [j for j in judged if j.item.job.job_id in finished]
            if len(kept) < len(judged):
                log.info("skipped %d mentions another pass took meanwhile", len(judged) - len(kept))
            for j in kept:
                stored.routed[j.decision.channel] += 1
                if j.change is not None:
                    stored.compared += 1
                    if j.change.fields:
                        stored.changes.append(j.change)
            pending_effects, armings, incident_of = self._route(session, kept, stored)
            if kept:
                session.execute(
                    update_rows(InteractionRow),
                    [
                        {
                            "id": j.item.job.interaction_id,
                            "classification": classification_to_json(j.classification),
                            "similarity_key": similarity_key(j.classification),
                            "decision": decision_to_json(j.decision),
                        }
                        | (
                            {"incident_id": incident_of[j.item.job.interaction_id]}
                            if j.item.job.interaction_id in incident_of
                            else {}
                        )
                        for j in kept
                    ],
                )
            if not self.dry_run:
                outbox.enqueue_all(session, pending_effects, at=now)
                stored.effects += len(pending_effects)
                stored.timers_armed += sla.arm_all(session, armings, at=now)
        stats.add(stored)

    def _route(
        self, session: Session, judged: list[_Judged], stats: ProcessStats
    ) -> tuple[list[effects.Effect], list[sla.Arming], dict[int, int]]:
        """A card per mention, or one card per incident; the SLA timers the decisions start.

        Also the incident each spike report joined, by interaction id.
        """
        out: list[effects.Effect] = []
        armings: list[sla.Arming] = []
        routed = [
            Interaction(
                id=j.item.job.interaction_id,
                mention=j.item.mention,
                conversation_id=j.item.conversation_id,
                contact=j.item.contact,
                classification=j.classification,
                decision=j.decision,
                suggestions=j.suggestions,
            )
            for j in judged
        ]
        spikes = [
            (i, j.decision)
            for i, j in zip(routed, judged, strict=True)
            if j.decision.incident is not None
        ]
        joined = incidents.join_all(
            session,
            [incidents.Report(i.mention.created_at, d) for i, d in spikes],
            window=self.decider.spike_window or timedelta(0),
        )
        # Read now, not when the batch was threaded: an agent may have answered meanwhile.
        awaiting = set(
            session.scalars(
                select(Conversation.id).where(
                    Conversation.id.in_({i.conversation_id for i in routed}),
                    Conversation.state.in_(
                        [ConversationState.NEW.value, ConversationState.ASSIGNED.value]
                    ),
                )
            )
        )
        for interaction, j in zip(routed, judged, strict=True):
            decision = j.decision
            if decision.incident is not None:
                continue
            out.append(effects.card(interaction))
            if decision.action == Action.RESPOND and interaction.conversation_id in awaiting:
                armings.append(
                    sla.Arming(
                        subject=f"conversation:{interaction.conversation_id}",
                        conversation_id=interaction.conversation_id,
                        incident_id=None,
                        interaction_id=interaction.id,
                        decision=decision,
                    )
                )
        incident_of: dict[int, int] = {}
        batch: dict[int, list[tuple[Interaction, incidents.Joined]]] = {}
        for (interaction, _), report in zip(spikes, joined, strict=True):
            incident_of[interaction.id] = report.incident.id
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
        return out, armings, incident_of


def _failure(job: PendingJob, exc: Exception) -> str:
    """Log a mention's failure; the error to record with its job."""
    log.warning("interaction %d failed: %s: %s", job.interaction_id, type(exc).__name__, exc)
    return f"{type(exc).__name__}: {exc}"
