"""The Slack Web API stand-in for tests: `handlers.slack_stub` with the tests' tokens, plus
requests signed as Slack signs them (button clicks, slash commands, modal submissions, events).

``slack_standin(channels)`` runs the stub (real HTTP on port 0, Slack's wire format; see
`handlers.slack_stub`), accepting `TOKEN` as the bot token and `APP_TOKEN` as the app-level one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier

from bot import effects
from bot.delivery import Deliverer, Sink
from handlers.slack_stub import Call, SlackState, slack_stub
from handlers.slack_surface import SlackSurface
from storage.database import Database
from storage.slack import SlackPlaces

__all__ = ["APP_TOKEN", "TOKEN", "Call", "SlackState", "slack_standin"]

TOKEN = "xoxb-test-0000-earful"  # noqa: S105 - a test token, searched for in logs
APP_TOKEN = "xapp-1-A0EARFUL-0000-test"  # noqa: S105 - a test app-level token (Socket Mode)


@contextmanager
def slack_standin(channels: dict[str, str]) -> Iterator[tuple[str, SlackState]]:
    """Run the stub; yields its API base URL (for ``WebClient(base_url=…)``) and its state.

    Response URLs for interactive payloads are ``<server>/respond/<anything>``.
    """
    with slack_stub(channels, token=TOKEN, app_token=APP_TOKEN, workspace="earful-test") as running:
        yield running


def signed(
    payload: dict[str, Any], *, secret: str | None, age: float = 0
) -> tuple[str, dict[str, str]]:
    """An interactive payload as Slack sends it: form-encoded body and signed headers.

    ``secret`` None leaves the request unsigned; ``age`` dates it that many seconds back.
    """
    body = urlencode({"payload": json.dumps(payload)})
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if secret is not None:
        timestamp = str(int(time.time() - age))
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        headers |= {"x-slack-request-timestamp": timestamp, "x-slack-signature": str(signature)}
    return body, headers


def signed_action(
    *,
    action: str,
    value: int,
    channel: str,
    ts: str,
    user: str,
    response_url: str,
    secret: str | None,
    age: float = 0,
    menu: bool = False,
) -> tuple[str, dict[str, str]]:
    """A click on a card button (``block_actions``), signed; ``menu``: the same action picked
    in the menu of a card shown as a row."""
    payload = block_actions(
        action=action,
        value=value,
        channel=channel,
        ts=ts,
        user=user,
        response_url=response_url,
        menu=menu,
    )
    return signed(payload, secret=secret, age=age)


def block_actions(
    *,
    action: str,
    value: int,
    channel: str,
    ts: str,
    user: str,
    response_url: str,
    menu: bool = False,
) -> dict[str, Any]:
    """The payload of a click on a card button, or of an option picked in a row's menu
    (``block_actions``), as Slack sends it."""
    clicked: dict[str, Any] = {
        "type": "button",
        "action_id": f"earful.{action}",
        "block_id": f"earful.card.{value}",
        "value": str(value),
        "action_ts": str(time.time()),
    }
    if menu:
        clicked = {
            "type": "static_select",
            "action_id": "earful.act",
            "block_id": f"earful.card.{value}",
            "selected_option": {
                "text": {"type": "plain_text", "text": action, "emoji": True},
                "value": f"{action}:{value}",
            },
            "placeholder": {"type": "plain_text", "text": "Act…", "emoji": True},
            "action_ts": str(time.time()),
        }
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0EARFUL"},
        "api_app_id": "A0EARFUL",
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "channel": {"id": channel},
        "message": {"ts": ts, "type": "message"},
        "trigger_id": "1.2.3",
        "response_url": response_url,
        "actions": [clicked],
    }


def signed_command(
    text: str, *, user: str, response_url: str, secret: str | None, command: str = "/earful"
) -> tuple[str, dict[str, str]]:
    """A slash command as Slack sends it: form-encoded fields, signed."""
    body = urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0EARFUL",
            "team_domain": "earful-test",
            "channel_id": "C0CARE",
            "channel_name": "care",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0EARFUL",
            "response_url": response_url,
            "trigger_id": "7.8.9",
        }
    )
    return _sign(body, "application/x-www-form-urlencoded", secret)


def signed_event(event: dict[str, Any], *, secret: str | None) -> tuple[str, dict[str, str]]:
    """An Events API callback (e.g. ``app_home_opened``) as Slack sends it: JSON, signed."""
    body = json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": "T0EARFUL",
            "api_app_id": "A0EARFUL",
            "type": "event_callback",
            "event_id": "Ev0EARFUL",
            "event_time": int(time.time()),
            "event": event,
        }
    )
    return _sign(body, "application/json", secret)


def _sign(body: str, content_type: str, secret: str | None) -> tuple[str, dict[str, str]]:
    headers = {"content-type": content_type}
    if secret is not None:
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        headers |= {"x-slack-request-timestamp": timestamp, "x-slack-signature": str(signature)}
    return body, headers


def signed_submission(
    view: dict[str, Any],
    values: dict[str, dict[str, Any]],
    *,
    user: str,
    secret: str | None,
) -> tuple[str, dict[str, str]]:
    """The submission of a modal Earful opened (``view_submission``), with the user's input:
    ``values`` maps block id → action id → the text typed, or an element's state as Slack
    reports it (e.g. ``{"type": "static_select", "selected_option": {"value": "spam"}}``)."""
    state = {
        block: {
            action: value
            if isinstance(value, dict)
            else {"type": "plain_text_input", "value": value}
            for action, value in inputs.items()
        }
        for block, inputs in values.items()
    }
    payload = {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0EARFUL"},
        "api_app_id": "A0EARFUL",
        "trigger_id": "4.5.6",
        "view": {**view, "id": "V0REPLY", "state": {"values": state}},
    }
    return signed(payload, secret=secret)


def signed_view_action(
    view: dict[str, Any], *, block: str, action: str, value: str, user: str, secret: str | None
) -> tuple[str, dict[str, str]]:
    """An input inside an open modal dispatching an action (``dispatch_action``, e.g. on each
    character typed): ``block_actions`` from a view, with no response URL, signed."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0EARFUL"},
        "api_app_id": "A0EARFUL",
        "container": {"type": "view", "view_id": "V0REPLY"},
        "trigger_id": "1.2.4",
        "view": {
            **view,
            "id": "V0REPLY",
            "hash": "1767225600.abcdef",
            "state": {"values": {block: {action: {"type": "plain_text_input", "value": value}}}},
        },
        "actions": [
            {
                "type": "plain_text_input",
                "action_id": action,
                "block_id": block,
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
    return signed(payload, secret=secret)


def deliver_cards(database: Database, url: str, extra: dict[str, Sink] | None = None) -> None:
    """Drain the outbox to the stand-in (no pacing), plus any ``extra`` sinks; none may fail."""
    surface = SlackSurface(
        client=WebClient(token=TOKEN, base_url=url), places=SlackPlaces(database), min_interval=0
    )
    sinks: dict[str, Sink] = {kind: surface for kind in effects.TEAM_KINDS} | (extra or {})
    assert Deliverer(database=database, sinks=sinks).drain(max_wait=0).failed == 0
