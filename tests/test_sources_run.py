"""`earful run` with sources, and `earful sources check`: configuration to cards, end to end."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from earful_run import earful_run, free_port, http_status, wait_for
from slack_standin import TOKEN, SlackState, slack_standin
from sqlalchemy import create_engine, select
from telegram_standin import TOKEN as TELEGRAM_TOKEN
from telegram_standin import telegram_standin

from bot.app import build_reply_sink
from bot.config import load_settings
from handlers.webhook import sign
from storage.outbox import Effect
from storage.schema import InteractionRow

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = FIXTURES / "feeds"
TELEGRAM_SECRET = "telegram-webhook-secret-run"  # noqa: S105 - a test secret
WEBHOOK_SECRET = "test-webhook-secret-0123456789"  # noqa: S105 - a test secret
Earful = Callable[..., subprocess.CompletedProcess[str]]


@contextmanager
def _feed_server(body: bytes) -> Iterator[str]:
    """A local server with one RSS feed at /feed.xml."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            status = 200 if self.path == "/feed.xml" else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body) if status == 200 else 0))
            self.end_headers()
            if status == 200:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    finally:
        server.shutdown()
        server.server_close()


def _post_mention(port: int, mention: dict[str, object]) -> tuple[int, dict[str, object]]:
    body = json.dumps(mention).encode()
    stamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - a local test server
        f"http://127.0.0.1:{port}/webhook/mentions",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Earful-Timestamp": str(stamp),
            "X-Earful-Signature": sign(WEBHOOK_SECRET, stamp, body),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read())


def _sources_file(tmp_path: Path, feed_url: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(
        f"feeds:\n  - url: {feed_url}\n    keywords: [acme]\n    interval: 30\nwebhook: {{}}\n",
        encoding="utf-8",
    )
    return path


def test_run_watches_a_feed_and_the_webhook_and_posts_their_cards(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A feed entry and a signed webhook mention both become cards in Slack while `earful run`
    serves; the webhook mention is stored once when it is sent twice; no secret and no
    customer text appears in the log, even at DEBUG."""
    database = tmp_path / "run.db"
    with (
        _feed_server((FEEDS / "rss_v1.xml").read_bytes()) as feed_url,
        slack_standin({"#earful-triage": "C0TRIAGE"}) as (api, state),
    ):
        env = {
            **env,
            "EARFUL_DATABASE_URL": f"sqlite:///{database}",
            "EARFUL_CLASSIFIER": "none",
            "EARFUL_SLACK_BOT_TOKEN": TOKEN,
            "EARFUL_SLACK_SIGNING_SECRET": "test-signing-secret-run",
            "EARFUL_SLACK_AGENTS": "U0AGENT",
            "EARFUL_SLACK_API_URL": api,
            "EARFUL_SOURCES_FILE": str(_sources_file(tmp_path, feed_url)),
            "EARFUL_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "EARFUL_LOG_LEVEL": "DEBUG",
        }
        with earful_run(env) as run:
            mention = {
                "id": "forum-991",
                "text": "Acme support, my parcel has been stuck for a week, please help",
                "author": {"handle": "dana"},
            }
            assert _post_mention(run.port, mention) == (202, {"stored": 1, "duplicates": 0})
            assert _post_mention(run.port, mention) == (202, {"stored": 0, "duplicates": 1})

            def posted(needle: str, state: SlackState = state) -> Callable[[], bool]:
                return lambda: any(needle in json.dumps(c.body) for c in state.posts())

            wait_for(posted("parcel has been stuck"), "the webhook mention's card", timeout=60)
            wait_for(posted("kettle stopped working"), "the feed entry's card", timeout=60)
            texts = [json.dumps(c.body) for c in state.posts()]
            assert sum("parcel has been stuck" in text for text in texts) == 1
            assert not any("Ten teapots" in text for text in texts)  # no keyword: not watched
        out, err = run.out, run.err
        assert run.returncode == 0, err
        assert f"feed:{feed_url}" in out
        assert "webhook at POST /webhook/mentions" in out
        assert "DEBUG" in err  # the log level took effect
        assert WEBHOOK_SECRET not in out + err
        assert TOKEN not in out + err
        assert "parcel has been stuck" not in err


def test_sources_check_prints_what_each_source_watches(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Checks a reachable feed and prints what each source would watch, and where replies go."""
    with _feed_server((FEEDS / "rss_v1.xml").read_bytes()) as feed_url:
        sources = _sources_file(tmp_path, feed_url)
        result = earful(
            "sources", "check", "--sources", str(sources),
            env={**env, "EARFUL_WEBHOOK_SECRET": WEBHOOK_SECRET},
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"feed:{feed_url}: feed {feed_url} every 30 s, keywords: acme" in result.stdout
    assert f"feed:{feed_url}: credentials and address work" in result.stdout
    assert "earful run takes webhook at POST /webhook/mentions" in result.stdout
    assert "replies posted back to: none (logged only)" in result.stdout


def test_sources_check_names_the_missing_credential(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Refuses a sources file that watches X without a bearer token, naming the variable."""
    sources = tmp_path / "sources.yaml"
    sources.write_text("x:\n  account: acme\n", encoding="utf-8")
    result = earful("sources", "check", "--sources", str(sources), env=env)
    assert result.returncode == 2
    assert "the sources file watches X: set EARFUL_X_BEARER_TOKEN" in result.stderr


def test_sources_check_reports_an_unreachable_feed(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Fails with the feed's reason when the feed cannot be read."""
    sources = _sources_file(tmp_path, f"http://127.0.0.1:{free_port()}/feed.xml")
    result = earful(
        "sources", "check", "--sources", str(sources),
        env={**env, "EARFUL_WEBHOOK_SECRET": WEBHOOK_SECRET},
    )  # fmt: skip
    assert result.returncode == 1
    assert "feed:http://127.0.0.1" in result.stderr


def test_run_refuses_a_bad_sources_file(
    earful: Earful, env: dict[str, str], tmp_path: Path
) -> None:
    """Stops `earful run` at start-up with the file, field and reason of a bad sources file."""
    sources = tmp_path / "sources.yaml"
    sources.write_text("feeds:\n  - url: not-a-url\n", encoding="utf-8")
    result = earful("run", "--port", str(free_port()), "--sources", str(sources), env=env)
    assert result.returncode == 2
    assert "sources.yaml: feeds.0.url" in result.stderr


def _telegram_env(env: dict[str, str], tmp_path: Path, api: str, sources: str) -> dict[str, str]:
    path = tmp_path / "sources.yaml"
    path.write_text(sources, encoding="utf-8")
    return {
        **env,
        "EARFUL_DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
        "EARFUL_CLASSIFIER": "none",
        "EARFUL_SOURCES_FILE": str(path),
        "EARFUL_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "EARFUL_TELEGRAM_API_URL": api,
        "EARFUL_TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
    }


def _stored_ids(database: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(InteractionRow.external_id)).scalars())
    finally:
        engine.dispose()


def test_run_polls_telegram_and_confirms_what_it_stored(
    env: dict[str, str], tmp_path: Path
) -> None:
    """`earful run` polls the Bot API, stores the messages meant for the bot, and confirms
    them to Telegram with the next offset; its DEBUG log holds neither the token nor the text."""
    updates = json.loads((FIXTURES / "telegram" / "updates.json").read_text())
    with telegram_standin() as (api, state):
        state.add(*updates)
        env = _telegram_env(
            env, tmp_path, api, "telegram:\n  keywords: [acme]\n  poll_timeout: 0\n"
        )
        last = max(update["update_id"] for update in updates)

        def confirmed() -> bool:
            return any(
                int(call.params.get("offset") or 0) == last + 1
                for call in state.called("getUpdates")
            )

        with earful_run({**env, "EARFUL_LOG_LEVEL": "DEBUG"}) as run:
            wait_for(confirmed, "getUpdates with the offset after the last stored update")
        assert "-1001234567890:311" in _stored_ids(tmp_path / "run.db")
        cards, log = run.out, run.err  # without Slack, the cards are drawn on stdout
        assert "DEBUG" in log
        assert TELEGRAM_TOKEN not in cards + log  # the token is part of every Bot API URL
        assert "never arrived" in cards
        assert "never arrived" not in log  # a customer's words stay out of the log


def test_run_takes_telegram_webhook_posts_with_the_secret_only(
    env: dict[str, str], tmp_path: Path
) -> None:
    """In webhook mode `earful run` registers its URL with the secret token and stores only
    the posts that carry it."""
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram/updates"
    update = json.loads((FIXTURES / "telegram" / "updates.json").read_text())[0]
    body = json.dumps(update).encode()
    with telegram_standin() as (api, state):
        env = _telegram_env(env, tmp_path, api, f"telegram:\n  webhook_url: {hook}\n")
        with earful_run({**env, "EARFUL_LOG_LEVEL": "DEBUG"}, port=port) as run:
            wait_for(lambda: bool(state.called("setWebhook")), "setWebhook")
            registered = state.called("setWebhook")[0].params
            assert registered["url"] == hook
            assert registered["secret_token"] == TELEGRAM_SECRET
            assert not state.called("getUpdates")
            for headers, expected in (
                ({}, 401),
                ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, 401),
                ({"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}, 200),
            ):
                status = http_status(hook, body, {"Content-Type": "application/json", **headers})
                assert status == expected
        assert _stored_ids(tmp_path / "run.db") == ["-1001234567890:311"]
        assert TELEGRAM_TOKEN not in run.out + run.err
        assert TELEGRAM_SECRET not in run.out + run.err


def test_replies_go_back_to_telegram_by_platform(env: dict[str, str]) -> None:
    """A reply effect for a Telegram message is sent under it; one for a feed is only logged."""
    with telegram_standin() as (api, state):
        settings = load_settings(
            environ={"EARFUL_TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN, "EARFUL_TELEGRAM_API_URL": api}
        )
        sink = build_reply_sink(settings)
        for n, (platform, in_reply_to) in enumerate(
            (("telegram", "-1001234567890:311"), ("blog", "https://blog.example/post"))
        ):
            payload = {"interaction_id": n, "platform": platform, "in_reply_to": in_reply_to}
            sink.deliver(
                Effect(
                    id=n,
                    idempotency_key=f"reply:{n}",
                    kind="reply",
                    ordering_key=f"conversation:{n}",
                    payload={**payload, "text": "Sorry about that, we're on it."},
                    attempts=0,
                    created_at=datetime.now(UTC),
                )
            )
        [sent] = state.called("sendMessage")
    assert str(sent.params["chat_id"]) == "-1001234567890"
    assert "311" in json.dumps(sent.params)
