"""`earful run` as a user runs it: a real process, real HTTP, the Slack stand-in."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from earful_run import earful_run, free_port, http_status, wait_for
from slack_standin import TOKEN, SlackState, signed_action, slack_standin
from sqlalchemy import create_engine, select

from storage.schema import Conversation

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-signing-secret-run"  # noqa: S105 - a test secret
Earful = Callable[..., subprocess.CompletedProcess[str]]


def test_run_serves_slack_buttons_and_delivers_card_updates(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Cards from a replay; `earful run` then takes a signed Claim, refuses a forged one,
    updates the card in Slack from its delivery job, and stops cleanly on SIGTERM; its DEBUG
    log holds no token, secret or customer text."""
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

        with earful_run({**env, "EARFUL_LOG_LEVEL": "DEBUG"}) as run:
            events = f"{run.base}/slack/events"
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
            assert http_status(events, *forged) == 401
            claim = signed_action(
                action="claim",
                value=interaction_id,
                channel=channel,
                ts=ts,
                user="U0AGENT",
                response_url=respond,
                secret=SECRET,
            )
            assert http_status(events, *claim) == 200

            def card_updated(state: SlackState = state) -> bool:
                return any(
                    c.method == "chat.update" and "Claimed by <@U0AGENT>" in json.dumps(c.body)
                    for c in state.calls
                )

            wait_for(card_updated, "the card update to reach Slack", timeout=30)
            engine = create_engine(f"sqlite:///{database}")
            with engine.connect() as conn:
                assignees = conn.execute(select(Conversation.assignee)).scalars().all()
            engine.dispose()
            assert "U0AGENT" in assignees
        out, err = run.out, run.err
        assert run.returncode == 0, err
        assert "earful run: stopped" in out
        assert TOKEN not in out + err
        assert SECRET not in out + err
        assert "DEBUG" in err  # every logger had its say, and none told a customer's words
        assert "dropped 4 calls" not in out + err


def test_run_refuses_slack_without_a_signing_secret(earful: Earful, env: dict[str, str]) -> None:
    """A bot token alone is not enough to accept Slack's requests: one clear line, exit 2."""
    env = {**env, "EARFUL_SLACK_BOT_TOKEN": TOKEN, "EARFUL_CLASSIFIER": "none"}
    env.pop("EARFUL_SLACK_SIGNING_SECRET", None)
    result = earful("run", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "EARFUL_SLACK_SIGNING_SECRET" in result.stderr
    assert TOKEN not in result.stderr
    assert os.linesep not in result.stderr.strip()
