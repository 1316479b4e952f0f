"""Where scored leads are written and read back.

A scoring run writes two tables with one schema, :data:`SCORED_LEADS_SCHEMA`:

* ``scored_leads_history``: append-only, one row per lead per run. A run is identified by
  its :class:`RunKey` ``(as_of, model_name, model_version)``; writing the same run again
  replaces that run's rows, so re-running a score for the same as-of is idempotent.
* ``scored_leads``: the latest row per lead across all runs (most recent ``as_of`` wins, then
  ``scored_at``), always derived from the history, so re-scoring an older as-of never
  overwrites a newer score; only leads still open at their latest scoring. A run that knows
  some leads closed (won or lost) by its as-of hands their ids over
  (:meth:`RunWriter.close_leads`); their rows leave ``scored_leads`` (the history keeps them),
  and the target records, per lead, the as-of of the run that knew (``scored_leads_closed``:
  ``lead_id``, ``closed_by``). A lead's latest row is left out while a record is newer than
  it, so a back-fill of an earlier as-of, when the lead was open, does not bring it back, and
  a lead scored again at a later as-of (reopened) is shown again. A lead no run mentions
  stays as it was.

Both tables and the closed records key a lead by ``lead_id`` alone: two data sets share a
target only with ids of their own (the scorer refuses a model name new to the target whose
leads other model names scored there, :func:`leads_of_other_models`).

``previous_stage`` is the stage of the lead's newest row strictly before the row's as-of, by
any model; :func:`run_moves_by_model` says which model gave it, so a scorer can tell the moves
a model switch makes from the leads' own (:func:`target_runs` lists the runs a target holds). A
commit keeps it true for the rows after the run's as-of too: a back-fill of an earlier as-of,
or a re-run that changes or drops leads, recomputes the later rows of those leads.

Targets are named by a string (:func:`parse_target`): a DuckDB file (the default,
``data/scored_leads.duckdb``), a ``.parquet`` or ``.csv`` file (the latest table; the history
is a folder beside it, ``NAME_history/``, with one file per run), or any SQLAlchemy URL
(PostgreSQL and SQLite are tested).

Writes are atomic. Chunks of a run are first staged in a Parquet file (bounded memory: the
scorer hands over chunks, never the whole run), then swapped in at :meth:`RunWriter.commit`:
in one transaction for DuckDB and SQL databases, by ``os.replace`` of complete files for
Parquet and CSV. A run killed at any point leaves the previous tables intact and readable;
readers see the old tables or the new ones (Parquet and CSV: each file is old or new; a
run killed between the two renames leaves the latest file one run behind until the next run).
Heavy lifting (duplicate checks, updating the latest table) runs in SQL (DuckDB for files),
never by loading the history into pandas.

Everything here takes and returns pandas DataFrames; nothing depends on how the scores were
made.

The package, one module per concern, imported bottom-up (no module imports one above it):
:mod:`~leadscore.sinks.schema` (the columns, validation, dtypes) and
:mod:`~leadscore.sinks.target` (targets, run keys, path checks) at the bottom; one module per
backend, :mod:`~leadscore.sinks.duckdb_sink` (DuckDB files, and DuckDB reading Parquet and CSV),
:mod:`~leadscore.sinks.files` (Parquet and CSV commits) and :mod:`~leadscore.sinks.sql`
(SQLAlchemy); :mod:`~leadscore.sinks.run` (staging and committing a run) and
:mod:`~leadscore.sinks.tables` (the read and write functions) on top. Everything callers use is
re-exported here: ``from leadscore.sinks import read_history``.
"""

from __future__ import annotations

from leadscore.sinks.run import RunWriter, check_target, open_run
from leadscore.sinks.schema import (
    ARROW_SCHEMA,
    CLOSED_TABLE,
    COLUMNS,
    DEFAULT_TARGET,
    HISTORY_TABLE,
    LATEST_TABLE,
    REASON_KEYS,
    REASONS_SEPARATOR,
    RUN_KEY_COLUMNS,
    SCORED_LEADS_SCHEMA,
    STAGES,
    Column,
    ColumnKind,
    data_set_of,
    schema_markdown,
    shown_model,
    validate_scored_leads,
)
from leadscore.sinks.tables import (
    attach_previous_stages,
    closed_by,
    latest_as_of,
    leads_of_other_models,
    previous_stages,
    read_history,
    read_scored_leads,
    recorded_closed,
    run_moves_by_model,
    run_transitions,
    sql_entries,
    target_runs,
    write_scored_leads,
)
from leadscore.sinks.target import RunKey, SinkTarget, TargetKind, WriteSummary, parse_target

__all__ = [
    "ARROW_SCHEMA",
    "CLOSED_TABLE",
    "COLUMNS",
    "DEFAULT_TARGET",
    "HISTORY_TABLE",
    "LATEST_TABLE",
    "REASONS_SEPARATOR",
    "REASON_KEYS",
    "RUN_KEY_COLUMNS",
    "SCORED_LEADS_SCHEMA",
    "STAGES",
    "Column",
    "ColumnKind",
    "RunKey",
    "RunWriter",
    "SinkTarget",
    "TargetKind",
    "WriteSummary",
    "attach_previous_stages",
    "check_target",
    "closed_by",
    "data_set_of",
    "latest_as_of",
    "leads_of_other_models",
    "open_run",
    "parse_target",
    "previous_stages",
    "read_history",
    "read_scored_leads",
    "recorded_closed",
    "run_moves_by_model",
    "run_transitions",
    "schema_markdown",
    "shown_model",
    "sql_entries",
    "target_runs",
    "validate_scored_leads",
    "write_scored_leads",
]
