"""The `earful` command line: thin commands over the composition root."""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import secrets
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot import effects, workbench
from bot.app import (
    build,
    build_classifier,
    build_decider,
    build_deliverer,
    build_embedder,
    build_endpoints,
    build_reply_sink,
    build_slack_app,
    build_slack_socket,
    build_slack_surface,
    build_sources,
    build_suggester,
    open_database,
)
from bot.classify import classify_records
from bot.config import Settings, load_settings
from bot.console import ConsoleView
from bot.delivery import Sink
from bot.errors import ConfigError, EarfulError, InputError
from bot.logs import configure_logging
from bot.models import Decision, now_utc
from bot.pipeline import Change
from bot.polling import Intake
from bot.replay import ReplayReport, replay
from bot.service import SLACK_PATH, Service
from bot.sla import SlaTimers
from bot.sources import load_sources
from handlers.crm_import import read_crm_csv
from handlers.file_import import parse_column_map, read_file, read_jsonl, read_text_lines
from handlers.slack_blocks import Block, card_heads, card_in
from handlers.slack_stub import SlackState, channel_ids, playbook_channels
from handlers.slack_stub import slack_stub as start_slack_stub
from storage import audit, contacts, corrections, outbox, replies, sla, status
from storage.database import Database
from storage.outbox import Effect

app = typer.Typer(
    help="Earful: listen to public mentions, judge them, hand them to your team.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
contacts_app = typer.Typer(help="Contacts and CRM records.", no_args_is_help=True)
app.add_typer(db_app, name="db")
sla_app = typer.Typer(help="SLA timers: first responses due, escalations.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")
app.add_typer(sla_app, name="sla")
corrections_app = typer.Typer(
    help="Agents' corrections of labels, for evaluation and retraining.", no_args_is_help=True
)
app.add_typer(corrections_app, name="corrections")
slack_app_cli = typer.Typer(help="Connecting Earful to Slack.", no_args_is_help=True)
outbox_app = typer.Typer(
    help="Effects on the outside world: cards, replies, tickets.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")
sources_app = typer.Typer(
    help="Where Earful listens: X, Telegram, feeds, the webhook.", no_args_is_help=True
)
app.add_typer(sources_app, name="sources")
app.add_typer(slack_app_cli, name="slack")

out = Console()
err = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (default: EARFUL_DATABASE_URL, else SQLite in the data directory).",
        show_default=False,
    ),
]


PlaybooksOption = Annotated[
    Path | None,
    typer.Option(
        "--playbooks",
        help="Directory of playbook files (default: EARFUL_PLAYBOOKS, else the bundled set).",
        show_default=False,
    ),
]


SourcesOption = Annotated[
    Path | None,
    typer.Option(
        "--sources",
        help="The sources file (default: EARFUL_SOURCES_FILE; none watches nothing).",
        show_default=False,
    ),
]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _settings(
    database: str | None, playbooks: Path | None = None, sources: Path | None = None
) -> Settings:
    settings = load_settings(database_url=database, playbooks=playbooks, sources_file=sources)
    configure_logging(settings.log_level)
    return settings


@contextmanager
def _errors() -> Iterator[None]:
    """Turn Earful's errors into one line on stderr and a non-zero exit."""
    try:
        yield
    except EarfulError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _open_input(path: Path) -> Path:
    if not path.is_file():
        raise InputError(str(path), "no such file")
    return path


def _team_sink(settings: Settings) -> Sink | None:
    """The terminal, unless a Slack token is configured (None: build Slack's sink)."""
    return None if settings.slack_bot_token else ConsoleView(console=out)


class _DiscardCards:
    """The sink of a dry run: cards are counted in the report, never delivered."""

    def deliver(self, effect: Effect) -> None:
        """Nothing leaves the machine in a dry run."""


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create the schema, or migrate it to this version of Earful."""
    with _errors():
        settings = _settings(database)
        db = Database(url=settings.resolved_database_url)
        before, after = db.upgrade()
        with db.transaction() as session:
            audit.record(
                session,
                actor=_actor(),
                origin="cli",
                action="db.upgrade",
                details={"from": before, "to": after},
                at=now_utc(),
            )
        out.print(f"database {db.display_url}: {before or 'empty'} → {after}")


@contacts_app.command("import")
def contacts_import(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV export: "
            "name,email,x_handle,telegram_handle,company,plan,lifetime_value,last_order_date,order_count"
        ),
    ],
    database: DatabaseOption = None,
) -> None:
    """Load customer records from a CRM export; all rows or none."""
    with _errors():
        settings = _settings(database)
        with _open_input(file).open("rb") as stream:
            records, errors = read_crm_csv(stream, name=file.name)
        if errors:
            for error in errors:
                err.print(f"[red]rejected[/red] {error}", highlight=False)
            err.print(f"{len(errors)} invalid row(s) in {file.name}; nothing was imported")
            raise typer.Exit(1)
        db = open_database(settings)
        try:
            with db.transaction() as session:
                result = contacts.import_crm_records(session, records, at=now_utc())
                audit.record(
                    session,
                    actor=_actor(),
                    origin="cli",
                    action="contacts.import",
                    target=file.name,
                    details={"created": result.created, "updated": result.updated},
                    at=now_utc(),
                )
        except ValueError as exc:
            raise InputError(file.name, f"{exc}; nothing was imported") from None
        out.print(
            f"imported {len(records)} record(s): {result.created} new, {result.updated} updated"
        )


def _run_replay(
    *,
    settings: Settings,
    file: Path,
    sink: Sink | None,
    dry_run: bool,
    fmt: Literal["auto", "jsonl", "csv"],
    column_map: dict[str, str],
    database: Database | None = None,
    show_progress: bool = True,
    compare: Path | None = None,
) -> tuple[ReplayReport, Database]:
    services = build(
        settings=settings, team_sink=sink, dry_run=dry_run, database=database, compare=compare
    )
    size = file.stat().st_size
    with file.open("rb") as stream:
        records = read_file(
            file,
            stream,
            max_text_chars=settings.max_text_chars,
            received_at=now_utc(),
            fmt=fmt,
            column_map=column_map,
        )
        progress = Progress(
            TextColumn("[bold]replay[/bold] {task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[stored]:,} stored"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=not show_progress,
        )
        with progress:
            task = progress.add_task(file.name, total=size, stored=0)
            report = replay(
                records,
                pipeline=services.pipeline,
                deliverer=None if dry_run else services.deliverer,
                source=f"replay:{file.name}",
                batch_size=settings.batch_size,
                on_error=lambda e: progress.console.print(
                    f"[red]rejected[/red] {e}", highlight=False
                ),
                on_batch=lambda stored: progress.update(
                    task, completed=stream.tell(), stored=stored
                ),
            )
            progress.update(task, completed=size)
    with services.database.transaction() as session:
        audit.record(
            session,
            actor=_actor(),
            origin="cli",
            action="replay",
            target=file.name,
            details={
                "stored": report.stored,
                "duplicates": report.duplicates,
                "rejected": len(report.rejected),
                "dry_run": dry_run,
            },
            at=now_utc(),
        )
    return report, services.database


def _report_table(report: ReplayReport, *, dry_run: bool) -> Table:
    table = Table(
        title="replay" + (" (dry run: nothing sent)" if dry_run else ""), show_header=True
    )
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, int]] = [
        ("lines read", report.read),
        ("mentions stored (new)", report.stored),
        ("duplicates skipped", report.duplicates),
        ("lines rejected", len(report.rejected)),
        ("outbound replies logged", report.outbound_logged),
        ("failed in pipeline", report.failed),
    ]
    rows += [(f"routed to {channel}", n) for channel, n in sorted(report.routed.items())]
    rows += [
        ("incidents opened (one card each)", report.incidents_opened),
        ("mentions grouped into incidents", report.incident_reports),
    ]
    if not dry_run:
        rows += [
            ("SLA timers started", report.timers_armed),
            ("cards and updates delivered", report.delivery.delivered),
            ("deliveries failed", report.delivery.failed),
        ]
    for what, count in rows:
        table.add_row(what, f"{count:,}")
    return table


def _describe(decision: Decision) -> str:
    action = decision.action.value if decision.action else "undecided"
    priority = decision.priority.value if decision.priority else "-"
    rule = f"{decision.playbook}/{decision.rule}" if decision.playbook else "no rule"
    return f"{action} {priority} {decision.channel} ({rule})"


def _print_comparison(report: ReplayReport, current: Path | None, other: Path) -> None:
    """How many judged mentions change action, priority or channel, with examples."""
    name = str(current) if current else "bundled playbooks"
    if report.compared == 0:
        err.print(
            "[yellow]no mention was judged in this run (all were stored before?), so nothing "
            "was compared: replay into a scratch database, e.g. --database sqlite:///compare.db"
            "[/yellow]"
        )
        return
    counts = Counter(field for change in report.changes for field in change.fields)
    table = Table(title=f"{name} → {other}: {report.compared:,} mentions judged by both")
    table.add_column("changes")
    table.add_column("mentions", justify="right")
    table.add_column("share", justify="right")
    for label, count in (
        ("any of action, priority, channel", len(report.changes)),
        ("action", counts["action"]),
        ("priority", counts["priority"]),
        ("channel", counts["channel"]),
    ):
        table.add_row(label, f"{count:,}", f"{count / report.compared:.1%}")
    out.print(table)
    moves: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], Change] = {}
    for change in report.changes:
        move = (_describe(change.before), _describe(change.after))
        moves[move] += 1
        examples.setdefault(move, change)
    for (before, after), count in moves.most_common(10):
        example = examples[before, after]
        text = example.text if len(example.text) <= 100 else example.text[:99] + "…"
        out.print(
            f"{count:>5} × {before}  →  {after}\n        e.g. {example.external_id}: {text}",
            soft_wrap=True,
            highlight=False,
        )


@app.command("replay")
def replay_command(
    file: Annotated[
        Path, typer.Argument(help="JSON Lines (the input contract) or CSV with a header.")
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Store and judge, but send nothing to Slack or any platform."
        ),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="auto (by suffix), jsonl or csv.")] = "auto",
    column_map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="CSV only: FIELD=COLUMN, e.g. text=body or author.handle=user. Repeatable.",
        ),
    ] = None,
    playbooks: PlaybooksOption = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            "--compare",
            help="Another playbook directory: show how its decisions would differ.",
            show_default=False,
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Run a dump of mentions through the pipeline; prints a table of counts."""
    with _errors():
        settings = _settings(database, playbooks)
        if fmt not in ("auto", "jsonl", "csv"):
            raise InputError("--format", f"{fmt!r} is not one of auto, jsonl, csv")
        mapping = parse_column_map(column_map or [])
        _open_input(file)
        sink = _DiscardCards() if dry_run else _team_sink(settings)
        report, _ = _run_replay(
            settings=settings,
            file=file,
            sink=sink,
            dry_run=dry_run,
            fmt=fmt,  # type: ignore[arg-type]
            column_map=mapping,
            compare=compare,
        )
        out.print(_report_table(report, dry_run=dry_run))
        if compare is not None:
            _print_comparison(report, settings.playbooks, compare)
        if report.rejected:
            err.print(f"{len(report.rejected)} line(s) rejected; the other lines were stored")
            raise typer.Exit(1)


@app.command("classify")
def classify_command(
    source: Annotated[
        str, typer.Option("--in", help="JSON Lines file (the input contract), or - for stdin.")
    ] = "-",
    target: Annotated[str, typer.Option("--out", help="Output file, or - for stdout.")] = "-",
    text: Annotated[
        bool, typer.Option("--text", help="Read plain text, one mention per line.")
    ] = False,
    playbooks: PlaybooksOption = None,
    database: DatabaseOption = None,
) -> None:
    """Judge mentions: JSON Lines in, one line out per input line; reads history, writes none."""
    with _errors():
        settings = _settings(database, playbooks)
        db = open_database(settings)
        embedder = build_embedder(settings)
        classifier = build_classifier(settings, embedder=embedder)
        decider = build_decider(settings)
        suggester = build_suggester(settings, decider, embedder=embedder)
        name = "stdin" if source == "-" else Path(source).name
        stream = sys.stdin.buffer if source == "-" else _open_input(Path(source)).open("rb")
        reader = read_text_lines if text else read_jsonl
        records = reader(
            stream, max_text_chars=settings.max_text_chars, received_at=now_utc(), name=name
        )
        sink = sys.stdout if target == "-" else Path(target).open("w", encoding="utf-8")  # noqa: SIM115
        errors = written = 0
        progress = Progress(
            TextColumn("[bold]classify[/bold]"),
            TextColumn("{task.completed:,} lines"),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        try:
            with progress:
                task = progress.add_task("classify", total=None)
                for output in classify_records(
                    records,
                    database=db,
                    classifier=classifier,
                    decider=decider,
                    suggester=suggester,
                    batch_size=settings.model_batch_size * 4,
                ):
                    sink.write(json.dumps(output.line, ensure_ascii=False) + "\n")
                    written += 1
                    if output.error:
                        errors += 1
                        err.print(f"[red]rejected[/red] {output.line['error']}", highlight=False)
                    progress.update(task, completed=written)
        finally:
            if sink is not sys.stdout:
                sink.close()
            if stream is not sys.stdin.buffer:
                stream.close()
        if errors:
            err.print(f"{errors} line(s) rejected; {written - errors} classified")
            raise typer.Exit(1)


@app.command("run")
def run_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for Slack's requests and /healthz.")] = 3000,
    playbooks: PlaybooksOption = None,
    sources: SourcesOption = None,
    database: DatabaseOption = None,
) -> None:
    """The service: sources, pipeline, delivery, SLA timers and the Slack app, until SIGTERM."""
    with _errors():
        settings = _settings(database, playbooks, sources)
        config = load_sources(settings.sources_file)
        polled = build_sources(settings, config)
        services = build(settings=settings, team_sink=_team_sink(settings))
        slack_app = build_slack_app(settings, services.database)
        socket = build_slack_socket(settings, slack_app)
        service = Service(
            services=services,
            slack_app=slack_app,
            host=host,
            port=port,
            slack_socket=socket,
            sources=polled,
            endpoints=functools.partial(build_endpoints, settings, config),
        )
        ready = asyncio.Event()

        async def serve() -> None:
            task = asyncio.create_task(service.run(on_ready=ready))
            waiting = asyncio.create_task(ready.wait())
            # A start-up failure (Slack refusing the app token) ends the task before it is ready.
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not ready.is_set():
                waiting.cancel()
                await task
                return
            if socket is not None:
                slack = "Slack over Socket Mode"
            elif slack_app is not None:
                slack = f"Slack requests at {SLACK_PATH}"
            else:
                slack = "no Slack configured"
            watching = [source.name for source in polled]
            watching += [endpoint.label for endpoint in service.endpoints]
            out.print(f"watching: {', '.join(watching) or 'no sources'}", highlight=False)
            out.print(
                f"earful run: http://{host}:{port} ({slack}; /healthz); "
                f"database {services.database.display_url}; Ctrl-C stops"
            )
            await task

        try:
            asyncio.run(serve())
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        out.print("earful run: stopped")


@slack_app_cli.command("manifest")
def slack_manifest_command(
    request_url: Annotated[
        str | None,
        typer.Option(
            "--request-url",
            help="HTTP mode: Earful's public https://…/slack/events URL (default: Socket Mode).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the Slack app manifest to paste into "Create New App → From a manifest"."""
    from handlers.slack_socket import manifest_yaml

    with _errors():
        sys.stdout.write(manifest_yaml(request_url=request_url))


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database: DatabaseOption = None,
) -> None:
    """Counts of mentions, conversations, contacts, interactions, pending work and checkpoints."""
    with _errors():
        db = open_database(_settings(database))
        with db.transaction() as session:
            counts = status.counts(session, now=now_utc())
        if as_json:
            out.print_json(json.dumps(counts.to_json()))
            return
        out.print(_status_table(counts))


def _status_table(counts: status.StatusCounts) -> Table:
    table = Table(title="status")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows: list[tuple[str, int]] = [
        ("mentions", counts.mentions),
        ("conversations", counts.conversations),
        ("contacts", counts.contacts),
        ("interactions inbound", counts.interactions["inbound"]),
        ("interactions outbound", counts.interactions["outbound"]),
        ("outbox pending", counts.outbox_pending),
        ("outbox failed", counts.outbox_failed),
        ("jobs pending", counts.jobs_pending),
        ("jobs failed", counts.jobs_failed),
        ("SLA timers pending", counts.sla_pending),
        ("SLA timers overdue", counts.sla_overdue),
        ("incidents open", counts.incidents_open),
    ]
    for what, count in rows:
        table.add_row(what, f"{count:,}")
    for source, position in sorted(counts.checkpoints.items()):
        table.add_row(f"checkpoint {source}", position)
    for source, reads in sorted(counts.source_reads_today.items()):
        table.add_row(f"posts read today {source}", f"{reads:,}")
    for source, rejected in sorted(counts.source_rejects.items()):
        table.add_row(f"payloads rejected {source}", f"{rejected:,}")
    return table


@app.command("demo")
def demo_command(
    playbooks: PlaybooksOption = None,
    database: DatabaseOption = None,
    slack_stub: Annotated[
        bool,
        typer.Option(
            "--slack-stub",
            help="Post the cards through the Slack surface to a stub of Slack's Web API that "
            "the demo starts (no workspace, no token), then show what it received.",
        ),
    ] = False,
) -> None:
    """The whole pipeline over a bundled sample: CRM import, ~200 mentions, cards in the console."""
    with _errors():
        settings = _settings(database, playbooks)
        if database is None:
            # The demo keeps its own database, fresh each run, apart from real data.
            demo_file = settings.data_dir / "demo.db"
            demo_file.unlink(missing_ok=True)
            settings = settings.model_copy(update={"database_url": f"sqlite:///{demo_file}"})
        db = open_database(settings)
        samples = resources.files("bot") / "samples"
        with resources.as_file(samples / "demo_crm.csv") as crm_path, crm_path.open("rb") as stream:
            records, errors = read_crm_csv(stream, name=crm_path.name)
        if errors:
            raise InputError("bundled demo_crm.csv", str(errors[0]))
        with db.transaction() as session:
            result = contacts.import_crm_records(session, records, at=now_utc())
        out.rule("[bold]Earful demo[/bold]")
        with ExitStack() as running:
            # The demo never posts to a real workspace: the console, or a stub started here.
            sink: Sink = ConsoleView(console=out)
            where = "no Slack configured: cards shown here"
            stub = None
            if slack_stub:
                api_url, stub, sink = _start_slack_stub(running, settings, db)
                where = f"cards posted to a Slack stub at {api_url}"
            out.print(
                f"database {db.display_url}\nimported {result.created + result.updated} CRM "
                f"contacts; replaying the bundled sample ({where})\n"
            )
            with resources.as_file(samples / "demo_mentions.jsonl") as sample:
                report, db = _run_replay(
                    settings=settings,
                    file=sample,
                    sink=sink,
                    dry_run=False,
                    fmt="jsonl",
                    column_map={},
                    database=db,
                )
            if stub is not None:
                _print_stub_summary(stub)
        out.print(_report_table(report, dry_run=False))
        with db.transaction() as session:
            counts = status.counts(session, now=now_utc())
        out.print(_status_table(counts))
        consistent = (
            counts.mentions + counts.interactions["outbound"] == report.stored
            and sum(report.routed.values()) == counts.mentions
            and report.delivery.delivered == report.effects
            and counts.outbox_pending == 0
        )
        if not consistent:
            err.print("[red]the database does not match the replay's counts[/red]")
            raise typer.Exit(1)
        out.print(
            f"[green]{counts.mentions} mentions stored and routed, "
            f"{counts.interactions['outbound']} past replies logged, "
            f"{counts.conversations} conversations, {counts.contacts} contacts — "
            "the database matches the run.[/green]"
        )


def _start_slack_stub(
    running: ExitStack, settings: Settings, db: Database
) -> tuple[str, SlackState, Sink]:
    """Start the Slack stub, knowing every channel of the playbooks; the Slack surface for it."""
    from slack_sdk import WebClient

    from handlers.slack_surface import SlackSurface
    from storage.slack import SlackPlaces

    names = playbook_channels(build_decider(settings).set, triage_channel=settings.triage_channel)
    token = f"xoxb-stub-{secrets.token_hex(12)}"  # made up per run; the stub accepts only it
    api_url, state = running.enter_context(start_slack_stub(channel_ids(names), token=token))
    surface = SlackSurface(
        client=WebClient(token=token, base_url=api_url),
        places=SlackPlaces(db),
        channels=state.channels,
        # Slack allows about one post per second per channel; the stub has no limit, so the
        # demo does not wait between posts.
        min_interval=0,
    )
    return api_url, state, surface


def _print_stub_summary(state: SlackState) -> None:
    """What the stub received, per channel, and one card as Slack received it."""
    table = Table(title="what Slack received (stub)")
    for column in ("channel", "id", "messages", "cards", "thread replies", "updates"):
        table.add_column(column, justify="left" if column in ("channel", "id") else "right")
    summary = state.summary()
    for channel in summary:
        table.add_row(
            channel.name,
            channel.channel_id,
            str(channel.messages),
            str(channel.cards),
            str(channel.replies),
            str(channel.updates),
        )
    table.add_row(
        "all",
        "",
        str(sum(c.messages for c in summary)),
        str(sum(c.cards for c in summary)),
        str(sum(c.replies for c in summary)),
        str(sum(c.updates for c in summary)),
        style="bold",
    )
    out.print(table)
    # One card, preferably a full one with suggested replies: it has every kind of block.
    shown: list[tuple[int, str, int, list[Block], Block]] = []
    for post in state.posts():
        raw = post.body.get("blocks")
        if post.body.get("thread_ts") or not raw:
            continue
        blocks = json.loads(raw) if isinstance(raw, str) else list(raw)
        heads = card_heads(blocks)
        for head in heads:
            full = head["type"] == "actions"
            rank = 2 * full + ("send_suggestion" in json.dumps(head))
            shown.append((rank, str(post.body["channel"]), len(heads), blocks, head))
    if shown:
        _, where_to, held, blocks, head = max(shown, key=lambda found: found[0])
        card = card_in(blocks, int(str(head["block_id"]).rsplit(".", 1)[1]))
        form = "a full card" if head["type"] == "actions" else "a card shown as a row"
        where = f" (its message held {held} cards)" if held > 1 else ""
        name = state.channel_name(where_to)
        out.print(f"\n{form} as chat.postMessage sent it to {name}{where} (Block Kit JSON):")
        out.print_json(data={"channel": where_to, "blocks": card})


def _until(timer: sla.Timer, now: datetime) -> str:
    minutes = int((timer.due_at - now).total_seconds() // 60)
    return f"in {minutes} min" if minutes >= 0 else f"{-minutes} min overdue"


@sla_app.command("list")
def sla_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines: one timer per line.")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Conversations and incidents waiting for a first response, soonest deadline first."""
    with _errors():
        settings = _settings(database)
        timers = SlaTimers(database=open_database(settings)).pending()
        now = now_utc()
        if as_json:
            for timer in timers:
                step = timer.next_step
                line = {
                    "subject": timer.subject,
                    "due_at": timer.due_at.isoformat(),
                    "overdue": timer.due_at <= now,
                    "next_step": str(step) if step else None,
                    "priority": timer.priority,
                    "playbook": timer.playbook,
                    "channel": timer.channel,
                }
                sys.stdout.write(json.dumps(line) + "\n")
            return
        table = Table(title=f"{len(timers)} SLA timer(s) pending")
        for column in ("subject", "due (UTC)", "", "next step", "priority", "playbook"):
            table.add_column(column)
        for timer in timers:
            step = timer.next_step
            table.add_row(
                timer.subject,
                f"{timer.due_at:%Y-%m-%d %H:%M}",
                _until(timer, now),
                str(step) if step else "(note the breach)",
                timer.priority or "-",
                timer.playbook or "-",
            )
        out.print(table)


@sla_app.command("check")
def sla_check(database: DatabaseOption = None) -> None:
    """Run every overdue escalation step now and deliver it (`earful run` does this on time)."""
    with _errors():
        settings = _settings(database)
        db = open_database(settings)
        timers = SlaTimers(database=db)
        breaches = []
        while fired := timers.fire_due():
            breaches += fired
        surface = _team_sink(settings) or build_slack_surface(settings, db)
        delivery = build_deliverer(db, team_sink=surface).drain(max_wait=0)
        out.print(
            f"{len(breaches)} escalation step(s) ran; {delivery.delivered} delivered, "
            f"{delivery.retried} to retry, {delivery.failed} failed"
        )
        if delivery.failed:
            raise typer.Exit(1)


@corrections_app.command("export")
def corrections_export(
    target: Annotated[str, typer.Option("--out", help="Output file, or - for stdout.")] = "-",
    database: DatabaseOption = None,
) -> None:
    """Every label correction made in Slack, oldest first, as JSON Lines (interaction_id, text,
    field, old, new, at)."""
    with _errors():
        settings = _settings(database)
        db = open_database(settings)
        try:
            sink = sys.stdout if target == "-" else Path(target).open("w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise InputError(target, exc.strerror or "cannot be written") from None
        written = 0
        try:
            with db.transaction() as session:
                for row in corrections.export(session):
                    line = {
                        "interaction_id": row.interaction_id,
                        "text": row.text,
                        "field": row.field,
                        "old": row.old,
                        "new": row.new,
                        "at": row.at.isoformat(),
                    }
                    sink.write(json.dumps(line, ensure_ascii=False) + "\n")
                    written += 1
        finally:
            if sink is not sys.stdout:
                sink.close()
        err.print(f"{written} correction(s) exported", highlight=False)


@sources_app.command("check")
def sources_check(sources: SourcesOption = None, database: DatabaseOption = None) -> None:
    """Validate the sources file and credentials, and print what each source would watch."""
    with _errors():
        settings = _settings(database, sources=sources)
        if settings.sources_file is None:
            raise ConfigError("no sources file: pass --sources FILE or set EARFUL_SOURCES_FILE")
        config = load_sources(settings.sources_file)
        found = build_sources(settings, config)
        problems = 0
        for source in found:
            for line in source.describe():
                out.print(f"{source.name}: {line}", highlight=False)
            try:
                source.check()
            except ConfigError as exc:
                problems += 1
                err.print(f"[red]{source.name}: {exc}[/red]", highlight=False)
            else:
                out.print(f"{source.name}: [green]credentials and address work[/green]")
        intake = Intake(database=Database(url=settings.resolved_database_url))
        endpoints = build_endpoints(settings, config, intake)
        for endpoint in endpoints:
            out.print(f"earful run takes {endpoint.label}", highlight=False)
        replies = sorted(build_reply_sink(settings).sinks)
        out.print(f"replies posted back to: {', '.join(replies) or 'none (logged only)'}")
        if not found and not endpoints:
            out.print("the sources file watches nothing")
        if problems:
            raise typer.Exit(1)


@outbox_app.command("failed")
def outbox_failed(database: DatabaseOption = None) -> None:
    """List the effects that failed for good, with their reasons."""
    with _errors():
        db = open_database(_settings(database))
        with db.transaction() as session:
            rows = outbox.failed(session)
        for effect_id, kind, ordering_key, reason in rows:
            out.print(f"{effect_id}\t{kind}\t{ordering_key}\t{reason or ''}", highlight=False)
        err.print(f"{len(rows)} failed effect(s)")


@outbox_app.command("retry")
def outbox_retry(
    kind: Annotated[
        str | None, typer.Option(help="Only effects of this kind (card, reply, ticket …).")
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Put failed effects back in line (after fixing a channel, a token …); `earful run` or
    the next command that delivers sends them, in order."""
    with _errors():
        db = open_database(_settings(database))
        now = now_utc()
        with db.transaction() as session:
            retried = outbox.retry_failed(session, at=now, kind=kind)
            # A reply back in line is sent again; if it fails again, it is reopened again.
            sent_again = [e for e in retried if e.kind == effects.REPLY]
            replies.clear_undelivered(
                session, [e.payload["interaction_id"] for e in sent_again], at=now
            )
            outbox.enqueue_all(
                session,
                [s for e in sent_again for s in workbench.reply_retried_status(session, e)],
                at=now,
            )
            count = len(retried)
            audit.record(
                session,
                actor=_actor(),
                origin="cli",
                action="outbox.retry",
                details={"kind": kind, "effects": count},
                at=now,
            )
        out.print(f"{count} failed effect(s) queued again")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="earful")


if __name__ == "__main__":
    main()
