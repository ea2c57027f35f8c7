"""The `earful` command as a user runs it: real subprocesses, real databases."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from storage.database import normalise_url
from storage.schema import InteractionRow, Job, OutboxRow

FIXTURES = Path(__file__).parent / "fixtures"
Earful = Callable[..., subprocess.CompletedProcess[str]]  # the `earful` fixture (conftest)


def test_demo_runs_and_its_counts_match_the_database(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Runs the bundled demo on the embedded default and ends with counts that match `status`."""
    result = earful("demo", env=env)
    assert result.returncode == 0, result.stderr
    assert "the database matches the run" in result.stdout
    assert "Maya Okafor" in result.stdout
    assert "#care-priority" in result.stdout
    assert "#sales" in result.stdout
    demo_db = f"sqlite:///{tmp_path / 'data' / 'demo.db'}"
    status = earful("status", "--json", "--database", demo_db, env=env)
    counts = json.loads(status.stdout)
    assert counts["mentions"] == counts["interactions"]["inbound"] > 150
    assert counts["interactions"]["outbound"] >= 5
    assert counts["outbox_pending"] == 0
    assert f"{counts['mentions']} mentions stored and routed" in result.stdout.replace("\n", " ")
    assert counts["incidents_open"] >= 1
    # The sample is weeks old: every conversation still waiting for an answer is overdue.
    listed = earful("sla", "list", "--json", "--database", demo_db, env=env)
    timers = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(timers) == counts["sla_pending"] == counts["sla_overdue"] > 10
    assert {t["subject"].split(":")[0] for t in timers} == {"conversation", "incident"}
    check = earful("sla", "check", "--database", demo_db, env=env)
    assert check.returncode == 0, check.stderr
    ran = re.search(r"(\d+) escalation step\(s\) ran; (\d+) delivered", check.stdout)
    assert ran is not None
    assert int(ran[1]) == int(ran[2]) >= len(timers)  # every step of every ladder, delivered
    assert "SLA breached" in check.stdout
    again_check = earful("sla", "check", "--database", demo_db, env=env)
    assert "0 escalation step(s) ran" in again_check.stdout  # each step runs once
    again = earful("demo", env=env)  # a second run starts from a fresh demo database
    assert again.returncode == 0
    assert "the database matches the run" in again.stdout


def test_replay_reports_bad_lines_and_stores_the_rest(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Exits 1 naming each bad line, after storing the valid lines around them."""
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(
        b'{"id": "1", "text": "good one", "platform": "x"}\n'
        b"oops\n"
        b'{"id": "2", "text": "\xff\xfe"}\n'
        b'{"id": "3", "text": "good two", "platform": "blog"}\n'
    )
    result = earful("replay", str(dump), "--dry-run", env=env)
    assert result.returncode == 1
    assert "dump.jsonl:2: not valid JSON" in result.stderr
    assert "dump.jsonl:3: not valid UTF-8" in result.stderr
    status = json.loads(earful("status", "--json", env=env).stdout)
    assert status["mentions"] == 2


def test_replay_csv_with_wrong_header(earful: Earful, env: dict[str, str], tmp_path: Path) -> None:
    """Refuses a CSV whose header lacks a required column, in one line, storing nothing."""
    dump = tmp_path / "export.csv"
    dump.write_text("id,message\n1,hello\n")
    result = earful("replay", str(dump), env=env)
    assert result.returncode == 2
    assert "export.csv:1: CSV header lacks 'text'" in result.stderr
    mapped = earful("replay", str(dump), "--map", "text=message", "--dry-run", env=env)
    assert mapped.returncode == 0, mapped.stderr


def test_contacts_import_all_or_nothing(earful: Earful, env: dict[str, str]) -> None:
    """Imports a clean export, and refuses one with bad rows, listing them and importing nothing."""
    bad = earful("contacts", "import", str(FIXTURES / "crm" / "bad_rows.csv"), env=env)
    assert bad.returncode == 1
    assert "bad_rows.csv:4: email 'not-an-email' is not an email address" in bad.stderr
    assert "nothing was imported" in bad.stderr
    assert json.loads(earful("status", "--json", env=env).stdout)["contacts"] == 0
    good = earful("contacts", "import", str(FIXTURES / "crm" / "customers.csv"), env=env)
    assert good.returncode == 0, good.stderr
    assert json.loads(earful("status", "--json", env=env).stdout)["contacts"] == 3


def test_bad_configuration_is_one_line(earful: Earful, env: dict[str, str]) -> None:
    """A bad setting or database URL stops the command with a one-line reason."""
    result = earful("status", env={**env, "EARFUL_BATCH_SIZE": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: setting EARFUL_BATCH_SIZE")
    assert len(result.stderr.strip().splitlines()) == 1
    wrong = earful("status", "--database", "mysql://nobody@localhost/x", env=env)
    assert wrong.returncode == 2
    assert "unsupported database 'mysql'" in wrong.stderr


def _dump(path: Path, count: int) -> set[str]:
    """A dump of ``count`` lines in which about one in ten repeats an earlier id."""
    rng = random.Random(7)
    ids: list[str] = []
    with path.open("w") as out:
        for n in range(count):
            ident = (
                rng.choice(ids)
                if ids and rng.random() < 0.1
                else f"{1_853_000_000_000_000_000 + n}"
            )
            ids.append(ident)
            record = {
                "id": ident,
                "platform": "x",
                "text": f"mention number {n} about @NorthwindMobile",
                "created_at": "2026-11-02T08:00:00Z",
                "conversation_id": str(1_853_000_000_000_000_000 + n // 3),
                "author": {"handle": f"user{n % 500}", "id": str(n % 500), "followers": n},
            }
            out.write(json.dumps(record) + "\n")
    return set(ids)


@pytest.mark.slow
def test_replay_killed_halfway_loses_and_doubles_nothing(
    earful: Earful, database_url: str, env: dict[str, str], tmp_path: Path
) -> None:
    """A replay killed with SIGKILL half-way and run again stores each unique mention exactly once."""
    dump = tmp_path / "big.jsonl"
    unique = _dump(dump, 3000)
    env = {**env, "EARFUL_BATCH_SIZE": "50", "EARFUL_CLASSIFIER": "none"}  # durability, not labels
    assert earful("db", "upgrade", "--database", database_url, env=env).returncode == 0
    engine = create_engine(normalise_url(database_url))

    def stored() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(InteractionRow)) or 0)

    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "replay", str(dump), "--database", database_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while stored() < len(unique) // 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the replay finished before it could be killed"
    at_kill = stored()
    assert 0 < at_kill < len(unique)

    rerun = earful("replay", str(dump), "--database", database_url, env=env)
    assert rerun.returncode == 0, rerun.stderr
    with engine.connect() as conn:
        ids = conn.scalars(select(InteractionRow.external_id)).all()
        jobs = dict(conn.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        effects = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT idempotency_key), sum(CASE WHEN state = 'delivered' THEN 1 ELSE 0 END) FROM outbox"
            )
        ).one()
        per_interaction = conn.scalar(select(func.count(func.distinct(OutboxRow.idempotency_key))))
    engine.dispose()
    assert sorted(ids) == sorted(unique)
    assert jobs == {"done": len(unique)}
    assert tuple(effects) == (len(unique), len(unique), len(unique))
    assert per_interaction == len(unique)


def test_replay_compare_shows_how_other_playbooks_would_route(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Counts the mentions whose channel changes under another playbook set, with an example."""
    from playbooks.loader import bundled_directory

    other = tmp_path / "other"
    other.mkdir()
    for path in bundled_directory().glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        if path.name == "60-sales.yaml":
            text = text.replace('channel: "#sales"', 'channel: "#sales-emea"')
        (other / path.name).write_text(text, encoding="utf-8")
    dump = tmp_path / "dump.jsonl"
    lines = [
        {
            "id": "1",
            "text": "How much is the premium plan? I want to buy it today",
            "platform": "x",
        },
        {
            "id": "2",
            "text": "Is the family plan available in Canada? Looking to upgrade",
            "platform": "x",
        },
        {"id": "3", "text": "my order arrived broken and nobody answers", "platform": "x"},
    ]
    dump.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    result = earful("replay", str(dump), "--dry-run", "--compare", str(other), env=env)
    assert result.returncode == 0, result.stderr
    assert "3 mentions judged by both" in result.stdout
    assert (
        "× respond P3 #sales (sales/buying question)  →  respond P3 #sales-emea "
        "(sales/buying question)\n        e.g. 1: How much is the premium plan?" in result.stdout
    )
    channel_row = re.search(r"│ channel\s+│\s+(\d+) │", result.stdout)
    assert channel_row is not None
    assert int(channel_row.group(1)) >= 1
    again = earful("replay", str(dump), "--dry-run", "--compare", str(other), env=env)
    assert "nothing was compared" in again.stderr  # all stored before: says how to compare


def test_invalid_playbook_stops_start_up_with_file_and_line(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Refuses to start on a bad playbook file, naming the file, the line and the reason."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "10-mine.yaml").write_text(
        "name: mine\nchannel: '#care'\nrules:\n  - name: r\n    when: {intent: [complain]}\n"
        "    then: {action: respond, priority: P2}\n",
        encoding="utf-8",
    )
    result = earful("classify", "--text", "--playbooks", str(bad), env=env, stdin="hello\n")
    assert result.returncode == 2
    assert "10-mine.yaml:5" in result.stderr
    assert "'complain' is not one of" in result.stderr
