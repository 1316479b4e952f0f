"""Scoring on a real local Spark: the same rows as the batch scorer, lead for lead."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.cli import main
from leadscore.config import parse_config
from leadscore.errors import DataError, ModelError
from leadscore.features import (
    build_training_examples,
    count_unrecognised_details,
    default_as_of_dates,
    warn_unrecognised_details,
)
from leadscore.io import load_closed_loop
from leadscore.monitoring import SizeCheck
from leadscore.scoring import (
    event_feature_chunks,
    flat_feature_chunks,
    load_scoring_model,
    run_scoring,
)
from leadscore.sinks import COLUMNS, read_history, read_scored_leads
from leadscore.specs import load_spec
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

pytestmark = pytest.mark.slow

JAVA_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "java.sh"
AS_OF = pd.Timestamp("2026-05-01")
LATER = pd.Timestamp("2026-06-01")
#: Columns that must agree exactly between a Spark run and a batch run of the same moment.
SAME = (
    "as_of",
    "model_name",
    "model_version",
    "score",
    "stage",
    "previous_stage",
    "stage_changed",
    "fit_score",
    "engagement_score",
    "reasons_for",
    "reasons_against",
    "reasons_json",
)


@pytest.fixture(scope="module")
def spark():
    """A real local Spark; ``scripts/java.sh`` installs Java first where it is missing."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        try:
            found = subprocess.run(
                ["bash", str(JAVA_SCRIPT)], capture_output=True, text=True, timeout=900
            )
        except subprocess.TimeoutExpired:
            pytest.skip("scripts/java.sh did not install Java within 15 minutes")
        if found.returncode != 0:
            why = (found.stderr.strip().splitlines() or ["no message"])[-1]
            pytest.skip(f"Spark needs Java 17+, which scripts/java.sh could not install: {why}")
    from leadscore.spark import local_spark_session

    session = local_spark_session(2, driver_memory="1g")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def event_world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Synthetic history, a model trained on it, and two batch runs a month apart."""
    root = tmp_path_factory.mktemp("spark_events")
    data_dir = root / "crm"
    write_synthetic(SynthParams(n_leads=3000, seed=5, start="2025-06-01"), data_dir, progress=False)
    events = load_closed_loop(data_dir)
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    config = parse_config(
        {
            "cold_start": {"min_wins": 20, "min_leads": 200},
            "quality_gate": {"allow_worse": True},
            "evaluation": {"resamples": 0},
        }
    )
    result = train(build_training_examples(events, dates, 60, name="crm"), config)
    scoring = load_scoring_model(result.model.save(root / "model"))
    target = str(root / "scores.duckdb")
    batches = {}
    for as_of in (AS_OF, LATER):
        run_scoring(
            scoring,
            event_feature_chunks(data_dir, as_of, chunk_leads=700),
            target=target,
            as_of=as_of,
            progress=False,
        )
        latest = read_scored_leads(target)
        batches[as_of] = latest[latest["as_of"] == as_of]
    history = read_history(target)
    return {"data": data_dir, "scoring": scoring, "batches": batches, "history": history}


def _frames(spark, data_dir: Path):
    return tuple(
        spark.read.parquet(str(data_dir / f"{name}.parquet"))
        for name in ("leads", "activities", "outcomes")
    )


def _as_text(values: pd.Series) -> np.ndarray:
    """Values as text, missing ones as one marker, so that any two sinks' dtypes compare."""
    return np.array([str(v) if pd.notna(v) else "<missing>" for v in values], dtype=object)


def _assert_same_rows(spark_rows: pd.DataFrame, batch: pd.DataFrame) -> None:
    assert list(spark_rows.columns) == list(COLUMNS)
    assert spark_rows["lead_id"].is_unique
    assert set(spark_rows["lead_id"]) == set(batch["lead_id"])
    ours = spark_rows.set_index("lead_id").sort_index()
    theirs = batch.set_index("lead_id").loc[ours.index]
    np.testing.assert_allclose(ours["probability"], theirs["probability"], rtol=0, atol=1e-12)
    for column in SAME:
        mismatched = (_as_text(ours[column]) != _as_text(theirs[column])).sum()
        assert mismatched == 0, f"{column}: {mismatched} lead(s) differ from the batch scorer"


def test_event_form_on_spark_matches_the_batch_scorer(spark, event_world):
    from leadscore.spark import score_events_spark

    leads, activities, outcomes = _frames(spark, event_world["data"])
    scored = score_events_spark(
        leads, activities, outcomes, event_world["scoring"], as_of=AS_OF, leads_per_bucket=400
    ).toPandas()
    batch = event_world["batches"][AS_OF]
    assert len(scored) > 200 and scored["reasons_for"].str.len().gt(0).any()
    _assert_same_rows(scored, batch)
    assert scored["previous_stage"].isna().all() and not scored["stage_changed"].any()


def test_the_as_of_cut_off_does_not_depend_on_the_driver_s_time_zone(spark, monkeypatch):
    """PySpark reads a naive datetime in the driver's local zone: on a Berlin laptop an
    as-of of 15:00 UTC became 13:00, and leads closed in between were scored as open."""
    import time

    from pyspark.sql import functions as F

    from leadscore.spark import utc_literal

    as_of = pd.Timestamp("2026-05-01 15:00")
    for zone in ("Europe/Berlin", "America/New_York", "UTC"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        try:
            shown = F.date_format(utc_literal(as_of), "yyyy-MM-dd HH:mm:ss").alias("t")
            assert spark.range(1).select(shown).first()["t"] == "2026-05-01 15:00:00", zone
        finally:
            monkeypatch.undo()
            time.tzset()


def test_a_crm_vocabulary_mapped_on_spark_scores_as_leadscores_own(spark, event_world):
    """The log in the company's own types, with sales calls leadscore must leave out, and
    its activity_types map: Spark scores exactly what the batch scorer scored on the log in
    leadscore's types. A type the map leaves unknown stops the job on the driver."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_events_spark

    leads, activities, outcomes = _frames(spark, event_world["data"])
    kind = F.col("activity_type")
    company = activities.withColumn(
        "activity_type",
        F.when(kind == "page_view", F.lit("Web Page Visit"))
        .when(kind == "email_open", F.lit(" EMAIL OPENED"))
        .otherwise(kind),
    ).unionByName(activities.limit(500).withColumn("activity_type", F.lit("Sales Call Logged")))
    vocabulary = pd.DataFrame(
        {
            "source_type": ["web page visit", "Email Opened", "sales call logged"],
            "activity_type": ["page_view", "email_open", "ignore"],
        }
    )
    scored = score_events_spark(
        leads,
        company,
        outcomes,
        event_world["scoring"],
        as_of=AS_OF,
        activity_types=spark.createDataFrame(vocabulary),
    ).toPandas()
    _assert_same_rows(scored, event_world["batches"][AS_OF])

    with pytest.raises(DataError, match=r"unknown type 'Sales Call Logged' \(500 rows\)") as err:
        score_events_spark(
            leads, company, outcomes, event_world["scoring"], as_of=AS_OF,
            activity_types=vocabulary.iloc[:2],
        )  # fmt: skip
    assert "\n" not in str(err.value) and "the activity_types DataFrame" in str(err.value)


def test_previous_stages_on_spark_match_the_batch_history(spark, event_world, tmp_path):
    from leadscore.spark import score_events_spark

    leads, activities, outcomes = _frames(spark, event_world["data"])
    # the whole history, this as-of's own batch rows included: only earlier rows may count
    event_world["history"].to_parquet(tmp_path / "history.parquet")
    earlier = spark.read.parquet(str(tmp_path / "history.parquet"))
    scored = score_events_spark(
        leads,
        activities,
        outcomes,
        event_world["scoring"],
        as_of=LATER,
        previous=earlier,
        with_reasons=True,
    ).toPandas()
    batch = event_world["batches"][LATER]
    _assert_same_rows(scored, batch)
    assert scored["stage_changed"].any(), "a month of activity moves some leads"
    assert scored["previous_stage"].isna().any(), "leads created since are scored first"


def _detail_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "leadscore knows" in r.getMessage()
    ]


def _unknown_page_details(activities: pd.DataFrame) -> pd.DataFrame:
    """``activities`` whose page details name no page leadscore knows (``pricingx``)."""
    pages = activities["activity_type"] == "page_view"
    out = activities.copy()
    out["detail"] = out["detail"].astype(object)
    out.loc[pages, "detail"] = out.loc[pages, "detail"].astype(str) + "x"
    return out


def test_unknown_page_details_are_warned_about_once_on_the_driver(spark, event_world, caplog):
    """The driver counts the page and form details of the log as its map types it and
    warns once, the line build_features gives for the whole log; the buckets' workers say
    nothing. The log in leadscore's words warns of nothing."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_events_spark

    leads, activities, outcomes = _frames(spark, event_world["data"])
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        score_events_spark(leads, activities, outcomes, event_world["scoring"], as_of=AS_OF)
    assert _detail_warnings(caplog) == []

    written = _unknown_page_details(pd.read_parquet(event_world["data"] / "activities.parquet"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        warn_unrecognised_details(count_unrecognised_details(written))
    (expected,) = _detail_warnings(caplog)
    kind = F.col("activity_type")
    detail = F.col("detail")
    company = activities.withColumn(
        "detail", F.when(kind == "page_view", F.concat(detail, F.lit("x"))).otherwise(detail)
    ).withColumn("activity_type", F.when(kind == "page_view", "Web Page Visit").otherwise(kind))
    vocabulary = pd.DataFrame({"source_type": ["Web Page Visit"], "activity_type": ["page_view"]})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        scored = score_events_spark(
            leads,
            company,
            outcomes,
            event_world["scoring"],
            as_of=AS_OF,
            with_reasons=False,
            leads_per_bucket=300,
            activity_types=vocabulary,
        ).toPandas()
    assert len(scored) > 200
    assert _detail_warnings(caplog) == [expected]
    assert "100%) name no page leadscore knows, most often" in expected


def test_a_bucket_is_scored_without_a_detail_warning(event_world, caplog):
    """What a worker runs on its bucket warns of no detail, however unknown: the driver
    has warned once already, and a warning per bucket would fill the executors' logs."""
    from leadscore.schema import ActivityTypeMap
    from leadscore.spark import _BUCKET, _event_scorer, _settings, _ShippedModel

    data = event_world["data"]
    leads = pd.read_parquet(data / "leads.parquet")
    leads = leads[leads["created_at"] <= AS_OF].head(100).assign(**{_BUCKET: 0})
    activities = _unknown_page_details(pd.read_parquet(data / "activities.parquet"))
    activities = activities[
        activities["lead_id"].isin(leads["lead_id"]) & (activities["occurred_at"] <= AS_OF)
    ].assign(**{_BUCKET: 0})
    assert (activities["activity_type"] == "page_view").sum() > 100
    score_bucket = _event_scorer(
        _ShippedModel.of(event_world["scoring"]),
        _settings(AS_OF, False, 3),
        ActivityTypeMap(place="the activity_types DataFrame"),
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        scored = score_bucket(leads, activities)
    assert len(scored) > 0
    assert _detail_warnings(caplog) == []


def _unit_warnings(caplog: pytest.LogCaptureFixture, column: str) -> list[float]:
    """How many times smaller ``column`` read, per warning of a column in other units."""
    said = [m for m in caplog.messages if "other units" in m]
    assert all(m.startswith(f"{column!r} is about ") for m in said), said
    return [float(re.search(r"about ([\d,.]+) times smaller", m)[1].replace(",", "")) for m in said]


def _empty_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in caplog.messages if "is empty for" in m]


def test_event_leads_in_other_units_or_empty_are_warned_about_on_the_driver(
    spark, event_world, caplog
):
    """The batch scorer's input checks, on Spark, before anything is scored: company size
    exported in thousands reads 1,000 times smaller than on the test fold, and an industry
    column that came empty is named."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_events_spark

    scoring = event_world["scoring"]
    assert "company_size" in SizeCheck(scoring.model.drift_reference).sizes
    leads, activities, outcomes = _frames(spark, event_world["data"])
    changed = leads.withColumn("company_size", F.col("company_size") / 1000).withColumn(
        "industry", F.lit(None).cast("string")
    )
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        score_events_spark(leads, activities, outcomes, scoring, as_of=AS_OF)
        assert _unit_warnings(caplog, "company_size") == []
        assert _empty_warnings(caplog) == []
        score_events_spark(changed, activities, outcomes, scoring, as_of=AS_OF)
    (times,) = _unit_warnings(caplog, "company_size")
    assert 500 <= times <= 2000
    open_leads = len(event_world["batches"][AS_OF])
    assert _empty_warnings(caplog) == [
        m for m in caplog.messages if m.startswith(f"'industry' is empty for all {open_leads:,} ")
    ]
    assert len(_empty_warnings(caplog)) == 1


@pytest.fixture(scope="module")
def flat_world(tmp_path_factory, shared_data_root: Path) -> dict[str, object]:
    """x_education trained and logged to MLflow by the CLI, then batch-scored."""
    root = tmp_path_factory.mktemp("spark_flat")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = root / "train.yaml"
    config.write_text("evaluation: {resamples: 0}\n")
    args = ["train", "--spec", "x_education", "--data-root", str(shared_data_root)]
    code = main(
        ["-q", *args, "--config", str(config), "--tracking-uri", uri, "--model-out", str(root)]
    )
    assert code == 0
    model_uri = "models:/leadscore-x_education@champion"
    scoring = load_scoring_model(model_uri, tracking_uri=uri)
    spec = load_spec("x_education", data_root=shared_data_root)
    history = pd.read_csv(spec.resolve(spec.source), dtype="str", keep_default_na=False)
    open_leads = root / "open_leads.csv"  # as the CRM exports them: no outcome yet
    history.drop(columns=[spec.label.column]).to_csv(open_leads, index=False)
    target = str(root / "scores.duckdb")
    run_scoring(
        scoring,
        flat_feature_chunks(spec, source=str(open_leads), chunk_rows=3000),
        target=target,
        as_of=AS_OF,
        progress=False,
    )
    return {
        "uri": uri,
        "model_uri": model_uri,
        "scoring": scoring,
        "spec": spec,
        "open_leads": open_leads,
        "batch": read_scored_leads(target),
    }


def _read_csv(spark, path: Path):
    """Every column as text, as the README reads a CRM export: the model types them."""
    return spark.read.csv(str(path), header=True)


def test_flat_table_on_spark_matches_the_batch_scorer(spark, flat_world):
    from leadscore.spark import score_flat_spark

    spec = flat_world["spec"]
    scored = score_flat_spark(
        _read_csv(spark, flat_world["open_leads"]),
        flat_world["scoring"],
        id_column=spec.id,
        as_of=AS_OF,
        missing_values=spec.missing_values,
    ).toPandas()
    assert len(scored) == 9240
    _assert_same_rows(scored, flat_world["batch"])


def test_a_model_that_records_its_spec_s_tokens_needs_no_missing_values_on_spark(spark, flat_world):
    """A model whose model.json holds the spec's ``missing_values`` (``Select``) reads them as
    missing itself: scored on Spark without ``missing_values=``, as the pyfunc and its UDF
    score, its rows equal the batch scorer's, reasons included (``Select`` is not quoted as a
    value the lead gave)."""
    import json

    from leadscore.model import LeadScoringModel
    from leadscore.scoring import ScoringModel
    from leadscore.spark import score_flat_spark

    spec, scoring = flat_world["spec"], flat_world["scoring"]
    meta = json.loads(scoring.model.to_texts()[0])
    meta["metadata"]["missing_values"] = list(spec.missing_values)
    model = LeadScoringModel.from_texts(json.dumps(meta), scoring.model.to_texts()[1])
    recorded = ScoringModel(model=model, name=scoring.name, version=scoring.version)
    scored = score_flat_spark(
        _read_csv(spark, flat_world["open_leads"]), recorded, id_column=spec.id, as_of=AS_OF
    ).toPandas()
    _assert_same_rows(scored, flat_world["batch"])


def test_flat_leads_in_other_units_or_empty_are_warned_about_on_the_driver(
    spark, flat_world, caplog
):
    """Time on the website exported in minutes where the model learnt seconds, and the
    visits column exported empty ("Select", the spec's "not answered", reads as empty)."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_flat_spark

    spec, scoring = flat_world["spec"], flat_world["scoring"]
    column = "Total Time Spent on Website"
    assert column in SizeCheck(scoring.model.drift_reference).sizes
    frame = _read_csv(spark, flat_world["open_leads"])
    changed = frame.withColumn(
        column, (F.col(column).cast("double") / 60).cast("string")
    ).withColumn("TotalVisits", F.lit("Select"))
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        for leads in (frame, changed):
            score_flat_spark(
                leads, scoring, id_column=spec.id, as_of=AS_OF, missing_values=spec.missing_values
            )
    (times,) = _unit_warnings(caplog, column)
    assert 30 <= times <= 120
    (empty,) = _empty_warnings(caplog)
    assert empty.startswith("'TotalVisits' is empty for all 9,240 leads scored")


def test_a_flat_activity_that_stopped_being_tracked_is_warned_about_on_the_driver(
    spark, flat_world, caplog
):
    """The website's tracking gone: visits, time and pages read 0 for every lead, no value
    missing. The batch scorer names the activity; score_flat_spark had said nothing."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_flat_spark

    spec, scoring = flat_world["spec"], flat_world["scoring"]
    frame = _read_csv(spark, flat_world["open_leads"])
    web = ["TotalVisits", "Total Time Spent on Website", "Page Views Per Visit"]
    quiet = frame.select(*[F.lit("0").alias(c) if c in web else F.col(c) for c in frame.columns])
    said = {}
    for name, leads in (("tracked", frame), ("quiet", quiet)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore"):
            score_flat_spark(
                leads, scoring, id_column=spec.id, as_of=AS_OF, missing_values=spec.missing_values
            )
        said[name] = [r.getMessage() for r in caplog.records if "tracking" in r.getMessage()]
    assert said["tracked"] == []
    assert said["quiet"] and all(" is 0 for all 9,240 leads" in s for s in said["quiet"])
    assert any(s.startswith("'Time on the website' is 0") for s in said["quiet"]), said["quiet"]


def test_a_large_flat_table_is_checked_on_a_random_sample(spark, flat_world, caplog, monkeypatch):
    """Above CHECKED_LEADS the input checks read a random sample, and say so."""
    from pyspark.sql import functions as F

    import leadscore.spark
    from leadscore.spark import score_flat_spark

    monkeypatch.setattr(leadscore.spark, "CHECKED_LEADS", 2000)
    spec, scoring = flat_world["spec"], flat_world["scoring"]
    frame = _read_csv(spark, flat_world["open_leads"]).withColumn("TotalVisits", F.lit(""))
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        score_flat_spark(
            frame, scoring, id_column=spec.id, as_of=AS_OF, missing_values=spec.missing_values
        )
    (empty,) = _empty_warnings(caplog)
    sampled = re.match(r"'TotalVisits' is empty for 100% of a random ([\d,]+) of the 9,240 ", empty)
    assert sampled, empty
    assert 1500 <= int(sampled[1].replace(",", "")) <= 2500


def test_mlflow_spark_udf_gives_the_batch_scores(spark, flat_world):
    from pyspark.sql import functions as F

    from leadscore.spark import pyfunc_udf

    spec, scoring = flat_world["spec"], flat_world["scoring"]
    features = [f.name for f in scoring.model.features]
    udf = pyfunc_udf(spark, flat_world["model_uri"], tracking_uri=flat_world["uri"])
    rows = (
        _read_csv(spark, flat_world["open_leads"])
        .limit(500)
        .select(F.col(spec.id).alias("lead_id"), udf(F.struct(*features)).alias("s"))
        .select("lead_id", "s.probability", "s.score", "s.stage")
        .toPandas()
        .set_index("lead_id")
    )
    batch = flat_world["batch"].set_index("lead_id").loc[rows.index]
    np.testing.assert_allclose(rows["probability"], batch["probability"], rtol=0, atol=1e-12)
    assert (rows["score"].to_numpy() == batch["score"].to_numpy()).all()
    assert (rows["stage"].astype(str).to_numpy() == batch["stage"].astype(str).to_numpy()).all()


def test_a_row_the_mlflow_udf_refuses_is_the_one_line_error(spark, flat_world):
    """The pyfunc refuses a request as an MLflow error (a 400 when served); on Spark's
    workers that must still read as leadscore's one line under ``worker_errors``."""
    from pyspark.sql import functions as F

    from leadscore.spark import pyfunc_udf, worker_errors

    scoring = flat_world["scoring"]
    features = [f.name for f in scoring.model.features]
    numeric = next(f.name for f in scoring.model.features if f.kind == "numeric")
    udf = pyfunc_udf(spark, flat_world["model_uri"], tracking_uri=flat_world["uri"])
    rows = _read_csv(spark, flat_world["open_leads"]).limit(20).withColumn(numeric, F.lit("lots"))
    scored = rows.select(udf(F.struct(*features)).alias("s")).select("s.probability")
    with (
        pytest.raises(DataError, match=f"column '{numeric}' must be numeric but holds 'lots'"),
        worker_errors(),
    ):
        scored.toPandas()


def test_unknown_model_version_is_a_model_error_before_spark_runs(spark, flat_world):
    from leadscore.spark import pyfunc_udf

    with pytest.raises(ModelError, match="no version '99'"):
        pyfunc_udf(spark, "models:/leadscore-x_education/99", tracking_uri=flat_world["uri"])


def test_bad_input_is_one_line_data_error(spark, event_world):
    from leadscore.spark import score_events_spark, score_flat_spark

    scoring = event_world["scoring"]
    leads, activities, outcomes = _frames(spark, event_world["data"])
    row = {
        f.name: "x" if f.kind == "categorical" else 0.0
        for f in scoring.model.features
        if f.name != "web_visits_30d"
    }
    lacking = spark.createDataFrame(pd.DataFrame([{"lead_id": "a", **row}]))
    with pytest.raises(DataError, match="no column 'web_visits_30d'") as missing:
        score_flat_spark(lacking, scoring, id_column="lead_id", as_of=AS_OF)
    assert "\n" not in str(missing.value)
    with pytest.raises(DataError, match="leads have no column 'company_size'"):
        score_events_spark(leads.drop("company_size"), activities, outcomes, scoring, as_of=AS_OF)
    from pyspark.sql import functions as F

    listed = spark.createDataFrame(pd.DataFrame([{"lead_id": "a", **row}])).withColumn(
        "web_visits_30d", F.array(F.lit(1.0))
    )
    with pytest.raises(DataError, match="column 'web_visits_30d' of the leads to score must hold"):
        score_flat_spark(listed, scoring, id_column="lead_id", as_of=AS_OF)
    titles = leads.withColumn("job_title", F.array("job_title"))
    with pytest.raises(DataError, match="column 'job_title' of the leads table must hold one"):
        score_events_spark(titles, activities, outcomes, scoring, as_of=AS_OF)
    # a column the model does not read may hold anything
    tagged = leads.withColumn("tags", F.create_map(F.lit("k"), F.lit("v")))
    assert score_events_spark(tagged, activities, outcomes, scoring, as_of=AS_OF).count() > 0
    twice = leads.unionByName(leads.limit(1))
    with pytest.raises(DataError, match="appears 2 times in leads"):
        score_events_spark(twice, activities, outcomes, scoring, as_of=AS_OF)
    with pytest.raises(DataError, match="activities table has no column 'occurred_at'"):
        score_events_spark(leads, activities.drop("occurred_at"), outcomes, scoring, as_of=AS_OF)
    with pytest.raises(DataError, match="no open lead was created by 2020-01-01"):
        score_events_spark(leads, activities, outcomes, scoring, as_of="2020-01-01")
    with pytest.raises(DataError, match="as_of 'soon' is not a date"):
        score_events_spark(leads, activities, outcomes, scoring, as_of="soon")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        with pytest.raises(DataError, match="time zone is 'America/New_York', not UTC"):
            score_events_spark(leads, activities, outcomes, scoring, as_of=AS_OF)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_a_bad_value_or_id_on_spark_is_the_batch_scorer_s_one_line_error(
    spark, flat_world, monkeypatch
):
    """A value no number, or ids blank or padded with spaces: one line on the driver, as the
    batch scorer says it, not a Python worker's traceback (or two scores for one lead)."""
    from leadscore.spark import score_flat_spark, worker_errors

    spec = flat_world["spec"]
    leads = pd.read_csv(flat_world["open_leads"], dtype="str", keep_default_na=False).head(50)

    def scored(frame: pd.DataFrame):
        return score_flat_spark(
            spark.createDataFrame(frame),
            flat_world["scoring"],
            id_column=spec.id,
            as_of=AS_OF,
            missing_values=spec.missing_values,
        )

    comma = leads.copy()
    comma.loc[3, "Page Views Per Visit"] = "2,5"
    named = re.escape(f"must be numeric but holds '2,5' (lead '{leads.loc[3, spec.id]}')")
    with (
        warnings.catch_warnings(record=True) as shown,
        pytest.raises(DataError, match=named) as err,
    ):
        warnings.simplefilter("always")
        scored(comma)  # the driver's input check meets it
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
    # nor does PySpark's warning print the worker's traceback beside the line
    assert not [w for w in shown if "Arrow optimization" in str(w.message)]
    padded = leads.copy()
    padded.loc[4, spec.id] = padded.loc[5, spec.id] + " "
    with pytest.raises(DataError, match="differ only by spaces around them"):
        scored(padded)
    blank = leads.copy()
    blank.loc[6, spec.id] = "  "
    with pytest.raises(DataError, match=f"{spec.id} is empty in 1 row"):
        scored(blank)
    # a row the input check did not sample fails the action; worker_errors makes it one line
    monkeypatch.setattr("leadscore.spark.CHECKED_LEADS", 1)
    with pytest.raises(DataError, match=named), worker_errors():
        scored(comma).toPandas()


def test_an_empty_activity_log_is_refused_as_the_batch_scorer_refuses_it(spark, event_world):
    """An activity log without rows is an export gone wrong: the batch readers refuse it,
    and Spark scored every lead as inactive without a word. Refused on the driver, from the
    counts per type it takes anyway, before anything is scored."""
    from leadscore.io import NO_ACTIVITY_ROWS_FIX
    from leadscore.spark import score_events_spark

    scoring = event_world["scoring"]
    assert any(f.group == "engagement" for f in scoring.model.features)
    leads, activities, outcomes = _frames(spark, event_world["data"])
    with pytest.raises(DataError) as err:
        score_events_spark(leads, activities.limit(0), outcomes, scoring, as_of=AS_OF)
    assert str(err.value) == f"the activities DataFrame has no rows. {NO_ACTIVITY_ROWS_FIX}"


def test_an_event_activity_that_stopped_being_tracked_is_warned_about_on_the_driver(
    spark, event_world, caplog, tmp_path
):
    """The website's tracking gone from the log since long before the as-of: every open
    lead's visits and pages read 0. The batch scorer names the activity; score_events_spark
    built those sums in its workers and had said nothing. It now says what the batch scorer
    says, word for word; a log still tracked says nothing."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_events_spark

    scoring = event_world["scoring"]
    leads, activities, outcomes = _frames(spark, event_world["data"])
    stopped = pd.Timestamp("2025-06-15")
    web = F.col("activity_type").isin("web_visit", "page_view")
    gone = activities.where(~web | (F.col("occurred_at") < F.lit(stopped).cast("timestamp")))

    def tracking_lines() -> list[str]:
        return [m for m in caplog.messages if "has the tracking of this activity" in m]

    said = {}
    for name, log in (("tracked", activities), ("gone", gone)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="leadscore"):
            score_events_spark(leads, log, outcomes, scoring, as_of=AS_OF, with_reasons=False)
        said[name] = tracking_lines()
    assert said["tracked"] == []
    assert said["gone"] and all("website" in m for m in said["gone"])

    folder = tmp_path / "crm"
    shutil.copytree(event_world["data"], folder)
    log = pd.read_parquet(folder / "activities.parquet")
    quiet = log["activity_type"].isin(["web_visit", "page_view"]) & (log["occurred_at"] >= stopped)
    log[~quiet].to_parquet(folder / "activities.parquet")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        run_scoring(
            scoring,
            event_feature_chunks(folder, AS_OF, chunk_leads=700),
            target=str(tmp_path / "scores.duckdb"),
            as_of=AS_OF,
            progress=False,
        )
    assert tracking_lines() == said["gone"]


#: A job of two 1.5-second tasks, long enough for Spark to draw its progress bar.
SLOW_JOB = textwrap.dedent(
    """
    from leadscore.spark import local_spark_session

    spark = local_spark_session(2, driver_memory="1g")
    slept = spark.range(2, numPartitions=2).selectExpr(
        "reflect('java.lang.Thread', 'sleep', CAST(1500 AS BIGINT))"
    )
    slept.collect()
    spark.stop()
    print("DONE")
    """
)


def test_a_local_session_writes_no_progress_bars_into_a_log(spark):
    """A scheduled job's log (no terminal) filled with ``[Stage 3:> (0 + 2) / 2]`` lines,
    one per second a stage ran: the local session turns Spark's console progress off."""
    assert spark.sparkContext.getConf().get("spark.ui.showConsoleProgress") == "false"
    result = subprocess.run(
        [sys.executable, "-c", SLOW_JOB], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "DONE", result.stderr[-2000:]
    assert "[Stage" not in result.stderr


def _unseen_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in caplog.messages if "the model never saw" in m]


def test_unseen_categories_on_spark_are_one_warning_per_feature_for_the_run(
    spark, flat_world, caplog
):
    """A source the model never saw, and a Yes/No feature exported as a Spark boolean (read
    ``True``/``False``, which the model never saw either), scored as missing without a word:
    now one line per feature on the driver, counted over every lead, as the batch scorer
    says it. The check job runs before the lazy result is returned: nothing is scored here."""
    from pyspark.sql import functions as F

    from leadscore.spark import score_flat_spark

    spec, scoring = flat_world["spec"], flat_world["scoring"]
    frame = _read_csv(spark, flat_world["open_leads"])
    tiktok = F.col("Lead Number").cast("long") % 7 == 0
    changed = frame.withColumn(
        "Lead Source", F.when(tiktok, F.lit("tiktok")).otherwise(F.col("Lead Source"))
    ).withColumn("Do Not Email", F.col("Do Not Email") == "Yes")
    expected = changed.where(tiktok).count()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        score_flat_spark(
            changed, scoring, id_column=spec.id, as_of=AS_OF, missing_values=spec.missing_values
        )
    said = _unseen_warnings(caplog)  # a few countries of the table are unseen too
    (source,) = [m for m in said if "'Lead Source'" in m]
    counted = re.match(r"([\d,]+) of 9,240 scored leads have a value of 'Lead Source'", source)
    # the tiktok leads, and the few whose source the test fold never held
    assert counted and expected <= int(counted[1].replace(",", "")) <= expected + 10, source
    assert "(e.g. 'tiktok')" in source
    (boolean,) = [m for m in said if "'Do Not Email'" in m]
    assert boolean.startswith("9,240 of 9,240 scored leads") and "(e.g. 'False')" in boolean


def test_unseen_categories_in_event_leads_are_warned_about_on_the_driver(
    spark, event_world, caplog
):
    from pyspark.sql import functions as F

    from leadscore.spark import score_events_spark

    leads, activities, outcomes = _frames(spark, event_world["data"])
    changed = leads.withColumn("source", F.lit("tiktok"))
    open_leads = len(event_world["batches"][AS_OF])
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        score_events_spark(changed, activities, outcomes, event_world["scoring"], as_of=AS_OF)
    assert _unseen_warnings(caplog) == [
        m
        for m in caplog.messages
        if m.startswith(f"{open_leads:,} of {open_leads:,} scored leads have a value of 'source'")
        and "(e.g. 'tiktok')" in m
    ]
    assert len(_unseen_warnings(caplog)) == 1


@pytest.fixture(scope="module")
def pyfunc_dir(flat_world, tmp_path_factory) -> str:
    """The logged x_education pyfunc, downloaded once: Spark tasks load it from disk."""
    import mlflow

    from leadscore.tracking import using_tracking_uri

    dst = tmp_path_factory.mktemp("pyfunc")
    with using_tracking_uri(flat_world["uri"]):
        return mlflow.artifacts.download_artifacts(flat_world["model_uri"], dst_path=str(dst))


def _predict_in_a_task(model_dir: str):
    """A Spark task that scores its batches with the logged pyfunc, as MLflow's UDF does, and
    returns the warnings the task logged (a worker's log does not reach the driver)."""

    def predict(batches):
        import logging

        import mlflow

        said: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                said.append(record.getMessage())

        keep = Keep(logging.WARNING)
        logging.getLogger("leadscore").addHandler(keep)
        try:
            model = mlflow.pyfunc.load_model(model_dir)
            n = 0
            for batch in batches:
                model.predict(batch)
                n += 1
        finally:
            logging.getLogger("leadscore").removeHandler(keep)
        yield pd.DataFrame({"batches": n, "message": said or [""]})

    return predict


def test_the_udf_s_warnings_are_not_repeated_for_every_arrow_batch(spark, flat_world, pyfunc_dir):
    """MLflow's Spark UDF calls the pyfunc once per Arrow batch: ten batches gave ten lines
    of unseen values, each counting its batch. A Spark task now says each once, and says
    that it counted one batch."""
    from pyspark.sql import functions as F

    features = [f.name for f in flat_world["scoring"].model.features]
    rows = (
        _read_csv(spark, flat_world["open_leads"])
        .limit(500)
        .coalesce(1)
        .withColumn("Lead Source", F.lit("tiktok"))
        .select(*features)
    )
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "50")
    try:
        out = rows.mapInPandas(
            _predict_in_a_task(pyfunc_dir), "batches long, message string"
        ).toPandas()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert out["batches"].iloc[0] == 10
    unseen = [m for m in out["message"] if "'Lead Source' the model never saw" in m]
    assert unseen == [
        "50 of 50 scored leads have a value of 'Lead Source' the model never saw in training "
        "(e.g. 'tiktok'): it is scored as missing, so their scores may be off; retrain on "
        "data that holds it, or map it to a known value"
    ]
    assert len([m for m in out["message"] if "count one batch of 50 leads" in m]) == 1


def test_the_pyfunc_warns_of_a_column_that_came_empty_and_refuses_all_empty(
    flat_world, pyfunc_dir, caplog
):
    """The logged model scored a request whose visits column came empty, and one whose every
    field did, without a word (every lead at the base rate): the first is warned about as
    ``leadscore score`` warns, the second refused with one line."""
    import mlflow

    features = [f.name for f in flat_world["scoring"].model.features]
    leads = pd.read_csv(flat_world["open_leads"], dtype="str", keep_default_na=False)
    leads = leads.head(200)[features]
    model = mlflow.pyfunc.load_model(pyfunc_dir)
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        model.predict(leads.assign(TotalVisits=None))
    (empty,) = _empty_warnings(caplog)
    assert empty.startswith("'TotalVisits' is empty for all 200 leads scored, but was given")
    with pytest.raises(DataError, match="features is empty for all 200 leads sent"):
        model.predict(leads.map(lambda _: None))
    # a few leads may honestly be unknown yet: scored at the base rate, with a warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        few = model.predict(leads.head(5).map(lambda _: None))
    assert few["probability"].nunique() == 1
    said = [r.getMessage() for r in caplog.records]
    assert any("features is empty for all 5 leads sent: scored at the base rate" in s for s in said)


def test_what_the_udf_cannot_score_is_one_line(spark, flat_world):
    """An array column through MLflow's UDF is one line under ``worker_errors``, as a
    timestamp in a number column already was; a batch whose every feature is empty scores."""
    from pyspark.sql import functions as F

    from leadscore.spark import pyfunc_udf, worker_errors

    features = [f.name for f in flat_world["scoring"].model.features]
    udf = pyfunc_udf(spark, flat_world["model_uri"], tracking_uri=flat_world["uri"])
    rows = _read_csv(spark, flat_world["open_leads"]).limit(20)
    listed = rows.withColumn("TotalVisits", F.array(F.lit(1)))
    with (
        pytest.raises(DataError, match=r"column 'TotalVisits' must hold one value per lead") as err,
        worker_errors(),
    ):
        listed.select(udf(F.struct(*features)).alias("s")).select("s.score").toPandas()
    assert "\n" not in str(err.value)
    # a batch of only empty rows is no refusal on Spark: that depends on how rows fall into
    # batches; its leads score at the base rate (the warning goes to the worker's log)
    empty = rows.select(*[F.lit(None).cast("string").alias(c) for c in features])
    with worker_errors():
        scored = empty.select(udf(F.struct(*features)).alias("s")).select("s.probability")
        probabilities = scored.toPandas()["probability"]
    assert len(probabilities) == 20 and probabilities.nunique() == 1


def test_a_local_session_does_not_print_spark_s_stack_of_a_failed_task(spark):
    """worker_errors raised the one line, but Spark's executor and task set manager had
    logged the worker's traceback and the JVM stack (49-58 lines) on stderr first, even at
    setLogLevel("ERROR"). Checked here on the loggers' levels in the session's JVM (a job
    run in a fresh process showed the stack gone: 25 s, too long for every test run)."""
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    for name in ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager"):
        assert str(log4j.LogManager.getLogger(name).getLevel().toString()) == "OFF", name
