"""A workspace's rollup days (metering/reads/rollup.py), with no database import: the bare-driver
card (quick_read.py) finds its period's whole days with the same rule the rollups are read by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.sql.elements import ColumnElement


@dataclass(frozen=True, slots=True)
class Days:
    """A workspace's rollup days: each starts ``offset`` after midnight UTC (its reset time)."""

    offset: timedelta

    @classmethod
    def of(cls, anchor_at: datetime) -> Days:
        """Whole seconds only: SQLite's date arithmetic keeps milliseconds and would round
        23:59:59.9999 into the next day, so the database computes the day of the timestamp
        cut to its second, which is exact against a whole-second boundary. (An anchor with a
        fraction of a second leaves its periods a sub-second edge, read from the entries.)"""
        anchor = anchor_at.astimezone(UTC)
        return cls(timedelta(hours=anchor.hour, minutes=anchor.minute, seconds=anchor.second))

    def day_of(self, moment: datetime) -> date:
        return (moment.astimezone(UTC) - self.offset).date()

    def start(self, day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=UTC) + self.offset

    def first_full(self, since: datetime) -> date:
        """The first day wholly at or after ``since``."""
        day = self.day_of(since)
        return day if since == self.start(day) else day + timedelta(days=1)

    def sql(self, conn: Connection, column: Any) -> ColumnElement[Any]:
        """The day of a stored (naive UTC) timestamp, as the database computes it (the offset
        inlined: a number we made, and PostgreSQL groups by equal expressions only). The
        rollup triggers (migration 0010) compute the same day from the workspace's anchor."""
        from sqlalchemy import Date, cast, func, literal_column

        seconds = int(self.offset.total_seconds())
        if conn.dialect.name == "sqlite":
            whole_second = func.substr(column, 1, 19)  # 'YYYY-MM-DD HH:MM:SS'
            return func.date(whole_second, literal_column(f"'-{seconds} seconds'"))
        return cast(column - literal_column(f"INTERVAL '{seconds} seconds'"), Date)
