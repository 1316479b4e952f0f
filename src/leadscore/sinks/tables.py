"""Reading and writing the two tables, whatever the target: the functions callers use.

:func:`read_scored_leads`, :func:`read_history`, :func:`latest_as_of` and
:func:`previous_stages` read through DuckDB (DuckDB, Parquet and CSV targets) or SQLAlchemy;
:func:`write_scored_leads` writes one whole run through :func:`open_run`;
:func:`attach_previous_stages` fills a run's previous stages from :func:`previous_stages`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from leadscore.errors import DataError
from leadscore.io import sqlite_file
from leadscore.sinks.duckdb_sink import _duckdb_view, _id_filter_duckdb, _previous_stages_duckdb
from leadscore.sinks.run import open_run
from leadscore.sinks.schema import (
    _LATEST_KEY,
    CLOSED_TABLE,
    HISTORY_TABLE,
    LATEST_TABLE,
    _conform_read,
    _empty_frame,
    _select_list,
    validate_scored_leads,
)
from leadscore.sinks.sql import (
    _closed_table,
    _newest_first,
    _previous_stages_sql,
    _read_sql,
    _sql_connection,
    _sql_tables,
)
from leadscore.sinks.target import (
    RunKey,
    SinkTarget,
    WriteSummary,
    _missing_target,
    _to_stamp,
    parse_target,
)


@contextmanager
def _sql_reading(sink: SinkTarget, table: str) -> Iterator[Any | None]:
    """A read connection to an SQL target that holds ``table``, or ``None`` before that
    (no SQLite file yet, or no such table): the check every query of the target's tables
    makes before its first run, in one place. An SQLite file is not created by reading."""
    import sqlalchemy as sa

    sqlite = sqlite_file(sink.location)
    if sqlite is not None and not sqlite.is_file():
        yield None
        return
    with _sql_connection(sink, write=False) as con:
        yield con if sa.inspect(con).has_table(table) else None


def attach_previous_stages(scored: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Fill ``previous_stage`` and ``stage_changed`` of ``scored`` from :func:`previous_stages`.

    A lead scored for the first time gets no previous stage and ``stage_changed`` False, so
    the column says "moved between stages", never "is new".
    """
    if "stage" not in scored or "lead_id" not in scored:
        raise DataError(
            "scored leads: attach_previous_stages needs lead_id and stage",
            "Assign stages before attaching the previous ones.",
        )
    lookup = previous.drop_duplicates("lead_id").set_index("lead_id")["stage"]
    out = scored.copy()
    prev = out["lead_id"].astype("str").map(lookup).astype("str")
    out["previous_stage"] = prev.to_numpy()
    out["stage_changed"] = (prev.notna() & (prev != out["stage"].astype("str"))).to_numpy()
    return out


def read_scored_leads(
    target: str | os.PathLike[str] | SinkTarget | None = None,
    lead_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The latest scored row per lead (``scored_leads``), ordered by lead_id.

    ``lead_ids`` limits the read to those leads (the ``explain`` card needs one).
    """
    return _read_table(target, LATEST_TABLE, lead_ids, "lead_id")


def read_history(
    target: str | os.PathLike[str] | SinkTarget | None = None,
    lead_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every scored row of every run (``scored_leads_history``), by lead_id then as_of."""
    return _read_table(
        target, HISTORY_TABLE, lead_ids, "lead_id, as_of, scored_at, model_name, model_version"
    )


def closed_by(
    target: str | os.PathLike[str] | SinkTarget | None, lead_id: str
) -> pd.Timestamp | None:
    """The as-of of the latest run that knew ``lead_id`` closed (``scored_leads_closed``), or
    ``None`` when no run did: a lead closed before the first run it would have been in is
    recorded there, never in the history, and ``explain`` says so rather than "not scored"."""
    return _latest_moment(target, CLOSED_TABLE, "closed_by", "lead_id", str(lead_id))


def recorded_closed(
    target: str | os.PathLike[str] | SinkTarget | None,
    as_of: pd.Timestamp | str,
    lead_ids: Iterable[str],
) -> list[str]:
    """The leads of ``lead_ids`` that a run at or before ``as_of`` recorded as closed
    (``scored_leads_closed``) and that no run has scored since (they are not in
    ``scored_leads``), sorted; empty when the target does not exist yet.

    A scorer asks it of the leads it is about to score as open: outcomes lost by an export
    gone wrong (a table left out, emptied, or loaded in part) reopen closed leads, and the
    target's records are the evidence that they had closed. A lead scored open again once
    (a reopened deal) is in ``scored_leads`` and is not asked about again."""
    sink = parse_target(target)
    stamp = _to_stamp(as_of).to_pydatetime()
    ids = [str(i) for i in lead_ids]
    if sink.kind == "sql":
        import sqlalchemy as sa

        from leadscore.sinks.sql import _with_ids_sql

        closed = _closed_table(sa.MetaData())
        with _sql_reading(sink, closed.name) as con:
            if con is None:
                return []
            wanted = _with_ids_sql(con, ids)
            query = sa.select(closed.c.lead_id).where(
                closed.c.closed_by <= stamp, closed.c.lead_id.in_(sa.select(wanted.c.lead_id))
            )
            _, latest, _ = _sql_tables(sa.MetaData(), "r")
            if sa.inspect(con).has_table(latest.name):
                query = query.where(closed.c.lead_id.not_in(sa.select(latest.c.lead_id)))
            return sorted(str(i) for i in con.execute(query).scalars())
    with _duckdb_view(sink) as (con, sources):
        source = sources[CLOSED_TABLE]
        if source is None:
            return []
        where = _id_filter_duckdb(con, ids)
        latest_source = sources[LATEST_TABLE]
        if latest_source is not None:
            where += f" AND lead_id NOT IN (SELECT lead_id FROM {latest_source})"
        rows = con.execute(
            f"SELECT CAST(lead_id AS VARCHAR) FROM {source} WHERE closed_by <= $as_of AND "
            f"{where} ORDER BY 1",
            {"as_of": stamp},
        ).fetchall()
    return [str(r[0]) for r in rows]


def latest_as_of(
    target: str | os.PathLike[str] | SinkTarget | None, model_name: str
) -> pd.Timestamp | None:
    """The as-of of the newest run of ``model_name`` in the target, or None before its first.

    A lead whose own latest as-of is older was left out of that run: the scorer stops scoring
    a lead once it has closed, so its row in ``scored_leads`` is its last score, not a current
    one, and a lead card must say so.
    """
    return _latest_moment(target, HISTORY_TABLE, "as_of", "model_name", model_name)


def run_transitions(
    target: str | os.PathLike[str] | SinkTarget | None, run: RunKey
) -> dict[tuple[str | None, str], int]:
    """Leads per (previous stage, stage) among ``run``'s rows as the target holds them
    (``None``: scored for the first time).

    A run counts its moves as it writes them; when its commit set previous stages from a run
    that committed meanwhile (:attr:`WriteSummary.restaged_rows`), this count is the one
    ``scored_leads_history`` holds.
    """
    sink = parse_target(target)
    as_of = run.as_of.to_pydatetime()
    if sink.kind == "sql":
        import sqlalchemy as sa

        history, _, _ = _sql_tables(sa.MetaData(), "t")
        query = (
            sa.select(history.c.previous_stage, history.c.stage, sa.func.count())
            .where(
                history.c.as_of == as_of,
                history.c.model_name == run.model_name,
                history.c.model_version == run.model_version,
            )
            .group_by(history.c.previous_stage, history.c.stage)
        )
        with _sql_connection(sink, write=False) as con:
            rows: Sequence[Any] = con.execute(query).all()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[HISTORY_TABLE]
            if source is None:
                raise _missing_target(sink)
            rows = con.execute(
                "SELECT CAST(previous_stage AS VARCHAR), CAST(stage AS VARCHAR), count(*) "
                f"FROM {source} WHERE as_of = ? AND model_name = ? AND model_version = ? "
                "GROUP BY ALL",
                [as_of, run.model_name, run.model_version],
            ).fetchall()
    return {(before, str(stage)): int(n) for before, stage, n in rows}


def _latest_moment(
    target: str | os.PathLike[str] | SinkTarget | None,
    table: str,
    column: str,
    key: str,
    value: str,
) -> pd.Timestamp | None:
    """``max(column)`` over the rows of the target's ``table`` (the history or the closed
    records) whose ``key`` is ``value``; ``None`` without such a table or row."""
    sink = parse_target(target)
    if sink.kind == "sql":
        import sqlalchemy as sa

        metadata = sa.MetaData()
        history, _, _ = _sql_tables(metadata, "r")
        records = {HISTORY_TABLE: history, CLOSED_TABLE: _closed_table(metadata)}[table]
        with _sql_reading(sink, records.name) as con:
            if con is None:
                return None
            query = sa.select(sa.func.max(records.c[column])).where(records.c[key] == value)
            found = con.execute(query).scalar()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[table]
            if source is None:
                return None
            found = con.execute(
                f"SELECT max({column}) FROM {source} WHERE CAST({key} AS VARCHAR) = ?", [value]
            ).fetchall()[0][0]
    return None if found is None else _to_stamp(found)


def _read_table(
    target: str | os.PathLike[str] | SinkTarget | None,
    table: str,
    lead_ids: Iterable[str] | None,
    order_by: str,
) -> pd.DataFrame:
    """One of the two tables from any sink, in the canonical dtypes (DuckDB reads files too)."""
    sink = parse_target(target)
    if sink.kind == "sql":
        return _read_sql(sink, table, lead_ids)
    with _duckdb_view(sink) as (con, sources):
        source = sources[table]
        if source is None:
            raise _missing_target(sink)
        where = _id_filter_duckdb(con, lead_ids)
        frame = con.execute(
            f"SELECT {_select_list()} FROM {source} WHERE {where} ORDER BY {order_by}"
        ).df()
    return _conform_read(frame)


def previous_stages(
    target: str | os.PathLike[str] | SinkTarget | None,
    as_of: pd.Timestamp | str,
    *,
    lead_ids: Iterable[str] | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Each lead's stage at its latest scoring strictly before ``as_of``.

    Strictly before, so that re-running the same as-of sees the same previous stages and
    writes the same rows (idempotence). Empty (columns lead_id, stage) when the target does
    not exist yet.

    Parameters
    ----------
    target : where the scores are kept (see :func:`parse_target`).
    as_of : the as-of of the run about to be written.
    lead_ids : only these leads (a scorer working in chunks asks per chunk).
    model_name : only scores by this model; None takes any model, as the written
        ``previous_stage`` does (:func:`write_scored_leads`).
    """
    sink = parse_target(target)
    stamp = _to_stamp(as_of)
    if sink.kind == "sql":
        return _previous_stages_sql(sink, stamp, lead_ids, model_name)
    with _duckdb_view(sink) as (con, sources):
        history, latest = sources[HISTORY_TABLE], sources[LATEST_TABLE]
        if history is None:
            return _empty_frame(("lead_id", "stage"))
        ids = _id_filter_duckdb(con, lead_ids)
        where = f"as_of < $as_of AND {ids}"
        params: dict[str, Any] = {"as_of": stamp.to_pydatetime()}
        # without the latest table (dropped to reset it; the next commit rebuilds it) the
        # history alone answers, as it does for files
        if model_name is None and sink.kind == "duckdb" and latest is not None:
            sql = _previous_stages_duckdb(con, latest, history, sources[CLOSED_TABLE], ids)
        else:
            if model_name is not None:
                where += " AND model_name = $model_name"
                params["model_name"] = model_name
            sql = (
                f"SELECT lead_id, arg_max(stage, {_LATEST_KEY}) AS stage FROM {history} "
                f"WHERE {where} GROUP BY lead_id"
            )
        frame = con.execute(
            "SELECT CAST(lead_id AS VARCHAR) AS lead_id, CAST(stage AS VARCHAR) AS stage "
            f"FROM ({sql}) ORDER BY lead_id",
            params,
        ).df()
    return _conform_read(frame)


def write_scored_leads(
    scored: pd.DataFrame,
    target: str | os.PathLike[str] | SinkTarget | None = None,
    *,
    closed: Iterable[str] | None = None,
) -> WriteSummary:
    """Write one run's scored leads atomically; see :func:`open_run` for large runs.

    The history rows of the same run key are replaced (re-runs are idempotent), the new rows
    appended, and ``scored_leads`` updated to each lead's latest row. ``previous_stage`` and
    ``stage_changed`` are set at commit from what the target holds then: the stage of the
    lead's newest row before the run's as-of, by any model (the frame's own values, from
    :func:`attach_previous_stages`, are kept where they agree). ``closed`` names leads
    known closed (won or lost) by the run's as-of: they leave ``scored_leads``
    (:meth:`RunWriter.close_leads`). A bad frame raises a one-line :class:`DataError` and
    writes nothing.
    """
    frame = validate_scored_leads(scored)
    with open_run(target, RunKey.from_frame(frame)) as run:
        run.append(frame, validated=True)
        if closed is not None:
            run.close_leads(closed)
        return run.commit()


def target_runs(target: str | os.PathLike[str] | SinkTarget | None) -> pd.DataFrame:
    """The runs the target holds, one row each (``as_of``, ``model_name``, ``model_version``,
    ``leads``: its rows), ordered by as-of; empty before the first run.

    A scorer reads it before it scores, to say what its run does to the runs already there:
    an as-of another model already scored, a back-fill before later runs, a model switch.
    One grouped query on the history, never the rows themselves.
    """
    sink = parse_target(target)
    columns = ["as_of", "model_name", "model_version", "leads"]
    if sink.kind == "sql":
        import sqlalchemy as sa

        history, _, _ = _sql_tables(sa.MetaData(), "r")
        with _sql_reading(sink, history.name) as con:
            if con is None:
                return pd.DataFrame(columns=columns)
            keys = (history.c.as_of, history.c.model_name, history.c.model_version)
            query = sa.select(*keys, sa.func.count()).group_by(*keys)
            rows: Sequence[Any] = con.execute(query).all()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[HISTORY_TABLE]
            if source is None:
                return pd.DataFrame(columns=columns)
            rows = con.execute(
                "SELECT as_of, CAST(model_name AS VARCHAR), CAST(model_version AS VARCHAR), "
                f"count(*) FROM {source} GROUP BY ALL"
            ).fetchall()
    frame = pd.DataFrame(
        [(_to_stamp(a), str(n), str(v), int(c)) for a, n, v, c in rows], columns=columns
    )
    return frame.sort_values(["as_of", "model_name", "model_version"], ignore_index=True)


def run_moves_by_model(
    target: str | os.PathLike[str] | SinkTarget | None, run: RunKey
) -> dict[tuple[str | None, str, str | None, str | None], int]:
    """Leads per (previous stage, stage, previous model name, previous model version) among
    ``run``'s rows as the target holds them; the model is the one whose row gave the
    previous stage (the lead's newest row before the run's as-of), ``None`` for a lead
    scored for the first time.

    ``previous_stage`` is taken from any model, so a run after a model switch counts the new
    model's disagreements with the old one as moves; the history's ``model_name`` and
    ``model_version`` say which previous stages another model gave, so that the scorer can
    tell those moves apart from the leads' own.
    """
    sink = parse_target(target)
    as_of = run.as_of.to_pydatetime()
    if sink.kind == "sql":
        import sqlalchemy as sa

        history, _, _ = _sql_tables(sa.MetaData(), "t")
        mine = history.alias("mine")
        rows_of_run = sa.select(
            mine.c.previous_stage,
            mine.c.stage,
            _newest_earlier(history, mine, "model_name", as_of).label("name"),
            _newest_earlier(history, mine, "model_version", as_of).label("version"),
        ).where(
            mine.c.as_of == as_of,
            mine.c.model_name == run.model_name,
            mine.c.model_version == run.model_version,
        )
        per_lead = rows_of_run.subquery()
        keys = (per_lead.c.previous_stage, per_lead.c.stage, per_lead.c.name, per_lead.c.version)
        query = sa.select(*keys, sa.func.count()).group_by(*keys)
        with _sql_connection(sink, write=False) as con:
            rows: Sequence[Any] = con.execute(query).all()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[HISTORY_TABLE]
            if source is None:
                raise _missing_target(sink)
            rows = con.execute(
                "WITH mine AS (SELECT lead_id, CAST(previous_stage AS VARCHAR) AS before, "
                f"CAST(stage AS VARCHAR) AS stage FROM {source} WHERE as_of = $as_of AND "
                "model_name = $name AND model_version = $version), "
                "prev AS (SELECT lead_id, "
                f"CAST(arg_max(model_name, {_LATEST_KEY}) AS VARCHAR) AS name, "
                f"CAST(arg_max(model_version, {_LATEST_KEY}) AS VARCHAR) AS version "
                f"FROM {source} WHERE as_of < $as_of AND lead_id IN (SELECT lead_id FROM mine) "
                "GROUP BY lead_id) "
                "SELECT before, stage, name, version, count(*) FROM mine "
                "LEFT JOIN prev USING (lead_id) GROUP BY ALL",
                {"as_of": as_of, "name": run.model_name, "version": run.model_version},
            ).fetchall()
    return {
        (
            None if before is None else str(before),
            str(stage),
            None if name is None else str(name),
            None if version is None else str(version),
        ): int(n)
        for before, stage, name, version, n in rows
    }


def _newest_earlier(history: Any, mine: Any, column: str, as_of: Any) -> Any:
    """``column`` of the newest row before ``as_of`` of the lead of each row of ``mine``.

    One lookup per lead on the (lead_id, as_of) index: a window over the leads' earlier rows
    joined back to the run had SQLite compare every pair of rows (105 s for 20,000 leads on
    the second day, and growing with the history).
    """
    import sqlalchemy as sa

    earlier = history.alias()
    return (
        sa.select(earlier.c[column])
        .where(earlier.c.lead_id == mine.c.lead_id, earlier.c.as_of < as_of)
        .order_by(*_newest_first(earlier))
        .limit(1)
        .scalar_subquery()
    )


def sql_entries(
    target: str | os.PathLike[str] | SinkTarget | None,
    model_name: str,
    after: pd.Timestamp,
    until: pd.Timestamp,
) -> int:
    """How many times runs of ``model_name`` with an as-of in (``after``, ``until``] put a lead
    in SQL from another stage or from none: the new SQLs sales was handed over that time, a
    lead that fell back and came again counted each time it came (0 before the first run).
    A lead handed over at one as-of by two versions (a model switch re-scoring an as-of) is
    one hand-off: each (lead, as-of) counts once.

    A capacity policy promises sales so many SQLs per period; the scorer holds the runs of the
    period that ends at its as-of to it.
    """
    sink = parse_target(target)
    bounds = (after.to_pydatetime(), until.to_pydatetime())
    if sink.kind == "sql":
        import sqlalchemy as sa

        history, _, _ = _sql_tables(sa.MetaData(), "r")
        with _sql_reading(sink, history.name) as con:
            if con is None:
                return 0
            handed = (
                sa.select(history.c.lead_id, history.c.as_of)
                .where(
                    history.c.model_name == model_name,
                    history.c.as_of > bounds[0],
                    history.c.as_of <= bounds[1],
                    history.c.stage == "sql",
                    sa.or_(history.c.previous_stage.is_(None), history.c.previous_stage != "sql"),
                )
                .distinct()
                .subquery()
            )
            found = con.execute(sa.select(sa.func.count()).select_from(handed)).scalar()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[HISTORY_TABLE]
            if source is None:
                return 0
            found = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT lead_id, as_of FROM {source} "
                "WHERE CAST(model_name AS VARCHAR) = ? AND as_of > ? AND as_of <= ? "
                "AND CAST(stage AS VARCHAR) = 'sql' "
                "AND coalesce(CAST(previous_stage AS VARCHAR), '') <> 'sql')",
                [model_name, *bounds],
            ).fetchall()[0][0]
    return int(found or 0)


def leads_of_other_models(
    target: str | os.PathLike[str] | SinkTarget | None,
    model_name: str,
    lead_ids: Iterable[str],
) -> dict[str, int]:
    """Per model name other than ``model_name``, how many of ``lead_ids`` its runs scored
    into the target (none before the first run).

    ``scored_leads`` and the closed records key a lead by ``lead_id`` alone, so two data sets
    whose ids overlap cannot share a target: one's rows would replace the other's, and one's
    closed records would read as the other's outcomes gone missing. A scorer asks it of a
    model name new to the target before it scores.
    """
    sink = parse_target(target)
    ids = [str(i) for i in lead_ids]
    if sink.kind == "sql":
        import sqlalchemy as sa

        from leadscore.sinks.sql import _with_ids_sql

        history, _, _ = _sql_tables(sa.MetaData(), "r")
        with _sql_reading(sink, history.name) as con:
            if con is None:
                return {}
            wanted = _with_ids_sql(con, ids)
            query = (
                sa.select(history.c.model_name, sa.func.count(sa.distinct(history.c.lead_id)))
                .where(
                    history.c.model_name != model_name,
                    history.c.lead_id.in_(sa.select(wanted.c.lead_id)),
                )
                .group_by(history.c.model_name)
            )
            rows: Sequence[Any] = con.execute(query).all()
    else:
        with _duckdb_view(sink) as (con, sources):
            source = sources[HISTORY_TABLE]
            if source is None:
                return {}
            where = _id_filter_duckdb(con, ids)
            rows = con.execute(
                "SELECT CAST(model_name AS VARCHAR), count(DISTINCT lead_id) "
                f"FROM {source} WHERE model_name <> ? AND {where} GROUP BY ALL",
                [model_name],
            ).fetchall()
    return {str(name): int(n) for name, n in rows if n}
