"""CRM import: all rows or none, with a report naming every bad row."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers.crm_import import read_crm_csv
from storage import contacts
from storage.database import Database
from storage.schema import Contact, Identity, Organisation

FIXTURES = Path(__file__).parent / "fixtures" / "crm"
AT = datetime(2026, 11, 3, tzinfo=UTC)


def _read(path: Path) -> tuple[list[contacts.CrmRecord], list]:
    with path.open("rb") as stream:
        return read_crm_csv(stream, name=path.name)


def test_import_creates_contacts_identities_and_organisations(database: Database) -> None:
    """Imports each customer with their email, X and Telegram identities and company."""
    records, errors = _read(FIXTURES / "customers.csv")
    assert errors == []
    with database.transaction() as session:
        result = contacts.import_crm_records(session, records, at=AT)
    assert (result.created, result.updated) == (3, 0)
    with database.transaction() as session:
        hemi = session.scalar(select(Contact).where(Contact.name == "Ngata, Hemi"))
        assert hemi is not None
        assert hemi.lifetime_value == Decimal("3200.50")
        assert hemi.plan == "business"
        assert (
            session.scalar(select(Organisation.name).where(Organisation.id == hemi.organisation_id))
            == "Ngata Builders"
        )
        kinds = sorted(
            session.scalars(
                select(Identity.kind).join(Contact).where(Contact.name == "Elena Varga")
            )
        )
        assert kinds == ["email", "telegram", "x"]


def test_reimport_updates_instead_of_duplicating(database: Database) -> None:
    """Importing the same export twice updates the contacts it already has."""
    records, _ = _read(FIXTURES / "customers.csv")
    with database.transaction() as session:
        contacts.import_crm_records(session, records, at=AT)
    with database.transaction() as session:
        result = contacts.import_crm_records(session, records, at=AT)
        assert (result.created, result.updated) == (0, 3)
        assert session.scalar(select(func.count()).select_from(Contact)) == 3


def test_bad_rows_are_all_reported() -> None:
    """Names every bad row and its reason: empty name, bad email, money, date, and a handle claimed twice."""
    records, errors = _read(FIXTURES / "bad_rows.csv")
    assert [r.name for r in records] == ["Good Person"]
    assert [str(e) for e in errors] == [
        "bad_rows.csv:3: name is empty",
        "bad_rows.csv:4: email 'not-an-email' is not an email address",
        "bad_rows.csv:5: lifetime_value 'ten' is not a number",
        "bad_rows.csv:6: last_order_date '01/02/2026' is not a date (YYYY-MM-DD)",
        "bad_rows.csv:7: an email or handle of this row is already on line 2",
    ]


def test_wrong_header_is_one_clear_error(tmp_path: Path) -> None:
    """A file without the expected header gets one error naming the columns it needs."""
    path = tmp_path / "export.csv"
    path.write_text("full_name,mail\nA,a@example.com\n")
    records, errors = _read(path)
    assert records == []
    assert str(errors[0]).startswith("export.csv:1: CRM header must have 'name' and one of email")


def test_conflicting_identities_roll_back_the_whole_import(
    database: Database, tmp_path: Path
) -> None:
    """A row whose email and handle belong to two stored contacts stops the import; nothing is half-done."""
    records, _ = _read(FIXTURES / "customers.csv")
    with database.transaction() as session:
        contacts.import_crm_records(session, records, at=AT)
    path = tmp_path / "clash.csv"
    path.write_text(
        "name,email,x_handle\nNew Person,new@example.com,\nMixed Up,elena.varga@example.com,maya_okafor\n"
    )
    clash, errors = _read(path)
    assert errors == []
    with (
        pytest.raises(ValueError, match="line 3: its identities belong to 2 different contacts"),
        database.transaction() as session,
    ):
        contacts.import_crm_records(session, clash, at=AT)
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 3
