"""Socket Mode and the app manifest: `earful run` over a real WebSocket, `earful slack manifest`.

The Socket Mode test runs `earful run` as a real process: slack-bolt's aiohttp
`AsyncSocketModeHandler` asks the Web API stand-in (``apps.connections.open``, app-level
token) for a WebSocket URL, connects to the Socket Mode stand-in, and gets a Claim envelope
exactly as Slack sends it; the ack comes back on the socket and the card update reaches the
Web API stand-in through the outbox.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from earful_run import earful_run, free_port, http_status, wait_for
from slack_sdk.web.async_client import AsyncWebClient
from slack_socket_standin import socket_standin
from slack_standin import APP_TOKEN, TOKEN, SlackState, block_actions, slack_standin

from bot.app import build_slack_app, open_database
from bot.config import load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = ROOT / "handlers" / "slack_manifest.yaml"
Earful = Callable[..., subprocess.CompletedProcess[str]]

# Every Web API method Earful's code calls → all the bot scopes it needs (Slack's method
# reference; conversations.info is listed for public channels, private ones add groups:read).
# "app" marks a method called with the app-level token, whose scope is not a bot scope. A call
# that is missing here fails the scope test: add it with its scope from api.slack.com/methods.
SCOPES: dict[str, tuple[str, ...]] = {
    "apps.connections.open": ("app",),  # connections:write, on the app-level token
    "auth.test": (),
    "chat.delete": ("chat:write",),
    "chat.getPermalink": (),
    "chat.postEphemeral": ("chat:write",),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "conversations.info": ("channels:read",),
    "conversations.join": ("channels:join",),
    "conversations.open": ("im:write",),
    "files.completeUploadExternal": ("files:write",),
    "files.getUploadURLExternal": ("files:write",),
    "reactions.add": ("reactions:write",),
    "usergroups.users.list": ("usergroups:read",),
    "users.info": ("users:read",),
    "users.lookupByEmail": ("users:read", "users:read.email"),
    "views.open": (),
    "views.publish": (),
    "views.push": (),
    "views.update": (),
}
# What a manifest entry itself needs: a slash command needs `commands`; app_home_opened none.
COMMAND_SCOPE = "commands"
EVENT_SCOPES: dict[str, tuple[str, ...]] = {"app_home_opened": ()}
# slack_sdk's method names: chat_postMessage → chat.postMessage.
_FAMILIES = (
    "apps|auth|bookmarks|bots|chat|conversations|dnd|emoji|files|pins|reactions|reminders|"
    "search|stars|team|usergroups|users|views"
)
_CALL = re.compile(rf"\.((?:{_FAMILIES})_[A-Za-z_0-9]+)\(")
_API_CALL = re.compile(r"api_call\(\s*[\"']([a-zA-Z.]+)[\"']")
# Kinds of bolt listener that Slack reaches through interactivity (no manifest entry needed
# beyond interactivity being on).
_INTERACTIVE = {"action", "block_action", "view_submission", "view_closed", "block_suggestion"}


def _manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return loaded


def test_run_takes_a_claim_over_socket_mode(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """With an app-level token and no signing secret, `earful run` takes a Claim over the
    socket, acks its envelope, updates the card, mounts no HTTP route for Slack, and closes
    the socket on SIGTERM."""
    database = tmp_path / "socket.db"
    with (
        slack_standin({"#earful-triage": "C0TRIAGE"}) as (api, state),
        socket_standin() as sockets,
    ):
        state.socket_url = sockets.url
        env = {
            **env,
            "EARFUL_DATABASE_URL": f"sqlite:///{database}",
            "EARFUL_CLASSIFIER": "none",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_APP_TOKEN": APP_TOKEN,
            "EARFUL_SLACK_AGENTS": "U0AGENT",
            "EARFUL_SLACK_API_URL": api,
        }
        env.pop("EARFUL_SLACK_SIGNING_SECRET", None)
        replayed = earful("replay", str(FIXTURES / "replay" / "thread.jsonl"), env=env)
        assert replayed.returncode == 0, replayed.stderr
        interaction_id = int(state.posts()[0].body["blocks"][-1]["elements"][0]["value"])
        channel, ts = next(key for key, m in state.messages.items() if "thread_ts" not in m)

        with earful_run(env) as run:
            wait_for(lambda: sockets.state.opened == 1, "the Socket Mode connection")
            assert [c.method for c in state.calls].count("apps.connections.open") == 1
            assert http_status(f"{run.base}/slack/events", b"") == 404

            envelope_id = sockets.send(
                "interactive",
                block_actions(
                    action="claim",
                    value=interaction_id,
                    channel=channel,
                    ts=ts,
                    user="U0AGENT",
                    response_url=api.replace("/api/", "/respond/T0/1/abc"),
                ),
            )
            wait_for(lambda: sockets.state.ack(envelope_id) is not None, "the envelope's ack")
            assert sockets.state.ack(envelope_id) == {"envelope_id": envelope_id}

            def card_updated(state: SlackState = state) -> bool:
                return any(
                    c.method == "chat.update"
                    and c.body.get("ts") == ts
                    and "Claimed by <@U0AGENT>" in json.dumps(c.body)
                    for c in state.calls
                )

            wait_for(card_updated, "the card update to reach Slack")
        out, err = run.out, run.err
        assert run.returncode == 0, err
        assert "Slack over Socket Mode" in out
        assert "earful run: stopped" in out
        wait_for(lambda: sockets.state.closed_by_client == 1, "the client to close the socket", 5)
        for secret in (TOKEN, APP_TOKEN):
            assert secret not in out + err


def test_run_refuses_a_token_that_is_not_app_level(earful: Earful, env: dict[str, str]) -> None:
    """A bot token put where the app-level token belongs stops `earful run` with one line
    that names the setting and never repeats the token."""
    env = {
        **env,
        "EARFUL_CLASSIFIER": "none",
        "EARFUL_SLACK_BOT_TOKEN": TOKEN,
        "EARFUL_SLACK_APP_TOKEN": TOKEN,
        "EARFUL_SLACK_AGENTS": "U0AGENT",
    }
    result = earful("run", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "EARFUL_SLACK_APP_TOKEN" in line
    assert "xapp-" in line
    assert "\n" not in line
    assert TOKEN not in result.stdout + result.stderr


def test_run_stops_when_slack_refuses_the_app_token(earful: Earful, env: dict[str, str]) -> None:
    """An app-level token Slack refuses at apps.connections.open stops `earful run` with
    Slack's reason in one line, before anything serves, never echoing the token."""
    wrong = "xapp-1-A0EARFUL-9999-revoked"
    with slack_standin({"#earful-triage": "C0TRIAGE"}) as (api, state):
        env = {
            **env,
            "EARFUL_CLASSIFIER": "none",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_APP_TOKEN": wrong,
            "EARFUL_SLACK_AGENTS": "U0AGENT",
            "EARFUL_SLACK_API_URL": api,
        }
        result = earful("run", "--port", str(free_port()), env=env)
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert "Slack refused EARFUL_SLACK_APP_TOKEN (invalid_auth)" in line
    assert "\n" not in line
    assert "earful run: http" not in result.stdout
    assert wrong not in result.stdout + result.stderr
    assert state.calls == []


def test_manifest_prints_the_socket_mode_app_and_its_http_variant(
    earful: Earful, env: dict[str, str]
) -> None:
    """`earful slack manifest` prints the bundled Socket Mode manifest; `--request-url` gives
    the HTTP-mode one with the URL on events, interactivity and the command; http:// is refused."""
    plain = earful("slack", "manifest", env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == MANIFEST.read_text()
    socket_mode = yaml.safe_load(plain.stdout)
    assert socket_mode["display_information"]["name"] == "Earful"
    assert socket_mode["settings"]["socket_mode_enabled"] is True
    assert socket_mode["settings"]["interactivity"]["is_enabled"] is True
    assert socket_mode["features"]["app_home"]["home_tab_enabled"] is True
    assert "request_url" not in json.dumps(socket_mode)
    (command,) = socket_mode["features"]["slash_commands"]
    assert command["command"] == "/earful"
    assert command["usage_hint"] == "queue | find @handle | assign <card> @user | help"

    url = "https://earful.example.com/slack/events"
    http = earful("slack", "manifest", "--request-url", url, env=env)
    assert http.returncode == 0, http.stderr
    variant = yaml.safe_load(http.stdout)
    assert variant["settings"]["socket_mode_enabled"] is False
    assert variant["settings"]["event_subscriptions"]["request_url"] == url
    assert variant["settings"]["interactivity"]["request_url"] == url
    assert [c["url"] for c in variant["features"]["slash_commands"]] == [url]
    assert variant["oauth_config"] == socket_mode["oauth_config"]

    refused = earful("slack", "manifest", "--request-url", "http://earful.example.com/", env=env)
    assert refused.returncode == 2
    assert "https://" in refused.stderr


def _listeners(app: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, constraints) of each built-in matcher of a bolt app: ("command", {"command": …})."""
    found = []
    for listener in app._async_listeners:
        for matcher in listener.matchers:
            inner = inspect.getclosurevars(matcher.func).nonlocals.get("func")
            if inner is None:
                continue  # a custom matcher narrows a built-in one; the built-in one says what
            kind = inner.__qualname__.split(".", 1)[0]
            found.append((kind, inspect.getclosurevars(inner).nonlocals))
    return found


def test_manifest_lists_every_command_and_event_the_app_listens_to(tmp_path: Path) -> None:
    """The slash commands and events in the manifest are exactly those the bolt app built by
    `earful run` listens to, and interactivity is on for its buttons and modals."""
    settings = load_settings(
        environ={
            "EARFUL_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_APP_TOKEN": APP_TOKEN,
            "EARFUL_SLACK_AGENTS": "U0AGENT",
        }
    )
    database = open_database(settings)
    try:
        app = build_slack_app(settings, database)
    finally:
        database.dispose()
    assert app is not None
    assert isinstance(app.client, AsyncWebClient)
    manifest = _manifest()
    commands = {c["command"] for c in manifest["features"].get("slash_commands", [])}
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    listeners = _listeners(app)
    assert listeners, "the app registers no listener?"
    kinds, listened_commands, listened_events = set(), set(), set()
    for kind, constraints in listeners:
        kinds.add(kind)
        if kind == "command":
            listened_commands.add(constraints["command"])
        elif kind == "event":
            listened_events.add(constraints.get("event_type") or constraints["constraints"]["type"])
        else:
            assert kind in _INTERACTIVE, f"teach this test the manifest entry for {kind}"
    assert listened_commands == commands
    assert listened_events == events
    if kinds & _INTERACTIVE:
        assert manifest["settings"]["interactivity"]["is_enabled"] is True


def _web_api_calls() -> set[str]:
    methods = set()
    for package in ("bot", "handlers", "classifiers", "playbooks", "storage"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            if "slack_sdk" not in source and "slack_bolt" not in source:
                continue  # another platform's client (tweepy's search_recent_tweets …)
            for name in _CALL.findall(source):
                if name == "files_upload_v2":  # slack_sdk's two-step upload
                    methods |= {"files.getUploadURLExternal", "files.completeUploadExternal"}
                else:
                    methods.add(name.replace("_", "."))
            methods.update(_API_CALL.findall(source))
    return methods


def test_manifest_asks_for_exactly_the_scopes_the_code_needs() -> None:
    """The bot scopes in the manifest are exactly those the Web API methods Earful calls,
    its slash commands and its events need: none missing, none spare."""
    called = _web_api_calls()
    assert {"chat.postMessage", "chat.update", "apps.connections.open"} <= called
    unknown = called - SCOPES.keys()
    assert not unknown, f"add these methods and their scopes to SCOPES: {sorted(unknown)}"
    manifest = _manifest()
    needed = {scope for method in called for scope in SCOPES[method] if scope != "app"}
    if manifest["features"].get("slash_commands"):
        needed.add(COMMAND_SCOPE)
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        needed.update(EVENT_SCOPES[event])
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed


@pytest.mark.parametrize("token", ["xoxb-1-2-3", "xoxp-1-2-3", "app-token"])
def test_settings_refuse_other_tokens_as_the_app_token(token: str) -> None:
    """Only an xapp- token is accepted as the app-level token; the error omits the value."""
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"EARFUL_SLACK_APP_TOKEN": token})
    assert "EARFUL_SLACK_APP_TOKEN" in str(refused.value)
    assert token not in str(refused.value)
