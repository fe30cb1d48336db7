"""Contact search: full text over names, companies, numbers, notes and transcripts (FTS5 on
SQLite, tsvector on PostgreSQL), filters by tag, segment, owner and custom field, ranked.

The statement is built once by `search_statement` so the service, the export and the
benchmark's bare-SQL baseline all run the very same query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    Float,
    Integer,
    Select,
    and_,
    exists,
    func,
    literal_column,
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from contactd.crm import repo
from contactd.crm.searchtext import fold
from contactd.db.models import Segment, Tag, contact_tags
from contactd.db.session import Database
from contactd.errors import NotFoundError, ValidationError

MAX_TERMS: Final = 8
# Matches in interactions' text (notes, transcripts) rank after every match in the records
# themselves, newest first: the most recent INTERACTION_HITS are taken in rowid order, which
# FTS5 and the primary key walk without scoring every match of a common word.
INTERACTION_HITS: Final = 500
# Whole-word matches are ranked by bm25; words only begun ("Neum") can match a large share of
# the records, so those are taken in id order, at most PREFIX_HITS, ranked after the
# whole-word ones: scoring every prefix match costs ~15 µs each (700 ms for 40,000).
PREFIX_HITS: Final = 1000
_PREFIX_SCORE: Final = "-1e-7"
_RECENCY: Final = "-1e-18"  # -id * 1e-18: above any record match (FTS5 bm25 <= -1e-6)
# A single word this short, typed as you type, is answered from the B-tree on
# contacts.name_key (surname, first name, folded) in name order: as a full-text prefix it
# matches thousands of entries and ranking them all cost ~47 ms at 1M contacts.
SHORT_PREFIX: Final = 4
_PHONE_LIKE: Final = re.compile(r"[+\d][\d\s\-()./]{2,}")
_WORD: Final = re.compile(r"\w+")


@dataclass(frozen=True)
class Filters:
    query: str = ""
    tags: tuple[str, ...] = ()  # all of them
    owner_id: int | None = None
    organisation_id: int | None = None
    segment: str | None = None  # a saved segment's name; its filter is added to these
    custom: tuple[tuple[str, str], ...] = ()  # key = value (as text)
    kind: str | None = None  # buyer/supplier/partner: the contact's own, else its company's
    owners: tuple[int, ...] | None = None  # only contacts owned by these users (team scope)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Filters:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValidationError(f"unknown filter {', '.join(sorted(unknown))}")
        custom = data.get("custom") or {}
        return cls(
            query=str(data.get("query") or ""),
            tags=tuple(data.get("tags") or ()),
            owner_id=data.get("owner_id"),
            organisation_id=data.get("organisation_id"),
            segment=data.get("segment"),
            custom=tuple((str(k), str(v)) for k, v in dict(custom).items()),
            kind=data.get("kind"),
        )

    def merged(self, other: Filters) -> Filters:
        return Filters(
            query=" ".join(q for q in (self.query, other.query) if q),
            tags=tuple(dict.fromkeys(self.tags + other.tags)),
            owner_id=self.owner_id if self.owner_id is not None else other.owner_id,
            organisation_id=(
                self.organisation_id if self.organisation_id is not None else other.organisation_id
            ),
            custom=self.custom + other.custom,
            kind=self.kind if self.kind is not None else other.kind,
            owners=self.owners if self.owners is not None else other.owners,
        )


@dataclass(frozen=True, slots=True)
class SearchHit:
    contact_id: int
    first_name: str
    last_name: str
    organisation: str | None
    phone: str | None
    email: str | None
    owner_id: int | None
    score: float
    key: tuple[Any, ...] = ()  # this row's sort key: the next page starts after it

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or (self.organisation or "")


@dataclass
class SearchResult:
    hits: list[SearchHit] = field(default_factory=list)
    query_terms: list[str] = field(default_factory=list)


def terms(query: str) -> list[str]:
    """Search words, folded; a phone-like query becomes its digits (matching any stored form)."""
    out: list[str] = []
    for chunk in _PHONE_LIKE.findall(query):
        digits = re.sub(r"\D", "", chunk)
        digits = digits[2:] if digits.startswith("00") else digits
        if len(digits) >= 3:
            out.append(digits)
        query = query.replace(chunk, " ")
    out.extend(_WORD.findall(fold(query)))
    return list(dict.fromkeys(out))[:MAX_TERMS]


def fts5_query(words: list[str], *, prefix: bool = True) -> str:
    # Each word quoted (a prefix unless `prefix` is off): no FTS5 syntax from the user.
    star = "*" if prefix else ""
    return " ".join('"' + w.replace('"', '""') + '"' + star for w in words)


def tsquery(words: list[str]) -> str:
    return " & ".join(re.sub(r"[^\w]", "", w) + ":*" for w in words if re.sub(r"[^\w]", "", w))


def name_prefix(words: list[str], sort: Sort, after: Sequence[Any] | None) -> str | None:
    """The folded prefix to look up on contacts.name_key, when the query is one short word
    of letters ranked by relevance (a page past a full-text hit stays full text)."""
    if len(words) != 1 or sort is not Sort.RELEVANCE:
        return None
    word = words[0]
    if not (len(word) <= SHORT_PREFIX and word.isalpha()):
        return None
    if after is not None and not (after and isinstance(after[0], str)):
        return None
    return word


def _prefix_range(prefix: str) -> ColumnElement[bool]:
    """name_key starts with `prefix`: a range on the B-tree (byte order on both databases),
    up to the prefix with its last character's successor."""
    c = repo.contacts
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(c.c.name_key >= prefix, c.c.name_key < upper)


def _hits_sqlite() -> Any:
    return text(
        f"""SELECT rowid AS contact_id, bm25(contacts_fts, 4.0, 1.0) AS score
            FROM contacts_fts WHERE contacts_fts MATCH :qx
            UNION ALL
            SELECT contact_id, {_PREFIX_SCORE} FROM (
                SELECT rowid AS contact_id FROM contacts_fts WHERE contacts_fts MATCH :q
                ORDER BY rowid LIMIT {PREFIX_HITS})
            UNION ALL
            SELECT i.contact_id, m.id * {_RECENCY} FROM (
                SELECT rowid AS id FROM interactions_fts WHERE interactions_fts MATCH :q
                ORDER BY rowid DESC LIMIT {INTERACTION_HITS}) AS m
            JOIN interactions i ON i.id = m.id WHERE i.contact_id IS NOT NULL"""
    ).columns(contact_id=Integer, score=Float)


def _hits_postgres() -> Any:
    # ts_rank grows with relevance; negate it so that lower is better, as bm25 on SQLite.
    return text(
        f"""SELECT contact_id, -ts_rank(document, to_tsquery('simple', :q)) AS score
            FROM contacts_fts WHERE document @@ to_tsquery('simple', :q)
            UNION ALL
            SELECT i.contact_id, m.id * {_RECENCY} FROM (
                SELECT interaction_id AS id FROM interactions_fts
                WHERE document @@ to_tsquery('simple', :q)
                ORDER BY interaction_id DESC LIMIT {INTERACTION_HITS}) AS m
            JOIN interactions i ON i.id = m.id WHERE i.contact_id IS NOT NULL"""
    ).columns(contact_id=Integer, score=Float)


def _conditions(filters: Filters) -> list[ColumnElement[bool]]:
    c = repo.contacts
    out: list[ColumnElement[bool]] = [c.c.merged_into_id.is_(None)]
    for name in filters.tags:
        out.append(
            exists().where(
                contact_tags.c.contact_id == c.c.id,
                contact_tags.c.tag_id == select(Tag.id).where(Tag.name == name).scalar_subquery(),
            )
        )
    if filters.owner_id is not None:
        out.append(c.c.owner_id == filters.owner_id)
    if filters.owners is not None:
        out.append(c.c.owner_id.in_(filters.owners))
    if filters.organisation_id is not None:
        out.append(c.c.organisation_id == filters.organisation_id)
    for key, value in filters.custom:
        out.append(c.c.custom[key].as_string() == value)
    if filters.kind is not None:
        o = repo.organisations
        company = select(o.c.kind).where(o.c.id == c.c.organisation_id).scalar_subquery()
        out.append(func.coalesce(c.c.kind, company) == filters.kind)
    return out


class Sort(StrEnum):
    """Orders of the contact list; RELEVANCE without search words is NAME."""

    RELEVANCE = "relevance"
    NAME = "name"
    NEWEST = "newest"
    UPDATED = "updated"


def _sort_keys(sort: Sort, score: Any | None) -> tuple[list[Any], bool]:
    """The key columns of an order (unique: the id comes last) and whether it descends."""
    c = repo.contacts
    if sort is Sort.RELEVANCE and score is not None:
        return [score, c.c.id], False
    if sort is Sort.NEWEST:
        return [c.c.id], True
    if sort is Sort.UPDATED:
        return [c.c.updated_at, c.c.id], True
    return [c.c.last_name, c.c.first_name, c.c.id], False


def contact_columns() -> list[Any]:
    c, p, e = repo.contacts, repo.phones, repo.emails
    phone = (
        select(p.c.e164)
        .where(p.c.contact_id == c.c.id)
        .order_by(p.c.is_primary.desc(), p.c.id)
        .limit(1)
        .scalar_subquery()
    )
    email = (
        select(e.c.address)
        .where(e.c.contact_id == c.c.id)
        .order_by(e.c.is_primary.desc(), e.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return [
        c.c.id,
        c.c.first_name,
        c.c.last_name,
        repo.organisations.c.name.label("organisation"),
        phone.label("phone"),
        email.label("email"),
        c.c.owner_id,
    ]


def search_statement(
    filters: Filters,
    dialect: str,
    *,
    limit: int = 50,
    offset: int = 0,
    sort: Sort = Sort.RELEVANCE,
    after: Sequence[Any] | None = None,
    as_you_type: bool = False,
) -> tuple[Select[Any], dict[str, Any]]:
    """The one query behind search, export and segments, and its FTS parameter.

    Ranking, filtering and the page cut happen on ids and scores alone; names, company,
    first number and e-mail are looked up for the page only (not for every match). Rows
    end with their sort key; `after` (a previous row's key) starts the page past it. One short
    word is looked up as a name prefix (see `name_prefix`) unless `full_text` says not."""
    c = repo.contacts
    words = terms(filters.query)
    params: dict[str, Any] = {}
    prefix = name_prefix(words, sort, after) if as_you_type else None
    if prefix is not None:
        # Name order: the key is (name_key, id); every hit scores the same.
        keys, descending = [c.c.name_key, c.c.id], False
        page = select(
            c.c.id.label("contact_id"),
            literal_column("0.0", Float).label("score"),
            *(k.label(f"k{i}") for i, k in enumerate(keys)),
        ).where(_prefix_range(prefix), and_(*_conditions(filters)))
    elif words:
        hits = (_hits_postgres() if dialect == "postgresql" else _hits_sqlite()).subquery("hits")
        best = (
            select(hits.c.contact_id, func.min(hits.c.score).label("score"))
            .group_by(hits.c.contact_id)
            .subquery("best")
        )
        keys, descending = _sort_keys(sort, best.c.score)
        page = (
            select(
                c.c.id.label("contact_id"),
                best.c.score,
                *(k.label(f"k{i}") for i, k in enumerate(keys)),
            )
            .select_from(c.join(best, best.c.contact_id == c.c.id))
            .where(and_(*_conditions(filters)))
        )
        if dialect == "postgresql":
            params["q"] = tsquery(words)
        else:
            params["q"] = fts5_query(words)
            params["qx"] = fts5_query(words, prefix=False)
    else:
        keys, descending = _sort_keys(sort, None)
        page = select(
            c.c.id.label("contact_id"),
            literal_column("0.0", Float).label("score"),
            *(k.label(f"k{i}") for i, k in enumerate(keys)),
        ).where(and_(*_conditions(filters)))
    if after is not None:
        if len(after) != len(keys):
            raise ValidationError("the page position does not fit this sort", field="after")
        edge = tuple_(*keys)
        page = page.where(edge < tuple_(*after) if descending else edge > tuple_(*after))
    page = page.order_by(*(k.desc() if descending else k for k in keys))
    top = page.limit(limit).offset(offset).subquery("top")
    base = c.join(top, top.c.contact_id == c.c.id).outerjoin(
        repo.organisations, repo.organisations.c.id == c.c.organisation_id
    )
    top_keys = [top.c[f"k{i}"] for i in range(len(keys))]
    stmt = (
        select(*contact_columns(), top.c.score, *top_keys)
        .select_from(base)
        .order_by(*(k.desc() if descending else k for k in top_keys))
    )
    return stmt, params


class ContactSearch:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def resolve(self, filters: Filters) -> Filters:
        """Fold a named segment's saved filter into the given one."""
        if filters.segment is None:
            return filters
        async with self.db.session() as session:
            saved = await session.scalar(
                select(Segment.filter).where(Segment.name == filters.segment)
            )
        if saved is None:
            raise NotFoundError(f"no segment {filters.segment!r}")
        return Filters(**{**_as_kwargs(filters), "segment": None}).merged(Filters.from_dict(saved))

    async def search(
        self,
        filters: Filters | str,
        *,
        limit: int = 50,
        offset: int = 0,
        sort: Sort = Sort.RELEVANCE,
        after: Sequence[Any] | None = None,
        as_you_type: bool = False,
    ) -> SearchResult:
        """`as_you_type`: a person's search box (see `search_statement`)."""
        if isinstance(filters, str):
            filters = Filters(query=filters)
        filters = await self.resolve(filters)
        words = terms(filters.query)
        if filters.query and not words:
            return SearchResult()
        dialect = self.db.dialect
        stmt, params = search_statement(
            filters,
            dialect,
            limit=limit,
            offset=offset,
            sort=sort,
            after=after,
            as_you_type=as_you_type,
        )

        def read(session: Session) -> list[Any]:
            rows = list(session.execute(stmt, params))
            if (
                as_you_type
                and not rows
                and after is None
                and offset == 0
                and name_prefix(words, sort, after)
            ):
                # No name begins so: the same word as a full-text prefix (a company, an
                # e-mail, a note). Its pages carry full-text keys, so they stay full text.
                again, again_params = search_statement(filters, dialect, limit=limit, sort=sort)
                rows = list(session.execute(again, again_params))
            return rows

        rows = await self.db.read(read)
        return SearchResult([_hit(row) for row in rows], words)


def _hit(row: Sequence[Any]) -> SearchHit:
    cid, first, last, organisation, phone, email, owner, score, *key = row
    return SearchHit(cid, first, last, organisation, phone, email, owner, score, tuple(key))


def _as_kwargs(filters: Filters) -> dict[str, Any]:
    return {f.name: getattr(filters, f.name) for f in fields(filters)}
