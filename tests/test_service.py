"""`earful run` as a user runs it: a real process, real HTTP, the Slack stand-in."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from slack_standin import TOKEN, SlackState, signed_action, slack_standin
from sqlalchemy import create_engine, select

from storage.schema import Conversation

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-signing-secret-run"  # noqa: S105 - a test secret
Earful = Callable[..., subprocess.CompletedProcess[str]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _post(url: str, body: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:  # noqa: S310
            return bool(json.loads(answer.read())["ok"])
    except OSError:
        return False


def test_run_serves_slack_buttons_and_delivers_card_updates(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Cards from a replay; `earful run` then takes a signed Claim, refuses a forged one,
    updates the card in Slack from its delivery job, and stops cleanly on SIGTERM."""
    database = tmp_path / "run.db"
    with slack_standin({"#earful-triage": "C0TRIAGE"}) as (api, state):
        env = {
            **env,
            "EARFUL_DATABASE_URL": f"sqlite:///{database}",
            "EARFUL_CLASSIFIER": "none",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_SIGNING_SECRET": SECRET,
            "EARFUL_SLACK_AGENTS": "U0AGENT",
            "EARFUL_SLACK_API_URL": api,
        }
        replayed = earful("replay", str(FIXTURES / "replay" / "thread.jsonl"), env=env)
        assert replayed.returncode == 0, replayed.stderr
        first = state.posts()[0]
        interaction_id = int(first.body["blocks"][-1]["elements"][0]["value"])
        channel, ts = next(key for key, m in state.messages.items() if "thread_ts" not in m)

        port = _free_port()
        process = subprocess.Popen(  # noqa: S603 - our own command
            [sys.executable, "-m", "bot.cli", "run", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait(lambda: _healthy(port), "the service to answer /healthz")
            events = f"http://127.0.0.1:{port}/slack/events"
            respond = api.replace("/api/", "/respond/T0/1/abc")
            forged = signed_action(
                action="claim",
                value=interaction_id,
                channel=channel,
                ts=ts,
                user="U0AGENT",
                response_url=respond,
                secret="not-the-secret",
            )
            assert _post(events, *forged) == 401
            claim = signed_action(
                action="claim",
                value=interaction_id,
                channel=channel,
                ts=ts,
                user="U0AGENT",
                response_url=respond,
                secret=SECRET,
            )
            assert _post(events, *claim) == 200

            def card_updated(state: SlackState = state) -> bool:
                return any(
                    c.method == "chat.update" and "Claimed by <@U0AGENT>" in json.dumps(c.body)
                    for c in state.calls
                )

            _wait(card_updated, "the card update to reach Slack", timeout=30)
            engine = create_engine(f"sqlite:///{database}")
            with engine.connect() as conn:
                assignees = conn.execute(select(Conversation.assignee)).scalars().all()
            engine.dispose()
            assert "U0AGENT" in assignees
        finally:
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "earful run: stopped" in out
        assert TOKEN not in out + err
        assert SECRET not in out + err


def test_run_refuses_slack_without_a_signing_secret(earful: Earful, env: dict[str, str]) -> None:
    """A bot token alone is not enough to accept Slack's requests: one clear line, exit 2."""
    env = {**env, "EARFUL_SLACK_BOT_TOKEN": TOKEN, "EARFUL_CLASSIFIER": "none"}
    env.pop("EARFUL_SLACK_SIGNING_SECRET", None)
    result = earful("run", "--port", str(_free_port()), env=env)
    assert result.returncode == 2
    assert "EARFUL_SLACK_SIGNING_SECRET" in result.stderr
    assert TOKEN not in result.stderr
    assert os.linesep not in result.stderr.strip()
