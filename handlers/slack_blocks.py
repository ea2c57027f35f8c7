"""Block Kit for Earful's Slack cards and forms: pure functions from the domain to Slack's JSON.

A card shows the author (handle, influence, customer tier and value), the text with a link to
the source, the labels, priority and SLA due time, the reasons, the suggested replies and the
buttons agents act with. Every button's ``value`` is the interaction id, so the action handler
finds the mention whatever happened to the message since. The forms (modals) behind Dismiss,
Escalate, Snooze and Correct labels carry the card's place in ``private_metadata``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.console import contact_label, label_parts
from bot.effects import step_label
from bot.models import Incident, Interaction, Platform
from bot.workbench import Draft, slack_mention

Block = dict[str, Any]
# Slack's limits: section text 3,000 characters, a message 50 blocks, a button value 2,000.
_SECTION_LIMIT = 3000
ACTION_PREFIX = "earful."
_CARD_HEAD = re.compile(r"earful\.card\.\d+")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75], "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:_SECTION_LIMIT]}


def _date(at: datetime) -> str:
    """A time each reader sees in their own zone (UTC as the fallback text)."""
    return f"<!date^{int(at.timestamp())}^{{date_short}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def escape(text: str) -> str:
    """Slack's three control characters, so customer text can never ping or link by itself."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(action: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{ACTION_PREFIX}{action}",
        "text": _plain(label),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _who(card: Interaction) -> str:
    mention = card.mention
    author = mention.author
    parts = [f"*{escape(author.label)}*"]
    if author.display_name and author.handle:
        parts.append(escape(author.display_name))
    classification = card.classification
    if classification and classification.influence:
        influence = classification.influence
        score = f" {influence.score}" if influence.score is not None else ""
        parts.append(f"influence {influence.tier}{score}")
    if classification and classification.value:
        value = classification.value
        score = f" {value.score}" if value.score is not None else ""
        parts.append(f"value {value.tier}{score}")
    label = contact_label(card.contact)
    if label:
        parts.append(escape(label))
    return " · ".join(parts)


def _labels(card: Interaction, follows: int | None = None) -> str:
    """The card's number (for `/earful assign`), the card it follows in a thread, and its
    labels."""
    number = f"#{card.id}" + (f" (follows #{follows})" if follows is not None else "")
    if card.classification is None:
        return f"{number} · unclassified"
    parts = label_parts(
        card.classification, flag=":warning:", warn=":chart_with_downwards_trend:", people=False
    )
    return escape(" · ".join([number, *parts]))


def _decision(card: Interaction) -> str:
    decision = card.decision
    if decision is None or decision.action is None:
        return "*Not judged*: triage it"
    line = f"*{decision.action.value} {decision.priority.value if decision.priority else ''}*"
    if decision.respond_by is not None:
        line += f" · reply by {_date(decision.respond_by)}"
    if decision.playbook:
        line += f" · {escape(decision.playbook)}/{escape(decision.rule or '')}"
    return line


def _card_id(card_id: int, part: str | None = None) -> str:
    """Block ids of a card: ``earful.card.<id>`` for its buttons, ``earful.card.<id>.<part>``."""
    return f"earful.card.{card_id}" + (f".{part}" if part else "")


def card_blocks(
    card: Interaction, *, status: str | None = None, follows: int | None = None
) -> tuple[str, list[Block]]:
    """The fallback text and the blocks of a mention's card (at most 6 blocks).

    ``status`` is Earful's own mrkdwn (e.g. ``Claimed by <@U123>``), shown as it is. Every block
    id starts with the card's, so one card of a message holding several can be replaced.
    ``follows``: for a card in a thread, the card that opened its conversation there (a
    message may hold several conversations' cards, sharing one thread).
    """
    mention = card.mention
    text = escape(mention.text if len(mention.text) <= 2200 else mention.text[:2200] + "…")
    link = f"\n<{mention.url}|Open on {mention.platform.value}>" if mention.url else ""
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": _card_id(card.id, "mention"),
            "text": _mrkdwn(f"{_decision(card)}\n{_who(card)}\n{text}{link}"),
        },
        {
            "type": "context",
            "block_id": _card_id(card.id, "labels"),
            "elements": [_mrkdwn(_labels(card, follows))],
        },
    ]
    decision = card.decision
    why = []
    if decision is not None and decision.reasons:
        why += [
            f"• {escape(r.factor)}: {escape(r.value)} — {escape(r.effect)}"
            for r in decision.reasons
        ]
    if decision is not None and decision.escalation:
        why.append("Escalation: " + " → ".join(escape(step_label(s)) for s in decision.escalation))
    if why:
        blocks.append(
            {
                "type": "context",
                "block_id": _card_id(card.id, "why"),
                "elements": [_mrkdwn("\n".join(why))],
            }
        )
    value = str(card.id)
    if card.suggestions:
        lines = [f"*{n}.* {escape(s.text)}" for n, s in enumerate(card.suggestions, start=1)]
        blocks.append(
            {
                "type": "section",
                "block_id": _card_id(card.id, "suggestions"),
                "text": _mrkdwn("\n".join(lines)),
            }
        )
    if status:
        blocks.append(
            {
                "type": "context",
                "block_id": _card_id(card.id, "status"),
                "elements": [_mrkdwn(f"*{status}*")],
            }
        )
    sends = [
        _button(f"send_suggestion_{n}", f"Send {n}", value)
        for n in range(1, len(card.suggestions) + 1)
    ]
    blocks.append(
        {
            "type": "actions",
            "block_id": _card_id(card.id),
            "elements": [
                _button("claim", "Claim", value, "primary"),
                _button("reply", "Reply…", value),
                *sends,
                _button("escalate", "Escalate…", value),
                _button("snooze", "Snooze…", value),
                _button("dismiss", "Dismiss…", value, "danger"),
                _button("resolve", "Resolve", value),
                _button("correct", "Correct labels…", value),
            ],
        }
    )
    author = mention.author.label
    priority = decision.priority.value if decision and decision.priority else "untriaged"
    fallback = f"{priority} · {author}: {mention.text[:150]}"
    return fallback, blocks


# Slack shows at most 50 blocks in a message.
MESSAGE_BLOCKS = 50
# A card as a row (see `card_row`) takes two blocks.
ROW_BLOCKS = 2
# The action id of a row's menu; each option's value is ``<action>:<interaction id>``.
ROW_ACTION = "act"
_ROW_TEXT = 280


def card_group(cards: Iterable[Interaction]) -> tuple[str, list[Block], list[Interaction]]:
    """One message for the leading cards of a channel that fit in it (at least one); returns
    its fallback text, its blocks and the cards it holds.

    Used when a channel receives cards faster than Slack's one post per second. When they all
    fit in Slack's 50 blocks as full cards, each keeps its own blocks and buttons, with a
    divider between cards. When they do not, the message shows up to 25 cards as rows
    (`card_row`), so that a channel keeps up with 25 new conversations a second instead of 8.
    """
    queue = iter(cards)
    texts: list[str] = []
    blocks: list[Block] = []
    held: list[Interaction] = []
    for card in queue:
        text, own = card_blocks(card)
        divider = [{"type": "divider", "block_id": _card_id(card.id, "divider")}] if blocks else []
        if blocks and len(blocks) + len(divider) + len(own) > MESSAGE_BLOCKS:
            return _rows(itertools.chain(held, [card], queue))
        blocks += divider + own
        texts.append(text)
        held.append(card)
    return _group_text(texts), blocks, held


def _rows(cards: Iterable[Interaction]) -> tuple[str, list[Block], list[Interaction]]:
    texts: list[str] = []
    blocks: list[Block] = []
    held = list(itertools.islice(cards, MESSAGE_BLOCKS // ROW_BLOCKS))
    for card in held:
        text, own = card_row(card)
        texts.append(text)
        blocks += own
    return _group_text(texts), blocks, held


def _group_text(texts: Sequence[str]) -> str:
    if len(texts) == 1:
        return texts[0]
    return f"{len(texts)} new mentions: " + " | ".join(texts)[:2900]


def card_row(card: Interaction, *, status: str | None = None) -> tuple[str, list[Block]]:
    """A card as a row of a busy channel's message: two blocks instead of up to six.

    The first block shows the decision, the author and the text (cut to 280 characters) with
    a link to the source, and carries a menu with every action of the card's buttons (its
    block id is the card's, like the buttons' block of a full card). The second shows the
    card's number, the labels, the reasons in short and ``status``. The suggested replies are
    offered in the menu and shown in full in the reply form.
    """
    mention = card.mention
    excerpt = mention.text if len(mention.text) <= _ROW_TEXT else mention.text[:_ROW_TEXT] + "…"
    link = f" <{mention.url}|source>" if mention.url else ""
    value = str(card.id)
    options = [
        ("claim", "Claim"),
        ("reply", "Reply…"),
        *(
            (f"send_suggestion_{n}", f"Send {n}: {s.text}")
            for n, s in enumerate(card.suggestions, start=1)
        ),
        ("escalate", "Escalate…"),
        ("snooze", "Snooze…"),
        ("dismiss", "Dismiss…"),
        ("resolve", "Resolve"),
        ("correct", "Correct labels…"),
    ]
    notes = [_labels(card)]
    decision = card.decision
    if decision is not None and decision.reasons:
        notes.append("why: " + escape("; ".join(f"{r.factor} {r.value}" for r in decision.reasons)))
    if status:
        notes.append(f"*{status}*")
    blocks: list[Block] = [
        {
            "type": "section",
            "block_id": _card_id(card.id),
            "text": _mrkdwn(f"{_decision(card)}\n{_who(card)}\n{escape(excerpt)}{link}"),
            "accessory": {
                "type": "static_select",
                "action_id": f"{ACTION_PREFIX}{ROW_ACTION}",
                "placeholder": _plain("Act…"),
                "options": [_option(f"{action}:{value}", label) for action, label in options],
            },
        },
        {
            "type": "context",
            "block_id": _card_id(card.id, "labels"),
            "elements": [_mrkdwn("\n".join(notes))],
        },
    ]
    author = mention.author.label
    priority = decision.priority.value if decision and decision.priority else "untriaged"
    return f"{priority} · {author}: {mention.text[:150]}", blocks


def is_row(blocks: Sequence[Block], card_id: int) -> bool:
    """Whether a message shows card ``card_id`` as a row (`card_row`)."""
    return any(
        block.get("block_id") == _card_id(card_id) and block.get("type") == "section"
        for block in blocks
    )


def card_update(
    shown: tuple[str, Sequence[Block]] | None,
    card: Interaction,
    status: str,
    *,
    follows: int | None = None,
) -> tuple[str, list[Block]]:
    """The text and blocks of a message after ``card`` takes ``status``: in the form it is
    shown in (a full card, or a row), and only that card changed when the message holds
    others. ``shown`` is what the message shows now (None when unknown: the card alone);
    ``follows`` as for `card_blocks`."""
    row = shown is not None and is_row(shown[1], card.id)
    text, own = (
        card_row(card, status=status) if row else card_blocks(card, status=status, follows=follows)
    )
    if shown is None or only_card(shown[1], card.id):
        return text, own
    return shown[0], replace_card(shown[1], card.id, own)


def card_heads(blocks: Sequence[Block]) -> list[Block]:
    """The block of each card in a message, in order: a full card's buttons, or a row with its
    menu (block id ``earful.card.<id>``)."""
    return [block for block in blocks if _CARD_HEAD.fullmatch(str(block.get("block_id", "")))]


def _of_card(block: Block, card_id: int) -> bool:
    """Whether the block is one of the card's own (its divider in a group aside)."""
    prefix = _card_id(card_id)
    block_id = str(block.get("block_id", ""))
    return block_id != _card_id(card_id, "divider") and (
        block_id == prefix or block_id.startswith(prefix + ".")
    )


def card_in(blocks: Sequence[Block], card_id: int) -> list[Block]:
    """The blocks of card ``card_id`` in a message (none if it does not hold the card)."""
    return [block for block in blocks if _of_card(block, card_id)]


def only_card(blocks: Sequence[Block], card_id: int) -> bool:
    """Whether a message shows the card and nothing else."""
    return all(_of_card(block, card_id) for block in blocks)


def replace_card(blocks: Sequence[Block], card_id: int, own: Sequence[Block]) -> list[Block]:
    """``blocks`` with the blocks of card ``card_id`` (its divider aside) replaced by ``own``."""
    first = next((i for i, block in enumerate(blocks) if _of_card(block, card_id)), None)
    if first is None:
        return list(own)  # a message posted before cards had block ids: the card alone
    kept = [block for block in blocks if not _of_card(block, card_id)]
    return [*kept[:first], *own, *kept[first:]]


def incident_blocks(incident: Incident, first: Interaction) -> tuple[str, list[Block]]:
    """The incident card: what it is, how many reports, and its first report as a card."""
    priority = incident.priority.value if incident.priority else ""
    head = (
        f":rotating_light: *Incident #{incident.id}* {priority} · {escape(incident.key)} · "
        f"*{incident.reports}* report{'s' if incident.reports != 1 else ''} since "
        f"{_date(incident.opened_at)}"
    )
    fallback, blocks = card_blocks(first)
    return f"Incident #{incident.id}: {fallback}", [
        {"type": "section", "text": _mrkdwn(head)},
        {"type": "divider"},
        *blocks,
    ]


def report_blocks(cards: Sequence[Interaction]) -> tuple[str, list[Block]]:
    """Later messages of a conversation, or reports of an incident, posted in the thread: one
    block each (cut shorter when there are several)."""
    limit = 2500 if len(cards) == 1 else 500
    blocks: list[Block] = []
    for card in cards:
        mention = card.mention
        link = f" <{mention.url}|source>" if mention.url else ""
        text = f"{_who(card)}\n{escape(mention.text[:limit])}{link}\n{_labels(card)}"
        blocks.append({"type": "section", "text": _mrkdwn(text)})
    texts = [f"{card.mention.author.label}: {card.mention.text[:150]}" for card in cards]
    if len(texts) == 1:
        return texts[0], blocks
    return f"{len(texts)} more reports: " + " | ".join(texts)[:2900], blocks


def escalation_text(payload: dict[str, Any]) -> str:
    """An escalation step as a Slack message (``mention`` targets are pinged by name)."""
    if payload.get("by"):
        return _by_hand_text(payload)
    overdue = int(payload["overdue_seconds"]) // 60
    target = str(payload["target"])
    ping = f"{target} " if payload["action"] in ("mention", "page") else ""
    return (
        f":alarm_clock: {ping}SLA breached {overdue} min ago: {payload['priority']} "
        f"({payload['playbook']}), step {payload['step']}/{payload['steps']}: "
        f"{payload['action']} {target}"
    )


def reply_failed_text(payload: dict[str, Any]) -> str:
    """A reply that failed for good, in the conversation's thread: who sent it (pinged), where,
    why, and its text, so that they can check the customer has an answer."""
    who = slack_mention(payload.get("agent")) or "The agent"
    platform = escape(str(payload.get("platform") or "its platform"))
    text = "\n".join(f">{line}" for line in escape(str(payload.get("text") or "")).splitlines())
    return (
        f":warning: {who}, your reply did not go out on {platform} as sent, and Earful will not "
        f"send it again: {escape(str(payload.get('reason') or 'no reason given'))}. Check that "
        f"the customer has an answer.\n{text}"
    )


def _by_hand_text(payload: dict[str, Any]) -> str:
    """An escalation an agent asked for: a step of the ladder, or a person they picked."""
    by, target = payload["by"], str(payload["target"])
    if payload.get("step") is None:
        return f":arrow_up: {target}: <@{by}> brings you in on this conversation"
    ping = f"{target} " if payload["action"] in ("mention", "page") else ""
    return (
        f":arrow_up: {ping}Escalated by <@{by}>: step {payload['step']}/{payload['steps']}: "
        f"{payload['action']} {target}"
    )


# The forms behind the card's buttons: callback ids, and the block and action ids of their
# fields (Slack reports a submission's values by block id, then action id).
DISMISS_MODAL = "earful.dismiss_modal"
ESCALATE_MODAL = "earful.escalate_modal"
SNOOZE_MODAL = "earful.snooze_modal"
CORRECT_MODAL = "earful.correct_modal"
REPLY_MODAL = "earful.reply_modal"
REPLY_BLOCK = "reply"
REPLY_INPUT = "text"
COUNTER_BLOCK = "counter"
CHOICE = "choice"
NOTE = "note"
STEP = "step"
PERSON = "person"


def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": _plain(label), "value": value}


def _select(
    block: str,
    label: str,
    options: Sequence[tuple[str, str]],
    *,
    initial: str | None = None,
    optional: bool = False,
) -> Block:
    """An input block with a static select (``options``: value, label)."""
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": CHOICE,
        "placeholder": _plain("Choose…"),
        "options": [_option(value, text) for value, text in options],
    }
    chosen = [o for o in element["options"] if o["value"] == initial]
    if chosen:
        element["initial_option"] = chosen[0]
    return {
        "type": "input",
        "block_id": block,
        "optional": optional,
        "label": _plain(label),
        "element": element,
    }


def _note(label: str) -> Block:
    return {
        "type": "input",
        "block_id": NOTE,
        "optional": True,
        "label": _plain(label),
        "element": {
            "type": "plain_text_input",
            "action_id": NOTE,
            "multiline": True,
            "max_length": 500,
        },
    }


def _modal(
    callback: str, title: str, submit: str, metadata: dict[str, Any], blocks: list[Block]
) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback,
        "private_metadata": json.dumps(metadata),
        "title": _plain(title[:24]),
        "submit": _plain(submit),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def dismiss_modal(reasons: Mapping[str, str], metadata: dict[str, Any]) -> dict[str, Any]:
    """Dismiss: a reason (``reasons``: code → label) and an optional note."""
    return _modal(
        DISMISS_MODAL,
        "Dismiss",
        "Dismiss",
        metadata,
        [_select(CHOICE, "Why", list(reasons.items())), _note("Note (optional)")],
    )


def escalate_modal(
    steps: Sequence[str], next_step: int | None, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Escalate: a step of the conversation's ladder (``steps``: labels in order; ``next_step``:
    the index the SLA timer runs next) to run now, and/or a person to bring in."""
    blocks: list[Block] = []
    if steps:
        options = [
            (str(number), f"{number}. {label}" + (" (next)" if number - 1 == next_step else ""))
            for number, label in enumerate(steps, start=1)
        ]
        blocks.append(_select(STEP, "Run a step of the playbook now", options, optional=True))
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(
                        "A step run now counts as run: the SLA timer will not repeat it and "
                        "moves on to the step after it."
                    )
                ],
            }
        )
    else:
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn("This conversation's playbook lists no escalation steps.")],
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": PERSON,
            "optional": True,
            "label": _plain("Bring in a person (mentioned in the card's thread)"),
            "element": {
                "type": "users_select",
                "action_id": PERSON,
                "placeholder": _plain("Choose a person…"),
            },
        }
    )
    return _modal(ESCALATE_MODAL, "Escalate", "Escalate", metadata, blocks)


def snooze_modal(choices: Mapping[str, str], metadata: dict[str, Any]) -> dict[str, Any]:
    """Snooze: how long the next escalation waits (``choices``: value → label)."""
    return _modal(
        SNOOZE_MODAL,
        "Snooze",
        "Snooze",
        metadata,
        [
            _select(CHOICE, "Hold escalation until", list(choices.items())),
            {
                "type": "context",
                "elements": [
                    _mrkdwn("Times are UTC. A new message from the customer wakes it early.")
                ],
            },
        ],
    )


def correct_modal(
    current: Mapping[str, str | None],
    choices: Mapping[str, Sequence[str]],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Correct labels: one select per label, set to its current value, and a note."""
    blocks = [
        _select(
            field,
            field.capitalize(),
            [(value, value.replace("_", " ")) for value in options],
            initial=current.get(field),
            optional=True,
        )
        for field, options in choices.items()
    ]
    blocks.append(_note("Note (optional): what the models missed"))
    return _modal(CORRECT_MODAL, "Correct labels", "Save", metadata, blocks)


def reply_modal(draft: Draft, metadata: dict[str, Any]) -> dict[str, Any]:
    """The reply form: the customer's words, the editable reply, the platform's limit."""
    limit = f"up to {draft.limit} characters on {draft.platform.value}" if draft.limit else ""
    said = escape(draft.customer_text[:1500])
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": REPLY_INPUT,
        "multiline": True,
        "initial_value": draft.text,
    }
    counter: list[Block] = []
    if draft.limit:
        element["max_length"] = draft.limit
        # Each keystroke reaches the app's typing listener, which updates the counter below.
        element["dispatch_action_config"] = {"trigger_actions_on": ["on_character_entered"]}
        counter.append(length_counter(draft.text, draft.limit, draft.platform))
    blocks: list[Block] = [
        {"type": "context", "elements": [_mrkdwn(f"*{escape(draft.author)}*: {said}")]},
        {
            "type": "input",
            "block_id": REPLY_BLOCK,
            "dispatch_action": draft.limit is not None,
            "label": _plain("Your public reply"),
            "element": element,
            "hint": {
                "type": "plain_text",
                "text": f"Sent publicly under the customer's message, {limit}. "
                "Chat in the card's thread stays inside Slack.",
            },
        },
        *counter,
    ]
    metadata = {**metadata, "platform": draft.platform.value, "limit": draft.limit}
    return _modal(REPLY_MODAL, "Reply", "Send publicly", metadata, blocks)


def length_counter(text: str, limit: int, platform: Platform) -> dict[str, Any]:
    """The line under the reply field: ``123 / 280 characters on x``, a warning when over."""
    count = len(text.strip())
    line = f"{count} / {limit} characters on {platform.value}"
    if count > limit:
        line = f":warning: *{line}*: {count - limit} too many"
    return {
        "type": "context",
        "block_id": COUNTER_BLOCK,
        "elements": [{"type": "mrkdwn", "text": line}],
    }
