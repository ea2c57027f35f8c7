"""The playbook engine: every rule of every playbook is tried; the set's resolution picks one.

Resolution (``_settings.yaml``):

* ``highest_priority`` (default): of the rules that match, the one with the most urgent
  priority wins; a tie goes to the rule that comes first (playbook files in name order, rules in
  file order).
* ``first_match``: the first rule that matches wins, in the same order.

The decision carries the conditions that matched (factor, value, effect), the playbook and rule,
and the runner-up rule. A mention that no rule matches goes to the triage channel undecided.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.models import Action, Classification, ContactSnapshot, Decision, Mention, Priority, Reason
from playbooks.base import Traffic
from playbooks.loader import PlaybookSet
from playbooks.schema import Playbook, Rule, Template, When


class NoTraffic:
    """Every mention alone: for single judgements (``classify``) where no stream exists."""

    def similar(self, mention: Mention, classification: Classification, within: timedelta) -> int:
        """Just the mention itself."""
        return 1


Check = Callable[[Mention, Classification, ContactSnapshot, Traffic], Reason | None]


def _any_of(factor: str, allowed: list[str], value: str | None, shown: str | None) -> Reason | None:
    if value is None or value not in allowed:
        return None
    return Reason(factor, shown or value, f"is {' or '.join(allowed)}")


def _checks(when: When, zone: ZoneInfo) -> list[Check]:  # noqa: C901 - one branch per field
    """One small function per condition; each returns the reason it held, or None."""
    checks: list[Check] = []
    if when.sentiment is not None:
        allowed_sentiment = when.sentiment
        checks.append(
            lambda m, c, k, t: _any_of(
                "sentiment",
                allowed_sentiment,
                c.sentiment.label if c.sentiment else None,
                f"{c.sentiment.label} {c.sentiment.score:.2f}" if c.sentiment else None,
            )
        )
    if when.sentiment_score is not None:
        sentiment_range = when.sentiment_score
        checks.append(
            lambda m, c, k, t: (
                Reason("sentiment confidence", f"{c.sentiment.score:.2f}", "in range")
                if c.sentiment and sentiment_range.holds(c.sentiment.score)
                else None
            )
        )
    if when.intent is not None:
        allowed_intent = when.intent
        checks.append(
            lambda m, c, k, t: _any_of(
                "intent",
                allowed_intent,
                c.intent.label if c.intent else None,
                f"{c.intent.label} {c.intent.score:.2f}" if c.intent else None,
            )
        )
    if when.intent_score is not None:
        intent_range = when.intent_score
        checks.append(
            lambda m, c, k, t: (
                Reason("intent confidence", f"{c.intent.score:.2f}", "in range")
                if c.intent and intent_range.holds(c.intent.score)
                else None
            )
        )
    if when.flags is not None:
        wanted = set(when.flags)
        checks.append(
            lambda m, c, k, t: (
                Reason("risk flags", ", ".join(sorted(wanted & set(c.flags))), "raised")
                if wanted & set(c.flags)
                else None
            )
        )
    if when.influence_tier is not None:
        tiers = when.influence_tier
        checks.append(
            lambda m, c, k, t: _any_of(
                "influence",
                tiers,
                c.influence.tier if c.influence else None,
                f"{c.influence.tier} ({c.influence.score})" if c.influence else None,
            )
        )
    if when.influence_score is not None:
        influence_range = when.influence_score
        checks.append(
            lambda m, c, k, t: (
                Reason("influence score", str(c.influence.score), "in range")
                if c.influence
                and c.influence.score is not None
                and influence_range.holds(c.influence.score)
                else None
            )
        )
    if when.value_tier is not None:
        value_tiers = when.value_tier
        checks.append(
            lambda m, c, k, t: _any_of(
                "customer value",
                value_tiers,
                c.value.tier if c.value else None,
                f"{c.value.tier} ({c.value.score})" if c.value else None,
            )
        )
    if when.value_score is not None:
        value_range = when.value_score
        checks.append(
            lambda m, c, k, t: (
                Reason("customer value score", str(c.value.score), "in range")
                if c.value and c.value.score is not None and value_range.holds(c.value.score)
                else None
            )
        )
    if when.deviation is not None:
        want_deviation = when.deviation
        checks.append(
            lambda m, c, k, t: (
                Reason(
                    "deviation", (c.value.deviation if c.value else None) or "none", "from baseline"
                )
                if bool(c.value and c.value.deviation) == want_deviation
                else None
            )
        )
    if when.platform is not None:
        platforms = {p.value for p in when.platform}
        checks.append(
            lambda m, c, k, t: (
                Reason("platform", m.platform.value, "listed")
                if m.platform.value in platforms
                else None
            )
        )
    if when.language is not None:
        languages = when.language
        checks.append(lambda m, c, k, t: _any_of("language", languages, c.language, None))
    if when.keywords is not None:
        pattern = re.compile(
            r"(?<!\w)(?:" + "|".join(re.escape(w) for w in when.keywords) + r")(?!\w)",
            re.IGNORECASE,
        )
        checks.append(
            lambda m, c, k, t: (
                Reason("keyword", f'"{found.group(0)}"', "in the text")
                if (found := pattern.search(m.text))
                else None
            )
        )
    if when.known_contact is not None:
        want_known = when.known_contact
        checks.append(
            lambda m, c, k, t: (
                Reason("contact", "known" if k.from_crm else "not in the CRM", "as required")
                if k.from_crm == want_known
                else None
            )
        )
    if when.in_thread is not None:
        want_thread = when.in_thread
        checks.append(
            lambda m, c, k, t: (
                Reason(
                    "thread",
                    "reply in a thread" if m.in_reply_to else "first message",
                    "as required",
                )
                if (m.in_reply_to is not None) == want_thread
                else None
            )
        )
    if when.hours is not None:
        hours = when.hours
        checks.append(
            lambda m, c, k, t: (
                Reason(
                    "time of day",
                    m.created_at.astimezone(zone).strftime("%H:%M %Z"),
                    "in the window",
                )
                if hours.holds(m.created_at.astimezone(zone).time())
                else None
            )
        )
    if when.spike is not None:
        spike = when.spike
        checks.append(
            lambda m, c, k, t: (
                Reason(
                    "volume", f"{n} similar in {_human(spike.within)}", f"at least {spike.count}"
                )
                if (n := t.similar(m, c, spike.within)) >= spike.count
                else None
            )
        )
    return checks


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


@dataclass(frozen=True, slots=True)
class _Compiled:
    order: int
    playbook: Playbook
    rule: Rule
    checks: tuple[Check, ...]

    @property
    def label(self) -> str:
        return f"{self.playbook.name}/{self.rule.name}"

    @property
    def channel(self) -> str:
        return self.rule.then.channel or self.playbook.channel


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched, with why."""

    compiled: _Compiled
    reasons: tuple[Reason, ...]


_RANK = {p: i for i, p in enumerate(Priority)}


class PlaybookDecider:
    """Decides by a validated playbook set; pure and deterministic."""

    def __init__(self, playbooks: PlaybookSet, *, triage_channel: str) -> None:
        self.set = playbooks
        self.triage_channel = triage_channel
        zone = ZoneInfo(playbooks.settings.timezone)
        rules: list[_Compiled] = []
        for playbook in playbooks.playbooks:
            for rule in playbook.rules:
                checks = () if rule.when is None else tuple(_checks(rule.when, zone))
                rules.append(_Compiled(len(rules), playbook, rule, checks))
        self.rules = tuple(rules)
        self.by_name = {p.name: p for p in playbooks.playbooks}
        windows = [
            r.rule.when.spike.within for r in rules if r.rule.when and r.rule.when.spike is not None
        ]
        self._spike_window = max(windows) if windows else None

    @property
    def spike_window(self) -> timedelta | None:
        """The longest window a spike trigger looks back over, or None without spike rules."""
        return self._spike_window

    def matches(
        self,
        mention: Mention,
        classification: Classification,
        contact: ContactSnapshot,
        traffic: Traffic,
    ) -> list[Match]:
        """Every rule that matches, best first by the set's resolution."""
        found: list[Match] = []
        for compiled in self.rules:
            reasons: list[Reason] = []
            for check in compiled.checks:
                reason = check(mention, classification, contact, traffic)
                if reason is None:
                    break
                reasons.append(reason)
            else:
                found.append(Match(compiled, tuple(reasons)))
        if self.set.settings.resolution == "highest_priority":
            found.sort(key=lambda m: (_RANK[m.compiled.rule.then.priority], m.compiled.order))
        return found

    def decide(
        self,
        mention: Mention,
        classification: Classification,
        contact: ContactSnapshot,
        traffic: Traffic | None = None,
    ) -> Decision:
        """The winning rule's outcome, its reasons and the runner-up; triage when none matches."""
        if not classification.classified:
            return self._triage(
                Reason("classification", "unclassified", "no labels for the playbooks to judge")
            )
        found = self.matches(mention, classification, contact, traffic or NoTraffic())
        if not found:
            return self._triage(Reason("playbooks", "no rule matched", "a person must judge"))
        best = found[0].compiled
        then = best.rule.then
        reasons = list(found[0].reasons)
        reasons.append(
            Reason(
                "rule",
                best.label,
                f"{then.action.value} {then.priority.value} in {best.channel}",
            )
        )
        runner_up = found[1].compiled if len(found) > 1 else None
        if runner_up is not None:
            why = (
                "lower priority"
                if self.set.settings.resolution == "highest_priority"
                and runner_up.rule.then.priority != then.priority
                else "comes later"
            )
            reasons.append(
                Reason(
                    "runner-up",
                    runner_up.label,
                    f"{runner_up.rule.then.action.value} {runner_up.rule.then.priority.value}; "
                    f"{why}",
                )
            )
        playbook = best.playbook
        sla = playbook.sla
        return Decision(
            action=then.action,
            priority=then.priority,
            channel=best.channel,
            playbook=playbook.name,
            reasons=tuple(reasons),
            rule=best.rule.name,
            runner_up=runner_up.label if runner_up else None,
            owner=then.owner or playbook.owner,
            respond_by=mention.created_at + sla.first_response
            if sla and then.action == Action.RESPOND
            else None,
            escalation=tuple(f"{step.kind} {step.target}" for step in playbook.escalation)
            if then.action == Action.RESPOND
            else (),
            guidance=tuple(f"Do: {line}" for line in playbook.guidance.do)
            + tuple(f"Don't: {line}" for line in playbook.guidance.dont),
        )

    def _triage(self, reason: Reason) -> Decision:
        return Decision(
            action=None,
            priority=None,
            channel=self.triage_channel,
            playbook=None,
            reasons=(reason, Reason("route", self.triage_channel, "sent for a person to triage")),
        )

    def templates(self, decision: Decision) -> list[Template]:
        """The reply templates of the playbook that decided."""
        if decision.playbook is None or decision.playbook not in self.by_name:
            return []
        return list(self.by_name[decision.playbook].templates)
