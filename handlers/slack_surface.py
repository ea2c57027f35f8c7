"""The team surface in Slack: deliver cards, incidents and escalations with slack_sdk.

A conversation's first card is posted to its playbook's channel; every later card of the
conversation goes into that card's thread. An incident has one card, updated in place as
reports join, with each update's latest report in its thread; updates that are due together
go out as one update and one post. An escalation step is posted
in the card's thread, and a ``notify`` step also in the channel it names, with a link.

Delivery runs from the outbox, which retries: a 429 becomes `RetryLater` with Slack's
Retry-After (never slack_sdk's own sleeping retry, which would hold up every other
conversation), 5xx and network errors are retried with backoff, and errors that retrying
cannot fix (a channel that does not exist, a revoked token) fail the effect with the reason.
Posts are paced to one per second per channel, Slack's documented limit. A card, an incident
card or an incident's update that would have to wait for its channel does not hold up
delivery: it gets the channel's next free second and comes back then as `RetryLater`, while
cards for other channels go out; cards of one channel keep their order. (Escalations, which may
post twice, wait in place, so that a retry never repeats their first post.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot import effects
from bot.errors import DeliveryRejected, RetryLater
from bot.models import Interaction
from handlers.slack_blocks import (
    MESSAGE_BLOCKS,
    Block,
    card_blocks,
    card_group,
    card_update,
    escalation_text,
    incident_blocks,
    reply_failed_text,
    report_blocks,
)
from storage.codec import incident_from_json, interaction_from_json
from storage.outbox import Effect
from storage.slack import Posted, SlackPlaces

# Slack error codes that no retry will fix.
_PERMANENT = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "restricted_action",
        "message_not_found",
        "cant_update_message",
    }
)


# A deferred card that comes back this early posts now (the wait below covers the rest).
_EARLY = 0.05


def channel_map(spec: str | None) -> dict[str, str]:
    """``"#care=C0123,#incidents=C0456"`` → {"#care": "C0123", …}; queue names stay as given."""
    if not spec:
        return {}
    mapping = {}
    for part in spec.split(","):
        name, sep, channel_id = part.strip().partition("=")
        if not sep or not name.strip() or not channel_id.strip():
            raise ValueError(f"{part.strip()!r} is not QUEUE=CHANNEL_ID")
        mapping[name.strip()] = channel_id.strip()
    return mapping


class SlackSurface:
    """A sink for the team effects; ``channels`` maps a playbook channel to a Slack channel id."""

    def __init__(
        self,
        *,
        client: WebClient,
        places: SlackPlaces,
        channels: Mapping[str, str] | None = None,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.places = places
        self.channels = dict(channels or {})
        self.min_interval = min_interval
        self.clock = clock
        self.sleep = sleep
        self._last_post: dict[str, float] = {}
        # Per channel, the first second no post has been promised yet; effect id → its second.
        self._next_free: dict[str, float] = {}
        self._slots: dict[int, float] = {}
        self._deferrable: int | None = None  # the effect being delivered, if it posts once
        self._handlers: dict[str, Callable[[dict[str, Any]], object]] = {
            effects.CARD: self._card,
            effects.INCIDENT: self._incident,
            effects.INCIDENT_UPDATE: lambda payload: self._incident_updates([payload]),
            effects.ESCALATION: self._escalation,
            effects.CARD_STATUS: self._card_status,
            effects.REPLY_FAILED: self._reply_failed,
        }

    def deliver(self, effect: Effect) -> None:
        """Post or update in Slack; raise `RetryLater` / `DeliveryRejected` when Slack cannot."""
        handler = self._handlers.get(effect.kind)
        if handler is None:
            raise DeliveryRejected(f"Slack cannot show {effect.kind!r} effects")
        # A thread card or an incident card posts once: it may wait for a second of its own. (A
        # card opening a conversation waits with its group, see `_open`, and incident updates
        # with theirs, see `_incident_updates`.)
        single = (effects.CARD, effects.INCIDENT)
        self._deferrable = effect.id if effect.kind in single else None
        with _slack_errors():
            handler(effect.payload)

    def _channel(self, name: str) -> str:
        return self.channels.get(name, name)

    def _card_channel(self, payload: dict[str, Any]) -> str:
        """The Slack channel of a judged card, read from its stored JSON without parsing it."""
        return self._channel(str(payload["decision"]["channel"]))

    def _take_slot(self, channel: str, effect_id: int) -> None:
        """Raise `RetryLater` until the second this effect holds (or now gets) in ``channel``."""
        now = self.clock()
        slot = self._slots.get(effect_id)
        if slot is None:
            slot = max(now, self._next_free.get(channel, now))
            self._next_free[channel] = slot + self.min_interval
            self._slots[effect_id] = slot
        # A delivery pass that runs late can bring several held seconds at once: each still
        # waits for a second after the channel's latest post, without holding up the pass.
        last = self._last_post.get(channel)
        ready = max(slot, last + self.min_interval) if last is not None else slot
        if ready - now > _EARLY:
            self._slots[effect_id] = ready
            raise RetryLater(f"channel {channel} paced", ready - now)
        del self._slots[effect_id]

    def _post(
        self, channel: str, text: str, blocks: list[Block] | None, *, thread: str | None = None
    ) -> Posted:
        if self._deferrable is not None and self.min_interval > 0:
            self._take_slot(channel, self._deferrable)
        last = self._last_post.get(channel)
        if last is not None:
            wait = self.min_interval - (self.clock() - last)
            if wait > 0:
                self.sleep(wait)
        response = self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread,
            unfurl_links=False,
            unfurl_media=False,
        )
        posted_at = self._last_post[channel] = self.clock()
        self._next_free[channel] = max(
            self._next_free.get(channel, posted_at), posted_at + self.min_interval
        )
        return Posted(str(response["channel"]), str(response["ts"]))

    # Successive updates of one incident go out as one update and one report post.
    runs = frozenset({effects.INCIDENT_UPDATE})

    def group_keys(self, due: Sequence[Effect]) -> list[str | None]:
        """Cards that open a conversation in the same channel may share one message (a later
        card goes into its conversation's thread, on its own); successive updates of one
        incident go out as one."""
        # The payload's fields as stored (`interaction_to_json`): no parsing of whole cards.
        cards = {e.id: e.payload for e in due if e.kind == effects.CARD and e.payload["decision"]}
        subjects = {i: f"conversation:{card['conversation_id']}" for i, card in cards.items()}
        placed = self.places.placed(list(subjects.values()))
        keys: list[str | None] = []
        for effect in due:
            if effect.kind == effects.INCIDENT_UPDATE:
                keys.append(f"incident:{effect.payload['incident']['id']}")
            elif effect.id in cards and subjects[effect.id] not in placed:
                keys.append(self._card_channel(cards[effect.id]))
            else:
                keys.append(None)
        return keys

    def deliver_group(self, group: Sequence[Effect]) -> int:
        """Deliver the leading effects of ``group`` (see `group_keys`) as one: the cards that
        fit in one message as that message, or an incident's updates as one; return how many."""
        self._deferrable = None
        with _slack_errors():
            if group[0].kind == effects.INCIDENT_UPDATE:
                return self._incident_updates([effect.payload for effect in group])
            channel = self._card_channel(group[0].payload)
            # Parsed as they fit in the message, not a whole backlog's worth each second.
            return self._open(channel, (interaction_from_json(effect.payload) for effect in group))

    def _open(self, channel: str, cards: Iterable[Interaction]) -> int:
        """Open conversations with their first cards in one message. Waits for the channel's
        second as a whole (`RetryLater` until then), so cards that come meanwhile join it."""
        wait = self._wait(channel)
        if wait > _EARLY:
            raise RetryLater(f"channel {channel} paced", wait)
        text, blocks, held = card_group(cards)
        self._deferrable = None  # no second of its own: it waited above
        posted = self._post(channel, text, blocks)
        self.places.remember({_subject(card): card.id for card in held}, posted, text, blocks)
        return len(held)

    def _wait(self, channel: str) -> float:
        last = self._last_post.get(channel)
        return 0.0 if last is None else last + self.min_interval - self.clock()

    def _card(self, payload: dict[str, Any]) -> None:
        card = interaction_from_json(payload)
        place = self.places.find(_subject(card))
        if place is None:
            assert card.decision is not None  # noqa: S101 - cards are made for judged mentions
            self._open(self._channel(card.decision.channel), [card])
            return
        text, blocks = card_blocks(card, follows=place.card_id)
        posted = self._post(place.channel, text, blocks, thread=place.ts)
        self.places.remember({}, posted, text, blocks)

    def _incident(self, payload: dict[str, Any]) -> None:
        incident = incident_from_json(payload["incident"])
        subject = f"incident:{incident.id}"
        if self.places.find(subject) is not None:
            return  # posted before a crash kept the outbox from hearing it
        first = interaction_from_json(payload["interaction"])
        text, blocks = incident_blocks(incident, first)
        posted = self._post(self._channel(incident.channel), text, blocks)
        self.places.remember({subject: first.id}, posted, text, blocks)

    def _incident_updates(self, payloads: Sequence[dict[str, Any]]) -> int:
        """Bring an incident's card up to its latest update and post the reports since in its
        thread, one post for them all (up to 50); return how many updates that was. Waits for
        the channel's second before either (`RetryLater` until then), so that waiting never
        repeats the card update."""
        held = payloads[:MESSAGE_BLOCKS]
        incident = incident_from_json(held[-1]["incident"])
        place = self.places.find(f"incident:{incident.id}")
        if place is None:
            raise RetryLater(f"incident {incident.id} has no card yet")
        wait = self._wait(place.channel)
        if wait > _EARLY:
            raise RetryLater(f"channel {place.channel} paced", wait)
        reports = [interaction_from_json(payload["interaction"]) for payload in held]
        text, blocks = incident_blocks(incident, reports[-1])
        self.client.chat_update(channel=place.channel, ts=place.ts, text=text, blocks=blocks)
        self.places.show(place, text, blocks)
        report_text, report = report_blocks(reports)
        self._post(place.channel, report_text, report, thread=place.ts)
        return len(held)

    def _card_status(self, payload: dict[str, Any]) -> None:
        """Show the status on the card (a full card or a row), and only on it when its message
        holds others."""
        card = interaction_from_json(payload["card"])
        message = Posted(str(payload["channel"]), str(payload["ts"]))
        place = self.places.find(_subject(card))
        follows = place.card_id if place is not None and place.card_id != card.id else None
        text, blocks = card_update(
            self.places.shown(message), card, str(payload["status"]), follows=follows
        )
        self.client.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=blocks)
        self.places.show(message, text, blocks)

    def _reply_failed(self, payload: dict[str, Any]) -> None:
        """In the thread of the card the reply was sent from."""
        place = self.places.find(str(payload["subject"]))
        if place is None:
            raise DeliveryRejected(f"no card in Slack for {payload['subject']}")
        self._post(place.channel, reply_failed_text(payload), None, thread=place.ts)

    def _escalation(self, payload: dict[str, Any]) -> None:
        text = escalation_text(payload)
        place = self.places.find(str(payload["subject"]))
        if place is not None:
            self._post(place.channel, text, None, thread=place.ts)
        if payload["action"] == "notify" or place is None:
            target = self._channel(
                str(payload["target"] if payload["action"] == "notify" else payload["channel"])
            )
            link = ""
            if place is not None:
                permalink = self.client.chat_getPermalink(
                    channel=place.channel, message_ts=place.ts
                )
                link = f" <{permalink['permalink']}|card>"
            self._post(target, text + link, None)


@contextmanager
def _slack_errors() -> Iterator[None]:
    """slack_sdk's errors as the outbox's: retry later, or fail for good."""
    try:
        yield
    except SlackApiError as exc:
        raise _failure(exc) from None
    except (SlackClientError, OSError) as exc:  # network errors, timeouts
        raise RetryLater(f"Slack unreachable: {type(exc).__name__}") from None


def _subject(card: Interaction) -> str:
    return f"conversation:{card.conversation_id}"


def _failure(exc: SlackApiError) -> RetryLater | DeliveryRejected:
    response = exc.response
    error = str(response.get("error", "unknown_error")) if response is not None else "no response"
    status = response.status_code if response is not None else 0
    if status == 429 or error == "ratelimited":
        after = response.headers.get("Retry-After") if response is not None else None
        return RetryLater("Slack rate limit", float(after) if after else None)
    if error in _PERMANENT:
        return DeliveryRejected(f"Slack refused the message: {error}")
    return RetryLater(f"Slack answered {status} {error}")
