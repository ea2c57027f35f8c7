"""Reading dumps: every bad line is named, and the lines around it still come through."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.errors import InputError
from bot.models import Direction, Platform, VerifiedType
from handlers.file_import import parse_column_map, read_file

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def _read(content: bytes, name: str = "dump.jsonl", **kwargs: object) -> list:
    return list(
        read_file(Path(name), io.BytesIO(content), max_text_chars=20_000, received_at=NOW, **kwargs)  # type: ignore[arg-type]
    )


def _line(**record: object) -> bytes:
    return json.dumps(record).encode() + b"\n"


def test_bad_lines_are_named_and_good_lines_kept() -> None:
    """Names the line and the reason for non-JSON, missing id or text, a 2 MB text and invalid UTF-8."""
    content = b"".join(
        [
            _line(id="a", text="first good line"),
            b"{not json\n",
            _line(text="no id here"),
            _line(id="b"),
            _line(id="c", text="x" * 2_000_000),
            b'{"id": "d", "text": "caf\xe9"}\n',
            _line(id="e", text="last good line"),
        ]
    )
    records = _read(content)
    good = [r.mention.external_id for r in records if r.mention]
    errors = {r.line: str(r.error) for r in records if r.error}
    assert good == ["a", "e"]
    assert errors[2].startswith("dump.jsonl:2: not valid JSON")
    assert errors[3] == "dump.jsonl:3: id is missing"
    assert errors[4] == "dump.jsonl:4: text is missing"
    assert "text is 2,000,000 characters; the limit is 20,000" in errors[5]
    assert errors[6] == "dump.jsonl:6: not valid UTF-8 (byte 0xe9 at column 25)"


def test_contract_fields_become_a_mention() -> None:
    """Builds the mention and its author from the contract's fields; numeric ids become strings."""
    [record] = _read(
        _line(
            id=1853000000000000001,
            text="hello",
            platform="x",
            created_at="2026-11-02T08:14:05+01:00",
            conversation_id=1853000000000000000,
            in_reply_to="1853000000000000000",
            direction="outbound",
            url="https://x.com/a/status/1",
            author={
                "handle": "@Maya_Okafor",
                "name": "Maya",
                "id": 44,
                "followers": 1200,
                "verified_type": "business",
                "created_at": "2014-03-09T10:00:00Z",
                "location": "Leeds",
            },
        )
    )
    mention = record.mention
    assert mention.external_id == "1853000000000000001"
    assert mention.platform == Platform.X
    assert mention.direction == Direction.OUTBOUND
    assert mention.created_at == datetime(2026, 11, 2, 7, 14, 5, tzinfo=UTC)
    assert mention.conversation_id == "1853000000000000000"
    assert mention.author.handle == "Maya_Okafor"
    assert mention.author.platform_user_id == "44"
    assert mention.author.verified_type == VerifiedType.BUSINESS
    assert mention.raw["author"]["location"] == "Leeds"


def test_defaults_for_a_bare_record() -> None:
    """A record with only id and text gets platform 'other', inbound, and the time it was received."""
    [record] = _read(_line(id="1", text="hi"))
    assert record.mention.platform == Platform.OTHER
    assert record.mention.direction == Direction.INBOUND
    assert record.mention.created_at == NOW


def test_invalid_field_values_are_explained() -> None:
    """Rejects an unknown platform, a negative follower count and a bad timestamp with the field named."""
    records = _read(
        _line(id="1", text="t", platform="myspace")
        + _line(id="2", text="t", author={"followers": -5})
        + _line(id="3", text="t", created_at="yesterday")
        + b"[1, 2]\n"
    )
    errors = [str(r.error) for r in records]
    assert errors[0].startswith("dump.jsonl:1: platform input should be")
    assert errors[1].startswith(
        "dump.jsonl:2: author.followers input should be greater than or equal to 0"
    )
    assert errors[2].startswith("dump.jsonl:3: created_at")
    assert errors[3] == "dump.jsonl:4: expected a JSON object, got list"


def test_csv_with_column_map() -> None:
    """Reads a CSV export whose columns are named differently, mapped with --map."""
    content = (
        b"tweet_id,body,user,when\n"
        b"10,Where is my order?,shopper1,2026-11-02T10:00:00Z\n"
        b"11,,shopper2,2026-11-02T10:01:00Z\n"
        b'12,"multi\nline, with comma",shopper3,2026-11-02T10:02:00Z\n'
    )
    mapping = parse_column_map(
        ["id=tweet_id", "text=body", "author.handle=user", "created_at=when"]
    )
    records = _read(content, "export.csv", column_map=mapping)
    assert [r.mention.text for r in records if r.mention] == [
        "Where is my order?",
        "multi\nline, with comma",
    ]
    assert [str(r.error) for r in records if r.error] == ["export.csv:3: text is missing"]
    assert records[0].mention.author.handle == "shopper1"


def test_csv_with_a_wrong_header_is_refused_whole() -> None:
    """A CSV whose header lacks the text column is refused with line 1 and the columns it has."""
    with pytest.raises(
        InputError,
        match=r"export.csv:1: CSV header lacks 'text' \(column 'text'\); found: id, body",
    ):
        _read(b"id,body\n1,hello\n", "export.csv")


def test_csv_bad_rows() -> None:
    """Names a CSV row with invalid UTF-8 or too many fields and keeps the others."""
    content = b"id,text\n1,ok\n2,caf\xe9\n3,a,b\n4,fine\n"
    records = _read(content, "export.csv")
    assert [r.mention.external_id for r in records if r.mention] == ["1", "4"]
    assert [str(r.error) for r in records if r.error] == [
        "export.csv:3: not valid UTF-8",
        "export.csv:4: 3 fields; the header has 2",
    ]


def test_column_map_errors() -> None:
    """Rejects a --map that is not FIELD=COLUMN or names an unknown field."""
    with pytest.raises(InputError, match="is not FIELD=COLUMN"):
        parse_column_map(["text"])
    with pytest.raises(InputError, match="unknown field 'body'"):
        parse_column_map(["body=text"])
