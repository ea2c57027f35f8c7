"""Mentions per second for `earful replay --dry-run` of 10,000 mentions, SQLite and PostgreSQL.

Each run replays a generated dump into a fresh database in a new process (so start-up
counts, as it does for a user); the figure is the median of ``--runs`` runs. The classifiers
are switched off (``EARFUL_CLASSIFIER=none``): this measures storage, threading and routing;
`benchmarks/classify.py` measures the models.

    python benchmarks/ingest.py [--count 10000] [--runs 3] [--postgres URL]

PostgreSQL is measured when ``--postgres`` or ``EARFUL_TEST_POSTGRES_URL`` names a server;
each run gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage.database import normalise_url

WORDS = [
    "my",
    "order",
    "is",
    "late",
    "again",
    "where",
    "is",
    "the",
    "driver",
    "refund",
    "please",
    "phone",
    "signal",
    "dropped",
    "calls",
    "love",
    "the",
    "new",
    "bike",
    "battery",
    "died",
    "after",
    "two",
    "weeks",
    "support",
    "never",
    "answers",
    "thinking",
    "of",
    "switching",
    "plan",
    "price",
    "roaming",
    "charges",
    "great",
    "service",
    "thanks",
    "team",
    "app",
    "keeps",
    "crashing",
]


def write_dump(path: Path, count: int, seed: int = 1) -> None:
    """A realistic mix: 2,000 authors, threads of one to four messages, repeated ids."""
    rng = random.Random(seed)
    base = 1_853_000_000_000_000_000
    with path.open("w") as out:
        for n in range(count):
            author = rng.randrange(2000)
            record = {
                "id": str(base + n),
                "platform": rng.choice(["x", "x", "x", "telegram", "blog"]),
                "text": " ".join(rng.choices(WORDS, k=rng.randint(6, 40))),
                "created_at": f"2026-11-0{1 + n * 7 // count}T{n % 24:02d}:{n % 60:02d}:00Z",
                "conversation_id": str(base + n - n % rng.randint(1, 4)),
                "author": {
                    "handle": f"customer_{author}",
                    "name": f"Customer {author}",
                    "id": str(author),
                    "followers": rng.randint(0, 50_000),
                },
            }
            out.write(json.dumps(record) + "\n")


def run_once(dump: Path, database_url: str) -> float:
    """Seconds for one replay in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARFUL_")}
    env["EARFUL_DATA_DIR"] = str(dump.parent / "data")
    env["EARFUL_CLASSIFIER"] = "none"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "replay",
            str(dump),
            "--dry-run",
            "--database",
            database_url,
        ],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"replay failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def measure_sqlite(dump: Path, runs: int) -> list[float]:
    """Each run on a new SQLite file."""
    times = []
    for n in range(runs):
        db = dump.parent / f"bench-{n}.db"
        times.append(run_once(dump, f"sqlite:///{db}"))
    return times


def measure_postgres(dump: Path, runs: int, base_url: str) -> list[float]:
    """Each run in a new schema, migrated first (migration time is not counted)."""
    base = normalise_url(base_url)
    admin = create_engine(base)
    times = []
    for _ in range(runs):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        url_text = url.render_as_string(hide_password=False)
        try:
            subprocess.run(
                [sys.executable, "-m", "bot.cli", "db", "upgrade", "--database", url_text],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times.append(run_once(dump, url_text))
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
    return times


def main() -> None:
    """Print mentions/second per database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("EARFUL_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "mentions.jsonl"
        write_dump(dump, args.count)
        results = {"sqlite": measure_sqlite(dump, args.runs)}
        if args.postgres:
            results["postgresql"] = measure_postgres(dump, args.runs, args.postgres)
        else:
            print("postgresql: not measured (no --postgres URL or EARFUL_TEST_POSTGRES_URL)")
    for name, times in results.items():
        median = statistics.median(times)
        print(
            f"{name:<10} {args.count:,} mentions  median {median:6.2f} s  "
            f"{args.count / median:8,.0f} mentions/s  (runs: {', '.join(f'{t:.2f}' for t in times)})"
        )


if __name__ == "__main__":
    main()
