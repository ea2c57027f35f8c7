"""File import: JSON Lines and CSV dumps of mentions, read line by line into `Mention`s.

Every bad record becomes an `InputError` naming its line; the records around it still come
through, so one broken line never costs the rest of the file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from bot.errors import InputError
from bot.models import Author, Direction, Mention, Platform, VerifiedType


def _id_string(value: Any) -> Any:
    """Ids may arrive as JSON numbers (tweet ids often do); they are compared as strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return value


IdStr = Annotated[str, BeforeValidator(_id_string), Field(min_length=1, max_length=200)]
Count = Annotated[int | None, Field(ge=0)]


class AuthorIn(BaseModel):
    """The ``author`` object of the input contract; unknown keys are kept aside."""

    model_config = ConfigDict(extra="allow")

    handle: str | None = None
    name: str | None = None
    id: IdStr | None = None
    followers: Count = None
    following: Count = None
    posts: Count = None
    listed: Count = None
    verified: bool | None = None
    verified_type: VerifiedType | None = None
    created_at: datetime | None = None


class MetricsIn(BaseModel):
    """Engagement on the mention when it was exported (X's public_metrics, in short)."""

    model_config = ConfigDict(extra="allow")

    likes: Count = None
    reposts: Count = None
    replies: Count = None
    quotes: Count = None

    def total(self) -> int | None:
        """The sum of the counts given, None if none is."""
        given = [v for v in (self.likes, self.reposts, self.replies, self.quotes) if v is not None]
        return sum(given) if given else None


class MentionIn(BaseModel):
    """One input record of the JSON Lines contract (see ARCHITECTURE.md, CLI contract)."""

    model_config = ConfigDict(extra="allow")

    id: IdStr
    text: str = Field(min_length=1)
    platform: Platform = Platform.OTHER
    author: AuthorIn | None = None
    created_at: datetime | None = None
    url: str | None = Field(default=None, max_length=2048)
    conversation_id: IdStr | None = None
    in_reply_to: IdStr | None = None
    direction: Direction = Direction.INBOUND
    metrics: MetricsIn | None = None


def _aware(value: datetime | None) -> datetime | None:
    """Timestamps without a zone are taken as UTC, as most exports write them."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_mention(record: MentionIn, *, received_at: datetime, raw: Mapping[str, Any]) -> Mention:
    """Build the domain `Mention` from a validated input record."""
    author_in = record.author or AuthorIn()
    verified = author_in.verified_type or (
        VerifiedType.BLUE if author_in.verified else VerifiedType.NONE
    )
    author = Author(
        handle=author_in.handle.strip().lstrip("@") or None if author_in.handle else None,
        display_name=author_in.name,
        platform_user_id=author_in.id,
        followers=author_in.followers,
        following=author_in.following,
        posts=author_in.posts,
        listed=author_in.listed,
        verified_type=verified,
        account_created=_aware(author_in.created_at),
    )
    return Mention(
        platform=record.platform,
        external_id=record.id,
        text=record.text,
        author=author,
        created_at=_aware(record.created_at) or received_at,
        conversation_id=record.conversation_id,
        in_reply_to=record.in_reply_to,
        url=record.url,
        direction=record.direction,
        engagement=record.metrics.total() if record.metrics else None,
        raw=raw,
    )


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        field = ".".join(str(p) for p in error["loc"]) or "record"
        message = "is missing" if error["type"] == "missing" else error["msg"].lower()
        parts.append(f"{field} {message}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Record:
    """One line of an input file: a mention, or the error that kept it out."""

    line: int
    mention: Mention | None = None
    error: InputError | None = None


def parse_record(data: Any, *, where: str, max_text_chars: int, received_at: datetime) -> Mention:
    """Validate one decoded record and build its `Mention`, or raise `InputError`."""
    if not isinstance(data, dict):
        raise InputError(where, f"expected a JSON object, got {type(data).__name__}")
    text = data.get("text")
    if isinstance(text, str) and len(text) > max_text_chars:
        raise InputError(
            where,
            f"text is {len(text):,} characters; the limit is {max_text_chars:,} "
            "(EARFUL_MAX_TEXT_CHARS)",
        )
    try:
        record = MentionIn.model_validate(data)
    except ValidationError as exc:
        raise InputError(where, _explain(exc)) from None
    try:
        return to_mention(record, received_at=received_at, raw=data)
    except ValueError as exc:
        raise InputError(where, str(exc)) from None


def _record(line: int, data: Any, where: str, max_text_chars: int, received_at: datetime) -> Record:
    try:
        mention = parse_record(
            data, where=where, max_text_chars=max_text_chars, received_at=received_at
        )
    except InputError as error:
        return Record(line=line, error=error)
    return Record(line=line, mention=mention)


def _utf8_error(where: str, exc: UnicodeDecodeError) -> InputError:
    byte = exc.object[exc.start]
    return InputError(where, f"not valid UTF-8 (byte {byte:#04x} at column {exc.start + 1})")


def read_jsonl(
    stream: BinaryIO, *, max_text_chars: int, received_at: datetime, name: str = "input"
) -> Iterator[Record]:
    """Records of a JSON Lines stream, one per non-blank line."""
    for number, raw_line in enumerate(stream, start=1):
        where = f"{name}:{number}"
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = _utf8_error(where, exc)
            yield Record(line=number, error=error)
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Record(
                line=number,
                error=InputError(where, f"not valid JSON ({exc.msg} at column {exc.colno})"),
            )
            continue
        yield _record(number, data, where, max_text_chars, received_at)


def read_text_lines(
    stream: BinaryIO, *, max_text_chars: int, received_at: datetime, name: str = "input"
) -> Iterator[Record]:
    """Plain text, one mention per non-blank line; the line number is its id."""
    for number, raw_line in enumerate(stream, start=1):
        try:
            text = raw_line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            where = f"{name}:{number}"
            yield Record(
                line=number,
                error=_utf8_error(where, exc),
            )
            continue
        if not text.strip():
            continue
        yield _record(
            number,
            {"id": str(number), "text": text},
            f"{name}:{number}",
            max_text_chars,
            received_at,
        )


# Input contract field → CSV column, before any --map option is applied.
CSV_FIELDS: tuple[str, ...] = (
    "id",
    "text",
    "platform",
    "created_at",
    "url",
    "conversation_id",
    "in_reply_to",
    "direction",
    "author.handle",
    "author.name",
    "author.id",
    "author.followers",
    "author.following",
    "author.posts",
    "author.listed",
    "author.verified_type",
    "author.created_at",
)
REQUIRED_CSV_FIELDS = ("id", "text")


def parse_column_map(pairs: list[str]) -> dict[str, str]:
    """``["text=body", "author.handle=user"]`` → ``{"text": "body", "author.handle": "user"}``."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not column:
            raise InputError("--map", f"{pair!r} is not FIELD=COLUMN")
        if field not in CSV_FIELDS:
            raise InputError("--map", f"unknown field {field!r}; fields: {', '.join(CSV_FIELDS)}")
        mapping[field] = column
    return mapping


def read_csv(
    stream: BinaryIO,
    *,
    max_text_chars: int,
    received_at: datetime,
    column_map: Mapping[str, str] | None = None,
    name: str = "input",
) -> Iterator[Record]:
    """Records of a CSV file with a header row; ``column_map`` maps contract fields to columns.

    A header that lacks a required column is an error for the whole file (raised, nothing
    read); a bad row is an error for that row only.
    """
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    try:
        yield from _csv_records(csv.DictReader(text), max_text_chars, received_at, column_map, name)
    finally:
        text.detach()  # the caller owns the stream


def _csv_records(
    reader: csv.DictReader[str],
    max_text_chars: int,
    received_at: datetime,
    column_map: Mapping[str, str] | None,
    name: str,
) -> Iterator[Record]:
    header = reader.fieldnames or []
    mapping = {field: field for field in CSV_FIELDS} | dict(column_map or {})
    missing = [f for f in REQUIRED_CSV_FIELDS if mapping[f] not in header]
    if missing:
        wanted = ", ".join(f"{f!r} (column {mapping[f]!r})" for f in missing)
        raise InputError(
            f"{name}:1",
            f"CSV header lacks {wanted}; found: {', '.join(header) or 'nothing'}. "
            "Name the columns with --map FIELD=COLUMN",
        )
    for row in reader:
        number = reader.line_num
        where = f"{name}:{number}"
        values = [v for v in row.values() if isinstance(v, str)]
        if any(_has_surrogates(v) for v in values):
            yield Record(line=number, error=InputError(where, "not valid UTF-8"))
            continue
        if None in row:
            yield Record(
                line=number,
                error=InputError(
                    where, f"{len(header) + len(row[None])} fields; the header has {len(header)}"
                ),
            )
            continue
        data: dict[str, Any] = {}
        author: dict[str, Any] = {}
        for field, column in mapping.items():
            value = row.get(column)
            if value in (None, ""):
                continue
            if field.startswith("author."):
                author[field.removeprefix("author.")] = value
            else:
                data[field] = value
        if author:
            data["author"] = author
        yield _record(number, data, where, max_text_chars, received_at)


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def read_file(
    path: Path,
    stream: BinaryIO,
    *,
    max_text_chars: int,
    received_at: datetime,
    fmt: Literal["auto", "jsonl", "csv"] = "auto",
    column_map: Mapping[str, str] | None = None,
) -> Iterator[Record]:
    """Records of a dump, JSON Lines or CSV (by ``fmt``, else by the file's suffix)."""
    kind = fmt if fmt != "auto" else ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if kind == "csv":
        return read_csv(
            stream,
            max_text_chars=max_text_chars,
            received_at=received_at,
            column_map=column_map,
            name=path.name,
        )
    if column_map:
        raise InputError("--map", "column mapping applies to CSV input only")
    return read_jsonl(
        stream, max_text_chars=max_text_chars, received_at=received_at, name=path.name
    )
