"""Hourly request and error totals per component: error budgets without reading every window.

An error budget covers the SLO period (30 days by default) and is judged at
every closed window, while a month of one-minute windows is 43,200 rows and
windows are kept only ``telemetry.retention_s`` (7 days by default). So each
component's closed all-instance windows are also summed per hour in
``budget_hour``, and budgets read those sums: a month is 720 rows whatever
the window width, and it outlives the windows it summarises.

Hour ``h`` holds the windows whose end lies in ``(h, h + 1 h]`` (a window's
counts belong to the moment it ends, as in ``burn_rate``'s buckets).
``request_totals`` sums any range of window ends from the whole hours inside
it plus the windows of the partial hours at its two ends, so it equals the
sum over the windows themselves wherever they are still kept.

The hours are kept by SQLite triggers on ``metric_window``, not by the code
that writes windows: every way a closed window reaches the table (log windows
closed by a batched update, metric windows inserted closed, a row changed
after closing) adds to its hour in the same statement, hence the same
transaction, and only on the change that closes it. A beat re-run after a
crash therefore neither misses nor counts a window twice. Deleting windows
(retention) leaves the hours alone; ``prune`` drops hours no budget reaches.
A data directory made before this table gains it, its triggers and the sums
of the windows it still holds when it is opened (``install``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import BindParameter, bindparam, delete, func, union_all
from sqlalchemy import select as select_columns
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement
from sqlmodel import Field, Session, SQLModel, col, select

from storage.columns import UTCDateTime
from storage.tables import WindowRow

HOUR = timedelta(hours=1)
TABLE = "budget_hour"


class BudgetHourRow(SQLModel, table=True):
    """Requests and errors of one component's closed all-instance windows ending in one hour."""

    __tablename__ = TABLE
    component: str = Field(primary_key=True)
    hour: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    requests: int = 0
    errors: int = 0
    windows: int = 0


def _hour_sql(end: str) -> str:
    """The hour ``h`` with ``h < end <= h + 1 h``, from the stored text of a window end.

    The text is ``YYYY-MM-DD HH:MM:SS.ffffff``. Written on the text, not with SQLite's date functions, which read only
    milliseconds: an end exactly on the hour (minutes, seconds and fraction
    all zero) belongs to the hour before.
    """
    on_the_hour = f"substr({end}, 15, 5) = '00:00' AND rtrim(substr({end}, 20), '0.') = ''"
    before = f"strftime('%Y-%m-%d %H:00:00.000000', substr({end}, 1, 19), '-1 hour')"
    return f"CASE WHEN {on_the_hour} THEN {before} ELSE substr({end}, 1, 13) || ':00:00.000000' END"


_ADD_TO_HOUR = """
    ON CONFLICT (component, hour) DO UPDATE SET
        requests = requests + excluded.requests,
        errors = errors + excluded.errors,
        windows = windows + excluded.windows"""

_TRIGGERS = (
    f"""CREATE TRIGGER IF NOT EXISTS budget_hour_window_inserted
    AFTER INSERT ON metric_window WHEN NEW.closed AND NEW.instance = ''
    BEGIN
        INSERT INTO {TABLE} (component, hour, requests, errors, windows)
        VALUES (NEW.component, {_hour_sql('NEW."end"')}, NEW.count, NEW.errors, 1)
        {_ADD_TO_HOUR};
    END""",
    # A window closing, or a closed one amended: take out what it added, add what it is.
    f"""CREATE TRIGGER IF NOT EXISTS budget_hour_window_updated
    AFTER UPDATE OF closed, count, errors, component, instance, "end" ON metric_window
    WHEN (OLD.closed AND OLD.instance = '') OR (NEW.closed AND NEW.instance = '')
    BEGIN
        UPDATE {TABLE}
        SET requests = requests - OLD.count, errors = errors - OLD.errors, windows = windows - 1
        WHERE OLD.closed AND OLD.instance = ''
            AND component = OLD.component AND hour = {_hour_sql('OLD."end"')};
        INSERT INTO {TABLE} (component, hour, requests, errors, windows)
        SELECT NEW.component, {_hour_sql('NEW."end"')}, NEW.count, NEW.errors, 1
        WHERE NEW.closed AND NEW.instance = ''
        {_ADD_TO_HOUR};
    END""",
)

_BACKFILL = f"""
    INSERT INTO {TABLE} (component, hour, requests, errors, windows)
    SELECT component, {_hour_sql('"end"')}, sum(count), sum(errors), count(*)
    FROM metric_window WHERE closed AND instance = ''
    GROUP BY 1, 2"""


def install(connection: Connection) -> None:
    """Create the triggers and sum the windows already stored, in the caller's transaction.

    Called by ``storage.db`` in the transaction that creates the table, so a
    window is summed by the backfill or by a trigger, never by both.
    """
    for trigger in _TRIGGERS:
        connection.exec_driver_sql(trigger)
    connection.exec_driver_sql(_BACKFILL)


def _ceil_hour(moment: datetime) -> datetime:
    floor = moment.replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + HOUR


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _at(name: str) -> BindParameter[datetime]:
    return bindparam(name, type_=UTCDateTime)


def _windows_ending(edge: str) -> tuple[ColumnElement[bool], ...]:
    """The windows ending in (``<edge>_after``, ``<edge>_until``].

    ``<edge>_reach`` bounds their start (``_after`` less the widest window),
    so the (component, instance, start) index finds the few windows.
    """
    return (
        col(WindowRow.component) == bindparam("component"),
        col(WindowRow.instance) == "",
        col(WindowRow.closed).is_(True),
        col(WindowRow.start) >= _at(f"{edge}_reach"),
        col(WindowRow.start) < _at(f"{edge}_until"),
        col(WindowRow.end) > _at(f"{edge}_after"),
        col(WindowRow.end) <= _at(f"{edge}_until"),
    )


def _whole_hours() -> tuple[ColumnElement[bool], ...]:
    """The hours from ``first`` up to, not including, ``last``."""
    return (
        col(BudgetHourRow.component) == bindparam("component"),
        col(BudgetHourRow.hour) >= _at("first"),
        col(BudgetHourRow.hour) < _at("last"),
    )


# Built once, since a budget asks for several spans per judged window: whole
# hours plus the windows of the partial hours either side.
_WINDOWS = select_columns(col(WindowRow.count), col(WindowRow.errors))
_HOURS = select_columns(col(BudgetHourRow.requests), col(BudgetHourRow.errors))
_PARTS = union_all(
    _HOURS.where(*_whole_hours()),
    _WINDOWS.where(*_windows_ending("older")),
    _WINDOWS.where(*_windows_ending("newer")),
).subquery()
_SUMMED = select(func.coalesce(func.sum(_PARTS.c[0]), 0), func.coalesce(func.sum(_PARTS.c[1]), 0))


def _span_params(after: datetime, until: datetime, widest: timedelta) -> dict[str, datetime]:
    first, last = _ceil_hour(after), _floor_hour(until)
    if first >= last:  # no whole hour: every window from the table, nothing from the hours
        first = last = older_until = newer_after = until
    else:
        older_until, newer_after = first, last
    return {
        "first": first,
        "last": last,
        "older_after": after,
        "older_until": older_until,
        "older_reach": after - widest,
        "newer_after": newer_after,
        "newer_until": until,
        "newer_reach": newer_after - widest,
    }


def request_totals(
    session: Session, component: str, after: datetime, until: datetime, widest_s: float
) -> tuple[int, int]:
    """Requests and errors of the component's closed all-instance windows ending in (after, until].

    Whole hours come from ``budget_hour``, the partial hours at either end from
    the windows (``widest_s``: no stored window is wider). Windows of a
    partial hour that retention already deleted are not counted.
    """
    after, until = after.astimezone(UTC), until.astimezone(UTC)
    if until <= after:
        return 0, 0
    params = {"component": component, **_span_params(after, until, timedelta(seconds=widest_s))}
    summed = session.exec(_SUMMED, params=params).one()  # exec: pending windows flushed first
    return int(summed[0]), int(summed[1])


def prune(session: Session, oldest: datetime) -> int:
    """Drop the hours that end at or before ``oldest`` (no budget reaches back that far)."""
    stmt = delete(BudgetHourRow).where(col(BudgetHourRow.hour) <= oldest - HOUR)
    return int(session.exec(stmt).rowcount or 0)
