"""Time from a mention's arrival at `earful run`'s webhook to its card posted in Slack.

Starts the Slack stub (`handlers.slack_stub`) in this process, then `earful run` as a
subprocess on a free port: a fresh SQLite file, the real classifiers (unless ``--classifier
none``), the bundled playbooks, every playbook channel mapped to a stub channel, the signed
webhook as its only source. Once ``/healthz`` answers and one warm-up mention has its card (the
models load on the first batch), a sender thread offers ``--rate`` mentions per second for
``--seconds`` seconds on a fixed schedule, each signed POST on a pool of connections so that a
slow answer never delays the next one. The mentions are the inbound posts of the bundled demo
sample (``bot/samples/demo_mentions.jsonl``) in a shuffled loop, each with a unique id, URL and
conversation, dated now. A mention's latency runs from just before its POST was sent to the
stub's receipt of the chat.postMessage carrying its URL (its card, its incident card, or its
report in an incident's thread).

    python benchmarks/latency.py [--rate 50] [--seconds 60] [--drain 120] [--database URL]

While the mentions are offered it prints the CPU time `earful run` used (from /proc, on
Linux). At the end it prints what was offered, accepted, carded, joined to an incident and
routed to watch or dismiss; p50/p95/p99 and the maximum latency of the mentions with their own card;
what was still undelivered; the split of the latency into its stages (read from the database)
and the post rate per Slack channel.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from handlers.slack_stub import SlackState, channel_ids, playbook_channels, slack_stub
from handlers.webhook import PATH, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from playbooks.loader import load_playbooks
from storage.database import Database
from storage.schema import InteractionRow, Job

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "bot" / "samples" / "demo_mentions.jsonl"
URL_PREFIX = "https://bench.earful.invalid/m/"


@dataclass
class Offer:
    """One mention offered to the webhook."""

    index: int
    url: str
    due: float  # monotonic time the schedule wanted it sent
    sent: float = 0.0  # monotonic, just before the POST
    answered: float = 0.0
    status: int = 0


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of a process so far, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _samples() -> list[dict[str, Any]]:
    with SAMPLE.open(encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return [r for r in records if r.get("direction", "inbound") == "inbound"]


def _record(sample: dict[str, Any], run: str, index: int) -> dict[str, Any]:
    """A sample mention made unique: its own id, URL and conversation, dated now."""
    record = {k: v for k, v in sample.items() if k not in ("in_reply_to", "direction")}
    record["id"] = f"lat-{run}-{index}"
    record["conversation_id"] = f"lat-{run}-{index}"
    record["url"] = f"{URL_PREFIX}{run}/{index}"
    record["created_at"] = datetime.now(UTC).isoformat()
    return record


class Sender:
    """Signed POSTs to the webhook over keep-alive connections, one per pool thread."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret
        self.local = threading.local()

    def post(self, body: bytes) -> int:
        """Send one signed body; the HTTP status (0 when the connection failed)."""
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.secret, stamp, body),
        }
        for _attempt in range(2):  # a keep-alive connection the server closed: reconnect once
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.local.connection = connection
            try:
                connection.request("POST", PATH, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                return int(response.status)
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
        return 0


def _healthz(port: int) -> dict[str, Any] | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/healthz")
        answer = json.loads(connection.getresponse().read())
        connection.close()
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _wait(check: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def _posted(state: SlackState) -> dict[str, tuple[float, str]]:
    """URL of an offered mention → when the first post carrying it reached the stub, and where."""
    found: dict[str, tuple[float, str]] = {}
    with state.lock:
        posts = [c for c in state.calls if c.method == "chat.postMessage"]
    for call in posts:
        text = json.dumps(call.body)
        start = text.find(URL_PREFIX)
        while start >= 0:
            end = start + len(URL_PREFIX)
            while end < len(text) and (text[end].isalnum() or text[end] in "/-"):
                end += 1
            found.setdefault(text[start:end], (call.at, str(call.body.get("channel"))))
            start = text.find(URL_PREFIX, end)
    return found


def _quantiles(values: list[float]) -> str:
    """Nearest-rank percentiles; a card never posted counts as infinitely late."""
    if not values:
        return "no values"
    ordered = sorted(values)

    def rank(p: float) -> str:
        value = ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
        return "not posted" if math.isinf(value) else f"{value:.3f} s"

    return f"p50 {rank(50)} · p95 {rank(95)} · p99 {rank(99)} · max {rank(100)} (n={len(values)})"


def _send_all(
    sender: Sender, samples: list[dict[str, Any]], run: str, rate: float, seconds: float
) -> list[Offer]:
    """Offer ``rate`` mentions a second for ``seconds`` on a fixed schedule, from one thread."""
    total = int(rate * seconds)
    order = list(range(len(samples)))
    random.Random(5).shuffle(order)
    offers: list[Offer] = []
    # Enough connections that a second of slow answers does not hold up the schedule.
    pool = ThreadPoolExecutor(max_workers=max(8, int(rate)), thread_name_prefix="post")

    def send(offer: Offer, body: bytes) -> None:
        offer.sent = time.monotonic()
        offer.status = sender.post(body)
        offer.answered = time.monotonic()

    start = time.monotonic() + 0.2
    for index in range(total):
        due = start + index / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        record = _record(samples[order[index % len(order)]], run, index)
        offer = Offer(index=index, url=record["url"], due=due)
        offers.append(offer)
        pool.submit(send, offer, json.dumps(record).encode())
    pool.shutdown(wait=True)
    return offers


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rate", type=float, default=50.0, help="mentions offered per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to offer them")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="how long to wait for cards afterwards"
    )
    parser.add_argument("--classifier", choices=("earful", "none"), default="earful")
    parser.add_argument(
        "--database", help="an empty database URL to use (default: a fresh SQLite file)"
    )
    args = parser.parse_args()

    run = secrets.token_hex(3)
    samples = _samples()
    triage = "#earful-triage"
    channels = channel_ids(playbook_channels(load_playbooks(None), triage_channel=triage))
    token = f"xoxb-bench-{secrets.token_hex(12)}"
    webhook_secret = secrets.token_hex(32)
    port = _free_port()
    with (
        tempfile.TemporaryDirectory(prefix="earful-latency-") as tmp,
        slack_stub(channels, token=token) as (api_url, state),
    ):
        database_url = args.database or f"sqlite:///{Path(tmp) / 'latency.db'}"
        (Path(tmp) / "sources.yaml").write_text("webhook: {}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EARFUL_")}
        env |= {
            "EARFUL_DATA_DIR": tmp,
            "EARFUL_DATABASE_URL": database_url,
            "EARFUL_CLASSIFIER": args.classifier,
            "EARFUL_TRIAGE_CHANNEL": triage,
            "EARFUL_SOURCES_FILE": str(Path(tmp) / "sources.yaml"),
            "EARFUL_WEBHOOK_SECRET": webhook_secret,
            "EARFUL_SLACK_BOT_TOKEN": token,
            "EARFUL_SLACK_API_URL": api_url,
            "EARFUL_SLACK_CHANNELS": ",".join(f"{n}={i}" for n, i in channels.items()),
            "EARFUL_SLACK_SIGNING_SECRET": secrets.token_hex(16),
            "EARFUL_SLACK_AGENTS": "U0BENCH",
        }
        if args.database:  # a server database is not migrated on first use, as SQLite is
            subprocess.run(  # noqa: S603 - our own command
                [sys.executable, "-m", "bot.cli", "db", "upgrade"], env=env, check=True
            )
        process = subprocess.Popen(  # noqa: S603 - our own command
            [sys.executable, "-m", "bot.cli", "run", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            began = time.monotonic()
            _wait(
                lambda: _healthz(port) is not None or process.poll() is not None,
                "earful run to answer /healthz",
                120,
            )
            if process.poll() is not None:
                raise SystemExit("earful run did not start")
            sender = Sender(port, webhook_secret)
            warm = _record(samples[0], run, -1)
            if sender.post(json.dumps(warm).encode()) != 202:
                raise SystemExit("the warm-up mention was refused")
            _wait(lambda: warm["url"] in _posted(state), "the warm-up card", 300)
            print(
                f"earful run ready and warm (models loaded) in {time.monotonic() - began:.1f} s; "
                f"offering {args.rate:g} mentions/s for {args.seconds:g} s",
                flush=True,
            )
            cpu_before = _cpu_seconds(process.pid)
            began_sending = time.monotonic()
            offers = _send_all(sender, samples, run, args.rate, args.seconds)
            sending_done = time.monotonic()
            cpu_after = _cpu_seconds(process.pid)
            if cpu_before is not None and cpu_after is not None:
                used = cpu_after - cpu_before
                print(
                    f"earful run used {used:.1f} s of CPU while mentions were offered "
                    f"({100 * used / (sending_done - began_sending):.0f} % of one core; "
                    f"{1000 * used / max(1, len(offers)):.1f} ms a mention)",
                    flush=True,
                )

            def settled() -> bool:
                health = _healthz(port) or {}
                return health.get("jobs_pending") == 0 and health.get("outbox_pending") == 0

            with contextlib.suppress(SystemExit):
                _wait(settled, "the pipeline and the outbox to empty", args.drain)
            waited = time.monotonic() - sending_done
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                _, errors = process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                _, errors = process.communicate()
        posted = _posted(state)
        _report(args, offers, posted, state, database_url, waited)
        if process.returncode != 0:
            print(f"earful run exited {process.returncode}: {errors[-2000:]}", file=sys.stderr)


def _report(
    args: argparse.Namespace,
    offers: list[Offer],
    posted: dict[str, tuple[float, str]],
    state: SlackState,
    database_url: str,
    waited: float,
) -> None:
    sent = [o.sent for o in offers if o.sent]
    span = max(sent) - min(sent) if len(sent) > 1 else 0.0
    lateness = [o.sent - o.due for o in offers if o.sent]
    statuses = Counter(o.status for o in offers)
    by_url = {o.url: o for o in offers}
    # Wall-clock equivalents of monotonic times, for the database's timestamps.
    offset = time.time() - time.monotonic()
    database = Database(url=database_url)
    with database.transaction() as session:
        rows = session.execute(
            select(
                InteractionRow.url,
                InteractionRow.decision,
                InteractionRow.incident_id,
                InteractionRow.received_at,
                Job.updated_at,
                Job.state,
            )
            .join(Job, Job.interaction_id == InteractionRow.id)
            .where(InteractionRow.url.in_(list(by_url)))
        ).all()
    database.dispose()
    carded: list[str] = []
    incident: list[str] = []
    actions: Counter[str] = Counter()
    stages: dict[str, list[float]] = {"sent → stored": [], "stored → batch": [], "batch → post": []}
    for row in rows:
        if row.decision is None:
            continue
        action = str(row.decision.get("action"))
        (incident if row.incident_id is not None else carded).append(row.url)
        if row.incident_id is None:
            actions[action] += 1
        offer, (at, _) = by_url[row.url], posted.get(row.url, (None, ""))
        if at is not None and row.incident_id is None:
            stored = row.received_at.timestamp()
            batch = row.updated_at.timestamp()
            stages["sent → stored"].append(stored - (offer.sent + offset))
            stages["stored → batch"].append(batch - stored)
            stages["batch → post"].append(at + offset - batch)
    latencies = [posted[u][0] - by_url[u].sent if u in posted else math.inf for u in carded]
    per_channel: dict[str, list[float]] = {}
    for url in carded:
        if url in posted:
            at, channel = posted[url]
            per_channel.setdefault(state.channel_name(channel), []).append(at - by_url[url].sent)
    accepted = statuses.get(202, 0)
    print(
        f"offered {len(offers)} in {span:.1f} s ({(len(sent) - 1) / span if span else 0:.1f}/s "
        f"achieved; sends behind schedule by p50 {statistics.median(lateness) * 1000:.0f} ms, "
        f"max {max(lateness) * 1000:.0f} ms)"
    )
    print(f"answers: {dict(sorted(statuses.items()))} (202 = stored)")
    processed = len(carded) + len(incident)
    print(
        f"accepted {accepted} · processed {processed} · carded {len(carded)} "
        f"(watch {actions['watch']}, dismiss {actions['dismiss']}, respond {actions['respond']}) "
        f"· joined an incident {len(incident)} "
        f"({sum(u in posted for u in incident)} of them visible in an incident post)"
    )
    print(f"latency, mention sent → its card posted: {_quantiles(latencies)}")
    delivered = [v for v in latencies if not math.isinf(v)]
    if len(delivered) < len(latencies):
        print(f"  of the cards posted by the end only: {_quantiles(delivered)}")
    undelivered = [u for u in carded if u not in posted]
    print(
        f"undelivered at the end: {len(undelivered)} card(s) of processed mentions, "
        f"{accepted - processed} accepted mention(s) not processed "
        f"(waited {waited:.0f} s after the last send)"
    )
    for stage, values in stages.items():
        print(f"  stage {stage}: {_quantiles(values)}")
    print("per channel (stub): posts received, their rate, and the latency of its cards")
    for summary in state.summary():
        rate = summary.posts_per_second
        print(
            f"  {summary.name:<18} messages {summary.messages:>4} holding {summary.cards:>5} cards"
            f" · thread replies {summary.replies:>4} "
            f"· updates {summary.updates:>4} · {f'{rate:.2f} posts/s' if rate else '-'}"
        )
        if summary.name in per_channel:
            print(f"  {'':<18} {_quantiles(per_channel[summary.name])}")


if __name__ == "__main__":
    main()
