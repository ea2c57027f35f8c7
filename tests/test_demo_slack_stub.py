"""`earful demo --slack-stub` as a user runs it: cards through the Slack surface to the stub."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, func, select

from storage.schema import OutboxRow, SlackMessage

Earful = Callable[..., subprocess.CompletedProcess[str]]  # the `earful` fixture (conftest)
ROW = re.compile(r"^│ (#\S+)\s+│ (C0\w+)\s+│\s+(\d+) │\s+(\d+) │\s+(\d+) │\s+(\d+) │$")


def test_demo_with_the_slack_stub_shows_what_slack_received(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Posts the demo's cards to the stub and prints per channel the cards, thread replies and
    updates it received, which match the database's delivered effects and card places, and
    one card's Block Kit, with no token in the output."""
    result = earful("demo", "--slack-stub", env=env)
    assert result.returncode == 0, result.stderr
    assert "the database matches the run" in result.stdout
    rows = {
        m[1]: (m[2], int(m[3]), int(m[4]), int(m[5]), int(m[6]))
        for m in map(ROW.match, result.stdout.splitlines())
        if m
    }
    assert {"#care", "#incidents", "#earful-noise"} <= set(rows)
    messages, cards, replies, updates = (sum(r[i] for r in rows.values()) for i in range(1, 5))
    assert f"│ all │ │ {messages} │ {cards} │ {replies} │ {updates} │" in re.sub(
        r" +", " ", result.stdout
    )
    # The demo's cards all come at once: each channel's go out several to a message.
    assert messages < cards

    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'demo.db'}")
    with engine.connect() as conn:
        kinds = Counter(
            dict(
                conn.execute(
                    select(OutboxRow.kind, func.count())
                    .where(OutboxRow.state == "delivered")
                    .group_by(OutboxRow.kind)
                ).all()
            )
        )
        places = Counter(conn.execute(select(SlackMessage.channel)).scalars())
    engine.dispose()
    # Every card, incident card and incident report is delivered once; the first of each
    # conversation or incident is a card in its channel, the rest go into its thread.
    assert cards + replies == kinds["card"] + kinds["incident"] + kinds["incident_update"]
    assert updates == kinds["incident_update"]
    assert {channel_id: n for channel_id, _, n, _, _ in rows.values() if n} == dict(places)
    assert cards < kinds["card"] + kinds["incident"]  # the sample has threads

    shown = result.stdout[result.stdout.index("(Block Kit JSON):") :]
    card = json.loads(shown[shown.index("{") : shown.index("\n}\n") + 2])
    assert card["channel"] in {r[0] for r in rows.values()}
    assert card["blocks"][-1]["type"] == "actions"
    assert "xoxb" not in result.stdout + result.stderr
