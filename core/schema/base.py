"""The declarative base every table derives from, and the one rule for stored times: UTC."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; every time stored is UTC)."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso_utc(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset, the same on SQLite and PostgreSQL."""
    return as_utc(value).isoformat() if value else None
