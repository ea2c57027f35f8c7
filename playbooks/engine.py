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
from typing import Any
from zoneinfo import ZoneInfo

from bot.models import (
    Action,
    Classification,
    ContactSnapshot,
    Decision,
    EscalationStep,
    Mention,
    Platform,
    Priority,
    Reason,
)
from playbooks.base import Traffic
from playbooks.loader import PlaybookSet
from playbooks.schema import Hours, Playbook, Range, Rule, Spike, Template, When


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


def _labels(
    factor: str,
    label: Callable[[Classification], str | None],
    shown: Callable[[Classification], str | None] = lambda c: None,
) -> Callable[[list[str], ZoneInfo], Check]:
    """A condition that holds when a label of the classification is one of those listed."""

    def build(allowed: list[str], zone: ZoneInfo) -> Check:
        return lambda m, c, k, t: _any_of(factor, allowed, label(c), shown(c))

    return build


def _range(
    factor: str, number: Callable[[Classification], float | None], shown: str = "{}"
) -> Callable[[Range, ZoneInfo], Check]:
    """A condition that holds when a score of the classification lies in the range."""

    def build(bounds: Range, zone: ZoneInfo) -> Check:
        def check(m: Mention, c: Classification, k: ContactSnapshot, t: Traffic) -> Reason | None:
            value = number(c)
            if value is None or not bounds.holds(value):
                return None
            return Reason(factor, shown.format(value), "in range")

        return check

    return build


def _flags(flags: list[str], zone: ZoneInfo) -> Check:
    wanted = set(flags)

    def check(m: Mention, c: Classification, k: ContactSnapshot, t: Traffic) -> Reason | None:
        raised = wanted.intersection(c.flags)
        return Reason("risk flags", ", ".join(sorted(raised)), "raised") if raised else None

    return check


def _deviation(wanted: bool, zone: ZoneInfo) -> Check:
    def check(m: Mention, c: Classification, k: ContactSnapshot, t: Traffic) -> Reason | None:
        deviation = c.value.deviation if c.value else None
        if bool(deviation) != wanted:
            return None
        return Reason("deviation", deviation or "none", "from baseline")

    return check


def _platform(platforms: list[Platform], zone: ZoneInfo) -> Check:
    listed = {p.value for p in platforms}
    return lambda m, c, k, t: (
        Reason("platform", m.platform.value, "listed") if m.platform.value in listed else None
    )


def _keywords(words: list[str], zone: ZoneInfo) -> Check:
    pattern = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE
    )
    return lambda m, c, k, t: (
        Reason("keyword", f'"{found.group(0)}"', "in the text")
        if (found := pattern.search(m.text))
        else None
    )


def _known_contact(wanted: bool, zone: ZoneInfo) -> Check:
    return lambda m, c, k, t: (
        Reason("contact", "known" if k.from_crm else "not in the CRM", "as required")
        if k.from_crm == wanted
        else None
    )


def _in_thread(wanted: bool, zone: ZoneInfo) -> Check:
    return lambda m, c, k, t: (
        Reason("thread", "reply in a thread" if m.in_reply_to else "first message", "as required")
        if (m.in_reply_to is not None) == wanted
        else None
    )


def _hours(hours: Hours, zone: ZoneInfo) -> Check:
    def check(m: Mention, c: Classification, k: ContactSnapshot, t: Traffic) -> Reason | None:
        local = m.created_at.astimezone(zone)
        if not hours.holds(local.time()):
            return None
        return Reason("time of day", local.strftime("%H:%M %Z"), "in the window")

    return check


def _spike(spike: Spike, zone: ZoneInfo) -> Check:
    def check(m: Mention, c: Classification, k: ContactSnapshot, t: Traffic) -> Reason | None:
        n = t.similar(m, c, spike.within)
        if n < spike.count:
            return None
        return Reason("volume", f"{n} similar in {_human(spike.within)}", f"at least {spike.count}")

    return check


# One builder per `When` field: its value (and the set's time zone) → a check that returns the
# reason it held, or None.
_BUILDERS: dict[str, Callable[[Any, ZoneInfo], Check]] = {
    "sentiment": _labels(
        "sentiment",
        lambda c: c.sentiment.label if c.sentiment else None,
        lambda c: f"{c.sentiment.label} {c.sentiment.score:.2f}" if c.sentiment else None,
    ),
    "sentiment_score": _range(
        "sentiment confidence", lambda c: c.sentiment.score if c.sentiment else None, "{:.2f}"
    ),
    "intent": _labels(
        "intent",
        lambda c: c.intent.label if c.intent else None,
        lambda c: f"{c.intent.label} {c.intent.score:.2f}" if c.intent else None,
    ),
    "intent_score": _range(
        "intent confidence", lambda c: c.intent.score if c.intent else None, "{:.2f}"
    ),
    "flags": _flags,
    "influence_tier": _labels(
        "influence",
        lambda c: c.influence.tier if c.influence else None,
        lambda c: f"{c.influence.tier} ({c.influence.score})" if c.influence else None,
    ),
    "influence_score": _range(
        "influence score", lambda c: c.influence.score if c.influence else None
    ),
    "value_tier": _labels(
        "customer value",
        lambda c: c.value.tier if c.value else None,
        lambda c: f"{c.value.tier} ({c.value.score})" if c.value else None,
    ),
    "value_score": _range("customer value score", lambda c: c.value.score if c.value else None),
    "deviation": _deviation,
    "platform": _platform,
    "language": _labels("language", lambda c: c.language),
    "keywords": _keywords,
    "known_contact": _known_contact,
    "in_thread": _in_thread,
    "hours": _hours,
    "spike": _spike,
}


def _checks(when: When, zone: ZoneInfo) -> list[Check]:
    """The checks of the conditions given, in the order `When` declares them."""
    return [
        _BUILDERS[name](value, zone)
        for name in When.model_fields
        if (value := getattr(when, name)) is not None
    ]


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
        respond = then.action == Action.RESPOND
        spike = best.rule.when.spike if best.rule.when else None
        return Decision(
            action=then.action,
            priority=then.priority,
            channel=best.channel,
            playbook=playbook.name,
            reasons=tuple(reasons),
            rule=best.rule.name,
            runner_up=runner_up.label if runner_up else None,
            owner=then.owner or playbook.owner,
            respond_by=mention.created_at + sla.first_response if sla and respond else None,
            escalation=tuple(EscalationStep(step.kind, step.target) for step in playbook.escalation)
            if respond
            else (),
            escalate_after=sla.escalate_after if sla and respond else None,
            incident=best.label if spike is not None else None,
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
