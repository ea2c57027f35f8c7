"""Contacts and their identities: resolve a mention's author, import CRM records, take snapshots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.models import ContactSnapshot, ConversationState, Direction, Mention
from storage.schema import Contact, Conversation, Identity, InteractionRow, Organisation


@dataclass(frozen=True, slots=True)
class CrmRecord:
    """One validated customer record from a CRM export."""

    line: int
    name: str
    email: str | None
    x_handle: str | None
    telegram_handle: str | None
    company: str | None
    plan: str | None
    lifetime_value: Decimal | None
    last_order_date: date | None
    order_count: int | None

    def identities(self) -> list[tuple[str, str]]:
        """The (kind, normalised handle) pairs this record claims."""
        pairs = [("email", self.email), ("x", self.x_handle), ("telegram", self.telegram_handle)]
        return [(kind, normalise_handle(value)) for kind, value in pairs if value]


def normalise_handle(handle: str) -> str:
    """Handles and emails compare without case and without a leading ``@``."""
    return handle.strip().lstrip("@").lower()


def _identity_by_handle(session: Session, kind: str, handle: str) -> Identity | None:
    return session.scalar(select(Identity).where(Identity.kind == kind, Identity.handle == handle))


class _IdentityIndex:
    """The identities a batch of mentions may match, looked up in one query for the batch."""

    def __init__(self, session: Session, mentions: Sequence[Mention]) -> None:
        kinds = {m.platform.value for m in mentions}
        handles = {normalise_handle(m.author.handle) for m in mentions if m.author.handle}
        user_ids = {m.author.platform_user_id for m in mentions if m.author.platform_user_id}
        self.by_id: dict[tuple[str, str], Identity] = {}
        self.by_handle: dict[tuple[str, str], Identity] = {}
        if not (handles or user_ids):
            return
        found = session.scalars(
            select(Identity).where(
                Identity.kind.in_(kinds),
                or_(Identity.handle.in_(handles), Identity.platform_user_id.in_(user_ids)),
            )
        )
        for identity in found:
            self.add(identity)

    def add(self, identity: Identity) -> None:
        if identity.platform_user_id:
            self.by_id[(identity.kind, identity.platform_user_id)] = identity
        if identity.handle:
            self.by_handle[(identity.kind, identity.handle)] = identity

    def match_author(self, mention: Mention) -> Identity | None:
        """The stored identity of a mention's author, if any."""
        handle = normalise_handle(mention.author.handle) if mention.author.handle else None
        return self.match(mention.platform.value, handle, mention.author.platform_user_id)

    def match(self, kind: str, handle: str | None, user_id: str | None) -> Identity | None:
        if user_id and (kind, user_id) in self.by_id:
            return self.by_id[(kind, user_id)]
        if handle:
            return self.by_handle.get((kind, handle))
        return None


def resolve_authors(
    session: Session, mentions: Sequence[Mention], *, at: datetime
) -> list[int | None]:
    """The contact id of each mention's author, creating observed contacts for strangers.

    Matches the platform user id first (stable across renames), then the handle; fills in
    whichever of the two a stored identity lacked. None for an author with neither.
    """
    index = _IdentityIndex(session, mentions)
    resolved: list[Identity | None] = []
    created: list[tuple[Contact, Identity]] = []
    for mention in mentions:
        author, kind = mention.author, mention.platform.value
        handle = normalise_handle(author.handle) if author.handle else None
        user_id = author.platform_user_id
        if handle is None and user_id is None:
            resolved.append(None)
            continue
        identity = index.match(kind, handle, user_id)
        if identity is None:
            contact = Contact(
                name=author.display_name, origin="observed", created_at=at, updated_at=at
            )
            identity = Identity(kind=kind, handle=handle, platform_user_id=user_id, created_at=at)
            created.append((contact, identity))
        else:
            if user_id and identity.platform_user_id is None:
                identity.platform_user_id = user_id
            if handle and identity.handle != handle and index.match(kind, handle, None) is None:
                identity.handle = handle  # a rename; never steal another contact's handle
        index.add(identity)
        resolved.append(identity)
    if created:
        session.add_all([contact for contact, _ in created])
        session.flush()
        for contact, identity in created:
            identity.contact_id = contact.id
        session.add_all([identity for _, identity in created])
    session.flush()
    return [identity.contact_id if identity is not None else None for identity in resolved]


def lookup_authors(session: Session, mentions: Sequence[Mention]) -> list[int | None]:
    """The known contact of each mention's author, or None; reads only, creates nothing."""
    index = _IdentityIndex(session, mentions)
    return [
        identity.contact_id if (identity := index.match_author(mention)) is not None else None
        for mention in mentions
    ]


def snapshots(
    session: Session, contact_ids: Iterable[int | None], *, excluding: Collection[int] = ()
) -> dict[int, ContactSnapshot]:
    """What the history holds of each contact now, counting interactions already logged to them.

    Interactions in ``excluding`` (the ones being judged) do not count, even when an earlier
    attempt at judging them already logged them to their contact.
    """
    ids = {cid for cid in contact_ids if cid is not None}
    if not ids:
        return {}
    rows = session.execute(
        select(Contact, Organisation.name)
        .outerjoin(Organisation, Organisation.id == Contact.organisation_id)
        .where(Contact.id.in_(ids))
    ).all()
    counts: dict[tuple[int, str], int] = {
        (cid, direction): n
        for cid, direction, n in session.execute(
            select(InteractionRow.contact_id, InteractionRow.direction, func.count())
            .where(
                InteractionRow.contact_id.in_(ids),
                InteractionRow.id.not_in(excluding),
                InteractionRow.undelivered.is_(None),  # a reply the platform never got
            )
            .group_by(InteractionRow.contact_id, InteractionRow.direction)
        ).tuples()
        if cid is not None
    }
    sentiments = _recent_sentiments(session, ids)
    open_counts = {
        cid: int(n)
        for cid, n in session.execute(
            select(Conversation.contact_id, func.count())
            .where(
                Conversation.contact_id.in_(ids),
                Conversation.state.not_in(
                    [ConversationState.RESOLVED.value, ConversationState.DISMISSED.value]
                ),
            )
            .group_by(Conversation.contact_id)
        ).all()
    }
    return {
        contact.id: ContactSnapshot(
            contact_id=contact.id,
            name=contact.name,
            origin=contact.origin,
            organisation=organisation,
            plan=contact.plan,
            lifetime_value=contact.lifetime_value,
            last_order_date=contact.last_order_date,
            order_count=contact.order_count,
            inbound_count=counts.get((contact.id, Direction.INBOUND.value), 0),
            outbound_count=counts.get((contact.id, Direction.OUTBOUND.value), 0),
            past_positive=sentiments[contact.id]["positive"],
            past_neutral=sentiments[contact.id]["neutral"],
            past_negative=sentiments[contact.id]["negative"],
            open_conversations=int(open_counts.get(contact.id, 0)),
        )
        for contact, organisation in rows
    }


RECENT = 50


def _recent_sentiments(session: Session, ids: set[int]) -> dict[int, Counter[str]]:
    """Sentiment labels of each contact's newest ``RECENT`` classified inbound messages."""
    ranked = (
        select(
            InteractionRow.contact_id,
            InteractionRow.classification,
            func.row_number()
            .over(partition_by=InteractionRow.contact_id, order_by=InteractionRow.created_at.desc())
            .label("rank"),
        )
        .where(
            InteractionRow.contact_id.in_(ids),
            InteractionRow.direction == Direction.INBOUND.value,
            InteractionRow.classification.is_not(None),
        )
        .subquery()
    )
    result: dict[int, Counter[str]] = {cid: Counter() for cid in ids}
    for cid, classification in session.execute(
        select(ranked.c.contact_id, ranked.c.classification).where(ranked.c.rank <= RECENT)
    ).tuples():
        sentiment = (classification or {}).get("sentiment")
        if cid is not None and sentiment:
            result[cid][sentiment["label"]] += 1
    return result


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What a CRM import did."""

    created: int
    updated: int


def _organisation_id(session: Session, name: str | None, at: datetime) -> int | None:
    if not name:
        return None
    found = session.scalar(select(Organisation.id).where(Organisation.name == name))
    if found is not None:
        return found
    organisation = Organisation(name=name, created_at=at)
    session.add(organisation)
    session.flush()
    return organisation.id


def import_crm_records(
    session: Session, records: Sequence[CrmRecord], *, at: datetime
) -> ImportResult:
    """Create or update a contact per record, matched by any identity it claims.

    A record whose identities belong to two different stored contacts is a conflict the
    caller must see, so it raises ``ValueError`` naming the line; the transaction then rolls
    back whole.
    """
    created = updated = 0
    for record in records:
        claimed = record.identities()
        owners = {
            identity.contact_id: identity
            for kind, handle in claimed
            if (identity := _identity_by_handle(session, kind, handle)) is not None
        }
        if len(owners) > 1:
            raise ValueError(
                f"line {record.line}: its identities belong to {len(owners)} different contacts"
            )
        if owners:
            contact = session.get(Contact, next(iter(owners)))
            assert contact is not None  # noqa: S101 - identities reference contacts by FK
            updated += 1
        else:
            contact = Contact(origin="crm", created_at=at, updated_at=at)
            session.add(contact)
            created += 1
        contact.name = record.name
        contact.origin = "crm"
        contact.organisation_id = _organisation_id(session, record.company, at)
        contact.plan = record.plan
        contact.lifetime_value = record.lifetime_value
        contact.last_order_date = record.last_order_date
        contact.order_count = record.order_count
        contact.updated_at = at
        session.flush()
        for kind, handle in claimed:
            if _identity_by_handle(session, kind, handle) is None:
                session.add(
                    Identity(contact_id=contact.id, kind=kind, handle=handle, created_at=at)
                )
        session.flush()
    return ImportResult(created=created, updated=updated)
