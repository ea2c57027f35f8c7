"""The playbook file format, validated by pydantic at start-up (an untrusted boundary).

A directory of playbooks holds one playbook per ``*.yaml`` file and an optional
``_settings.yaml`` for the whole set (how conflicts are resolved, the time zone, slot values).
README's "Playbooks" section documents every field with an example.
"""

from __future__ import annotations

import re
import string
from datetime import time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.models import Action, Platform, Priority
from classifiers.flags import FLAGS
from classifiers.influence import TIERS as INFLUENCE_FLOORS
from classifiers.intent import INTENTS
from classifiers.text_model import SENTIMENT_LABELS
from classifiers.value import TIERS as VALUE_FLOORS

# The taxonomy comes from the classifiers that produce it, so the two never drift apart.
INFLUENCE_TIERS = ("unknown", *(name for _, name in reversed(INFLUENCE_FLOORS)))
VALUE_TIERS = ("unknown", *(name for _, name in reversed(VALUE_FLOORS)))
# Slots a reply template may use; README says where each value comes from.
SLOTS = frozenset(
    {"first_name", "name", "handle", "brand", "order_ref", "status_url", "support_url", "agent"}
)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _duration(value: object) -> object:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"2d"`` → timedelta; other values pass to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30m, 4h or 2d")
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """An inclusive numeric range; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def holds(self, value: float) -> bool:
        """True when ``value`` lies in the range."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


def _clock(value: object) -> object:
    """``"18:00"`` → 18:00. YAML 1.1 reads an unquoted 18:00 as the number 1080: undo that."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, str):
        try:
            parsed = time.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a time of day such as 18:00") from None
        if parsed.tzinfo is not None:
            raise ValueError("give the time without a zone; the set's timezone applies")
        return parsed
    raise ValueError(f"{value!r} is not a time of day such as 18:00")


Clock = Annotated[time, BeforeValidator(_clock)]


class Hours(_Strict):
    """A time-of-day window in the set's time zone; it may wrap midnight (18:00–08:00)."""

    start: Clock = Field(alias="from")
    end: Clock = Field(alias="to")

    def holds(self, moment: time) -> bool:
        """True when ``moment`` falls in the window."""
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class Spike(_Strict):
    """Volume trigger: at least ``count`` similar mentions (same intent and flags) ``within``."""

    count: int = Field(ge=2)
    within: Duration

    @field_validator("within")
    @classmethod
    def _short(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(hours=24):
            raise ValueError("within must be between 1m and 24h")
        return value


def _choices(allowed: tuple[str, ...]) -> BeforeValidator:
    def check(value: object) -> object:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list):
            for item in items:
                if item not in allowed:
                    raise ValueError(f"{item!r} is not one of {', '.join(allowed)}")
        return items

    return BeforeValidator(check)


class When(_Strict):
    """Triggers over the classification; every condition given must hold (a list: any of it)."""

    sentiment: Annotated[list[str], _choices(SENTIMENT_LABELS)] | None = None
    sentiment_score: Range | None = None
    intent: Annotated[list[str], _choices(INTENTS)] | None = None
    intent_score: Range | None = None
    flags: Annotated[list[str], _choices(FLAGS)] | None = None
    influence_tier: Annotated[list[str], _choices(INFLUENCE_TIERS)] | None = None
    influence_score: Range | None = None
    value_tier: Annotated[list[str], _choices(VALUE_TIERS)] | None = None
    value_score: Range | None = None
    deviation: bool | None = None
    platform: list[Platform] | None = None
    language: list[str] | None = None
    keywords: list[Annotated[str, Field(min_length=1)]] | None = None
    known_contact: bool | None = None
    in_thread: bool | None = None
    hours: Hours | None = None
    spike: Spike | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> When:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a rule needs at least one condition (use `always: true` for none)")
        return self


class Then(_Strict):
    """A rule's outcome."""

    action: Action
    priority: Priority
    channel: str | None = None
    owner: str | None = None


class Rule(_Strict):
    """A named condition and what follows from it."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    when: When | None = None
    always: bool = False
    then: Then

    @model_validator(mode="after")
    def _condition(self) -> Rule:
        if (self.when is not None) != self.always:
            return self
        raise ValueError("give either `when:` conditions or `always: true`, not both or neither")


class Sla(_Strict):
    """First response due after arrival; escalation steps every ``escalate_after`` beyond it."""

    first_response: Duration
    escalate_after: Duration | None = None


class Step(_Strict):
    """One escalation step: exactly one of notify a channel, mention a lead, page, open a ticket."""

    notify: str | None = None
    mention: str | None = None
    page: str | None = None
    ticket: Annotated[str, Field(pattern=r"^https?://")] | None = None

    @model_validator(mode="after")
    def _one(self) -> Step:
        given = [name for name in ("notify", "mention", "page", "ticket") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("an escalation step is exactly one of notify, mention, page, ticket")
        return self

    @property
    def kind(self) -> str:
        """``notify``, ``mention``, ``page`` or ``ticket``."""
        return next(name for name in ("notify", "mention", "page", "ticket") if getattr(self, name))

    @property
    def target(self) -> str:
        """The channel, person, rota or URL the step acts on."""
        return str(getattr(self, self.kind))


class Template(_Strict):
    """A reply template with slots, for some platforms, within a length limit."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$")]
    text: Annotated[str, Field(min_length=1)]
    platforms: list[Platform] | None = None
    max_chars: int | None = Field(default=None, ge=20)

    @field_validator("text")
    @classmethod
    def _known_slots(cls, value: str) -> str:
        for _, slot, spec, conversion in string.Formatter().parse(value):
            if slot is None:
                continue
            if spec or conversion or slot not in SLOTS:
                raise ValueError(f"unknown slot {{{slot}}}; slots are {', '.join(sorted(SLOTS))}")
        return value


class Guidance(_Strict):
    """Do and don't lines shown to the agent on the card."""

    do: list[str] = []
    dont: list[str] = []


class Playbook(_Strict):
    """One playbook file."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    description: str = ""
    channel: str
    owner: str | None = None
    rules: Annotated[list[Rule], Field(min_length=1)]
    sla: Sla | None = None
    escalation: list[Step] = []
    templates: list[Template] = []
    guidance: Guidance = Guidance()

    @model_validator(mode="after")
    def _unique(self) -> Playbook:
        for kind, names in (
            ("rule", [r.name for r in self.rules]),
            ("template", [t.id for t in self.templates]),
        ):
            doubles = sorted({n for n in names if names.count(n) > 1})
            if doubles:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(doubles)}")
        if self.escalation and (self.sla is None or self.sla.escalate_after is None):
            raise ValueError("escalation steps need sla.escalate_after")
        return self


class SetSettings(_Strict):
    """``_settings.yaml``: how the set resolves conflicts, its time zone and slot values."""

    resolution: Literal["highest_priority", "first_match"] = "highest_priority"
    timezone: str = "UTC"
    slots: dict[str, str] = {}

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("slots")
    @classmethod
    def _slot_names(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - SLOTS)
        if unknown:
            raise ValueError(f"unknown slot(s) {', '.join(unknown)}")
        return value
