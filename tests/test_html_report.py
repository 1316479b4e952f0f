"""The HTML model report end to end: a real training run in a SQLite MLflow store, the CLI,
and the page opened in a real headless Chromium (Debian's package, scripts/chromium.sh).

One module-scoped run serves every test. Its first report is built from what training logs
today (the charts under plots/ and the model's input example); then the test fold is logged
to the run as test_fold.parquet and a second report draws everything from it.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flat_tables import train_flat_model
from leadscore import html_report, plots, tracking
from leadscore.cli import main
from leadscore.config import parse_config
from leadscore.features import build_training_examples, default_as_of_dates
from leadscore.io import load_closed_loop
from leadscore.synth import SynthParams, write_synthetic
from leadscore.training import train

REPO = Path(__file__).resolve().parents[1]
FIGURES = {
    "roc",
    "precision_recall",
    "reliability",
    "cumulative_gains",
    "stages",
    "shap_summary",
    "fit_engagement",
}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
)


class _Images(HTMLParser):
    """Attributes of every ``<img>``, and every tag that could load something from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(values)
        for key in ("src", "href"):
            if key in values:
                self.links.append((tag, values[key]))
        if tag in ("link", "iframe", "object", "embed"):
            self.links.append((tag, values.get("href") or values.get("src") or ""))


def parse_images(text: str) -> _Images:
    parser = _Images()
    parser.feed(text)
    return parser


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of Debian's chromium, installed by the project's script when missing."""
    try:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "chromium.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"scripts/chromium.sh could not run: {err}")
    if done.returncode != 0 or not done.stdout.strip():
        pytest.skip(f"chromium cannot be installed here: {done.stderr.strip()[-300:]}")
    return done.stdout.strip().splitlines()[-1]


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A model trained on synthetic leads, logged to MLflow, and its two reports via the CLI."""
    root = tmp_path_factory.mktemp("html_report")
    write_synthetic(
        SynthParams(n_leads=1500, seed=11, start="2025-06-01"), root / "crm", progress=False
    )
    events = load_closed_loop(root / "crm")
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    examples = build_training_examples(events, dates, 60, name="crm")
    config = parse_config(
        {"cold_start": {"min_wins": 20, "min_leads": 200}, "quality_gate": {"allow_worse": True}}
    )
    result = train(examples, config)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    run_id = tracking.log_training_run(
        result,
        dataset_name="crm",
        spec=None,
        config=config,
        data_hash="test",
        tracking_uri=uri,
        registered_model=None,
    )
    base = ["report", "model", "--run", run_id, "--tracking-uri", uri]
    full = root / "out" / "full.html"
    assert main([*base, "--out", str(full)]) == 0
    # a run logged before the test fold was logged with runs: remove the artifact
    logged = list((root / "mlruns").rglob(html_report.TEST_FOLD_ARTIFACT))
    assert len(logged) == 1, "log_training_run logs the test fold"
    logged[0].unlink()
    example = root / "out" / "example.html"
    assert main([*base, "--out", str(example)]) == 0
    return {
        "root": root,
        "uri": uri,
        "run_id": run_id,
        "result": result,
        "example": example,
        "full": full,
    }


@pytest.mark.slow
@pytest.mark.parametrize("which", ["example", "full"])
def test_every_figure_renders_in_chromium(world, chromium, which):
    page = world[which]
    dumped = run_chromium(chromium, world["root"] / f"profile-{which}", "--dump-dom", page.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-500:]
    images = parse_images(dumped.stdout).images
    assert {img["data-figure"] for img in images} == FIGURES
    for img in images:
        assert img["alt"].strip(), img["data-figure"]
        assert int(img.get("data-rendered", "0")) > 0, f"{img['data-figure']} did not render"


@pytest.mark.slow
def test_screenshot_shows_a_page(world, chromium):
    from PIL import Image

    shot = world["root"] / "out" / "full.png"
    done = run_chromium(
        chromium,
        world["root"] / "profile-shot",
        "--window-size=1200,4000",
        f"--screenshot={shot}",
        world["full"].as_uri(),
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-500:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (4000, 1200)
    # a blank or failed page is one colour; a report has text, tables and charts
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.01


@pytest.mark.slow
@pytest.mark.parametrize("which", ["example", "full"])
def test_report_is_self_contained(world, which):
    text = world[which].read_text(encoding="utf-8")
    parsed = parse_images(text)
    assert len(parsed.images) == len(FIGURES)
    for tag, target in parsed.links:
        assert target.startswith(("data:image/png;base64,", "#")), (tag, target[:80])
    for img in parsed.images:
        png = base64.b64decode(img["src"].split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"https?://", text)
    assert "<script src" not in text and "<link" not in text


@pytest.mark.slow
def test_numbers_match_the_run(world):
    metrics = world["result"].metrics
    text = world["full"].read_text(encoding="utf-8")
    assert f"{metrics['model']['roc_auc']:.3f}" in text
    assert f"{metrics['baselines']['logistic_regression']['pr_auc']:.3f}" in text
    assert f"{metrics['baselines']['rule_points']['brier']:.4f}" in text
    assert f"{metrics['n_test']:,}" in text
    low, high = metrics["uncertainty"]["intervals"]["model"]["roc_auc"]
    assert f"{low:.3f} to {high:.3f}" in text
    assert f"{metrics['uncertainty']['ece_by_chance']['mean']:.3f} on these leads" in text
    assert "time-ordered" in text and "RANDOM" not in text
    for stage in ("LEAD", "MQL", "SQL"):
        count = metrics["stages"][stage.lower()]["count"]
        assert f"<td>{stage}</td><td>{count:,}</td>" in text
    # the tenths of the score: the first reaches the top decile's share of the wins
    assert "The test fold by tenths of the score" in text
    first_tenth = html_report._pct(metrics["model"]["capture_top_decile"], 0)
    assert f"<td>{first_tenth}</td></tr>" in text


@pytest.mark.slow
@pytest.mark.parametrize("which", ["full", "example"])
def test_stage_table_shows_each_policy_with_what_it_achieved(world, which):
    """Each stage's policy and target next to what its cut-off achieved on the calibration
    fold (the model's record) and on the test fold (from the test fold, or from the stage
    metrics when the run holds no test fold)."""
    result = world["result"]
    stages = result.model.stages
    text = world[which].read_text(encoding="utf-8")
    section = text[text.index("id='stages'") :]
    p, y = np.asarray(result.p_cal), np.asarray(result.y)
    for stage, target in (("mql", "90 %"), ("sql", "50 %")):
        cut = getattr(stages, f"{stage}_threshold_")
        head = re.escape(f"<tr><td>{stage.upper()}</td><td>holds {target} of the wins (recall)")
        row = re.search(head + r"</td>(.*?)</tr>", section)
        assert row is not None, stage
        cells = re.findall(r"<td>(.*?)</td>", row.group(1))
        calibration = stages.achieved_[stage]
        # event data: the folds hold examples (a lead at each as-of), not leads
        assert f"<b>{100 * calibration['recall']:.1f} % of the wins</b>" in cells[1]
        assert f"{calibration['count']:,} examples of {calibration['leads']:,} leads, " in cells[1]
        assert " per " not in cells[1]  # a recall policy has no per-period figure
        at = p >= cut
        leads = len(np.unique(np.asarray(result.lead_id)[at]))
        assert f"<b>{100 * y[at].sum() / y.sum():.1f} % of the wins</b>" in cells[2]
        assert f"{int(at.sum()):,} examples" in cells[2]
        assert f"of {leads:,} leads, " in cells[2] or which == "example"


@pytest.mark.slow
def test_channel_table_covers_the_test_fold(world):
    text = world["full"].read_text(encoding="utf-8")
    section = text[text.index("id='channels'") :]
    body, foot = section.split("<tfoot>", 1)
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([\d,]+)</td>", body)
    sources = set(world["result"].X_test["source"].astype(str))
    assert {name for name, _ in rows} == sources
    n_test = world["result"].metrics["n_test"]
    assert sum(int(n.replace(",", "")) for _, n in rows) == n_test
    # the total row under the channels: all test leads, and the wins that happened
    total = re.findall(r"<td>([^<]*)</td>", foot.split("</tfoot>", 1)[0])
    assert total[0] == "Total" and int(total[1].replace(",", "")) == n_test
    assert int(total[-1].replace(",", "")) == int(world["result"].y.sum())


@pytest.mark.slow
def test_without_the_test_fold_the_report_says_so(world):
    text = world["example"].read_text(encoding="utf-8")
    assert "input example logged with the model" in text
    assert "Skipped: the run did not log its test fold" in text
    full = world["full"].read_text(encoding="utf-8")
    assert "input example" not in full and "Skipped" not in full


@pytest.mark.slow
def test_report_is_logged_to_the_run(world, tmp_path):
    client = MlflowClient(tracking_uri=world["uri"])
    names = {a.path for a in client.list_artifacts(world["run_id"])}
    assert html_report.REPORT_ARTIFACT in names
    local = client.download_artifacts(world["run_id"], html_report.REPORT_ARTIFACT, str(tmp_path))
    # the latest report written (the one without the test fold) replaced the first
    assert Path(local).read_text(encoding="utf-8") == world["example"].read_text(encoding="utf-8")


@pytest.mark.slow
def test_unknown_run_is_one_line_and_writes_nothing(world, tmp_path, capsys):
    out = tmp_path / "r.html"
    code = main(
        ["report", "model", "--run", "0" * 32, "--tracking-uri", world["uri"], "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "no run" in err
    assert not out.exists()


@pytest.mark.slow
def test_a_column_named_like_a_post_contact_field_is_listed_under_leakage(tmp_path, caplog):
    """A CRM export's third-party ``intent_score_3p`` passes the leakage checks, but train
    warns that it is named like a score the sales team sets: the report must say so too, not
    that nothing was flagged."""
    from leadscore.io import write_tables
    from leadscore.synth import generate_closed_loop

    synthetic = generate_closed_loop(SynthParams(n_leads=1500, seed=12, start="2025-06-01"))
    noise = np.random.default_rng(1).uniform(0, 100, len(synthetic.leads)).round(1)
    tables = {
        "leads": synthetic.leads.assign(intent_score_3p=noise),
        "activities": synthetic.activities,
        "outcomes": synthetic.outcomes,
    }
    write_tables(tables, tmp_path / "crm")
    with caplog.at_level("WARNING"):
        events = load_closed_loop(tmp_path / "crm", observed_until=synthetic.observed_until)
    assert "'intent_score_3p' ('score')" in caplog.text  # the log at loading, as before
    dates = default_as_of_dates(events, 60, every_days=30, warmup_days=60)
    examples = build_training_examples(events, dates, 60, name="crm")
    config = parse_config(
        {
            "cold_start": {"min_wins": 20, "min_leads": 200},
            "quality_gate": {"allow_worse": True},
            "evaluation": {"resamples": 0},
        }
    )
    result = train(examples, config)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = tracking.log_training_run(
        result,
        dataset_name="crm",
        spec=None,
        config=config,
        data_hash="test",
        tracking_uri=uri,
        registered_model=None,
    )
    text = html_report.build_model_report(run_id, tracking_uri=uri)
    section = text[text.index("Leakage checks and warnings") : text.index("id='metrics'")]
    assert "&#x27;intent_score_3p&#x27; (&#x27;score&#x27;)" in section  # HTML-escaped quotes
    assert "No feature was flagged as suspected leakage" not in section
    assert "Apart from these, no feature was flagged" in section


def test_missing_store_is_an_error_and_creates_no_store(tmp_path, capsys):
    db = tmp_path / "none.db"
    out = tmp_path / "r.html"
    code = main(
        ["report", "model", "--run", "abc", "--tracking-uri", f"sqlite:///{db}", "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no MLflow store" in err
    assert not db.exists() and not out.exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("folder", "is a folder"),
        ("/proc/x.html", "cannot create a file in /proc"),
        ("x.pdf", "the model report is HTML, not '.pdf'"),
    ],
)
def test_an_unusable_out_is_one_line_before_the_run_is_read(tmp_path, capsys, name, expected):
    """--out is checked before the (slow) build: a folder, a place no file can be created and
    a suffix that is not HTML end in one line, exit 2, with no store read or created."""
    (tmp_path / "folder").mkdir()
    out = Path(name) if name.startswith("/") else tmp_path / name
    db = tmp_path / "none.db"
    argv = ["report", "model", "--run", "abc", "--tracking-uri", f"sqlite:///{db}"]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not db.exists()
    assert not (tmp_path / "x.pdf").exists()


def test_fit_engagement_figure_draws_one_series_per_stage():
    rng = np.random.default_rng(0)
    stages = np.array(["lead"] * 30 + ["mql"] * 15 + ["sql"] * 5)
    fig = plots.fit_engagement_figure(
        rng.integers(0, 101, 50), rng.integers(0, 101, 50), stages, won=rng.random(50) < 0.2
    )
    (ax,) = fig.axes
    labels = [c.get_label() for c in ax.collections]
    assert labels[:3] == ["LEAD (30 leads)", "MQL (15 leads)", "SQL (5 leads)"]
    assert labels[3].startswith("Converted")
    with pytest.raises(ValueError):
        plots.fit_engagement_figure([1, 2], [1], ["lead", "lead"])


@pytest.mark.slow
def test_test_fold_frame_round_trips(world, tmp_path):
    frame = html_report.test_fold_frame(world["result"])
    frame.to_parquet(tmp_path / "f.parquet")
    back = html_report._TestFold.from_frame(pd.read_parquet(tmp_path / "f.parquet"))
    result = world["result"]
    # row by row, in the fold's order: the charts and the SHAP summary pair these columns
    np.testing.assert_array_equal(back.y, result.y)
    np.testing.assert_array_equal(back.p_raw, result.p_raw)
    np.testing.assert_array_equal(back.p_cal, result.p_cal)
    np.testing.assert_array_equal(back.stages, np.asarray(result.stages).astype(str))
    np.testing.assert_array_equal(back.lead_id, np.asarray(result.lead_id).astype(str))
    assert set(back.baselines) == set(result.baselines)
    for name, p in result.baselines.items():
        np.testing.assert_array_equal(back.baselines[name], p)
    assert back.X["source"].dtype == result.X_test["source"].dtype
    pd.testing.assert_frame_equal(back.X, result.X_test.reset_index(drop=True))


def _headline_metrics(gain: list[float] | None) -> dict:
    """Test metrics whose model has ROC-AUC 0.767 against rule points' 0.754 (+0.013), with
    ``gain`` as the interval of that difference (``None``: a run without intervals)."""
    metrics: dict = {
        "n_test": 1401,
        "model": {"roc_auc": 0.767, "capture_top_decile": 0.3, "lift_top_decile": 3.0},
        "baselines": {"logistic_regression": {"roc_auc": 0.70}, "rule_points": {"roc_auc": 0.754}},
    }
    if gain is not None:
        metrics["uncertainty"] = {
            "level": 0.95,
            "resamples": 200,
            "n_groups": 826,
            "intervals": {"model": {"roc_auc": [0.71, 0.81]}},
            "roc_auc_gain": {"logistic_regression": [0.02, 0.11], "rule_points": gain},
        }
    return metrics


@pytest.mark.parametrize(
    ("gain", "expected"),
    [
        (
            [0.004, 0.025],
            "It beats the best simple baseline, rule points (ROC-AUC 0.754; ROC-AUC gain "
            "+0.013, 95% interval +0.004 to +0.025).",
        ),
        (
            [-0.044, 0.060],
            "It ties with the best simple baseline, rule points (ROC-AUC 0.754; ROC-AUC gain "
            "+0.013, 95% interval -0.044 to +0.060, which holds 0,",
        ),
        (
            [-0.030, -0.002],
            "It falls behind the best simple baseline, rule points (ROC-AUC 0.754; ROC-AUC "
            "gain +0.013, 95% interval -0.030 to -0.002).",
        ),
        (
            None,
            "It beats the best simple baseline, rule points (ROC-AUC 0.754), on the point "
            "estimates alone",
        ),
    ],
    ids=["beats", "ties", "falls-behind", "no-interval"],
)
def test_headline_follows_the_interval_of_the_gain(gain, expected):
    """The page calls an interval that holds 0 a tie: the headline must not call it a win."""
    run = SimpleNamespace(metrics=_headline_metrics(gain))
    text = html_report._summary(run)
    assert expected in text
    assert ("beats" in text) == (gain is None or gain[0] > 0)


@pytest.mark.parametrize(
    ("ece", "expected"),
    [
        (0.020, "Its probabilities mean what they say on the test fold"),
        (0.034, "Its probabilities are about right on the test fold, perhaps slightly off"),
        (0.043, "Its probabilities are off on the test fold by more than chance (ECE 0.043"),
    ],
)
def test_headline_says_whether_a_probability_means_what_it_says(ece, expected):
    """The terminal read x_education's ECE 0.043 as above the chance band (0.031), while the
    page never said so and a marketer took "30 %" for 30 wins in 100."""
    metrics = _headline_metrics([0.004, 0.025])
    metrics["model"]["ece"] = ece
    metrics["uncertainty"]["ece_by_chance"] = {"mean": 0.022, "upper": 0.031}
    text = html_report._summary(SimpleNamespace(metrics=metrics))
    assert expected in text
    assert "Its probabilities" not in html_report._summary(
        SimpleNamespace(metrics=_headline_metrics(None))
    )


def test_headline_and_metrics_count_examples_and_leads_apart():
    """Event data holds several examples per lead: the page gives both counts where it knows
    them ("2,712 examples of 1,348 leads"), never the examples as leads; a flat run's test
    fold is its leads."""
    metrics = _headline_metrics([-0.044, 0.060])  # 1,401 rows, 826 leads drawn
    run = SimpleNamespace(metrics=metrics)
    assert "On the test fold (1,401 examples of 826 leads) the model" in html_report._summary(run)
    assert "1,401 test leads" not in html_report._summary(run)
    assert html_report._test_unit(run) == "examples"
    metrics["n_test_leads"] = 830  # as training records it: preferred to the bootstrap's count
    assert html_report._test_size(run) == "1,401 examples of 830 leads"
    del metrics["uncertainty"], metrics["n_test_leads"]
    assert html_report._test_size(run) == "1,401 examples"  # leads not known
    flat = SimpleNamespace(
        metrics=metrics, model=SimpleNamespace(metadata={"data_form": "flat"}), test_fold=None
    )
    assert html_report._test_size(flat) == "1,401 leads"
    assert html_report._test_unit(flat) == "leads"


def test_achieved_text_keeps_its_commas_and_names_the_period():
    """ "90.3 % of the wins , 261.2 per period": the comma after the bold part stood apart in
    a text dump of the page, and the period was not named. The comma now sits inside the bold
    part, and the period is the policy's (per 30 days)."""
    achieved = {"count": 505, "precision": 0.461, "recall": 0.903, "per_period": 261.2}
    text = html_report._achieved_text(achieved, "per_period", unit="leads", period_days=30.0)
    assert text == (
        "505 leads, 46.1 % convert, 90.3 % of the wins, <b>261.2 distinct leads per 30 days</b>"
    )
    text = html_report._achieved_text(achieved, "precision", unit="leads", period_days=30.0)
    assert text == "505 leads, <b>46.1 % convert,</b> 90.3 % of the wins"
    dumped = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    assert " ," not in dumped
    assert dumped == "505 leads, 46.1 % convert, 90.3 % of the wins"
    last = html_report._achieved_text({**achieved, "per_period": None}, "recall", unit="examples")
    assert last == "505 examples, 46.1 % convert, <b>90.3 % of the wins</b>"


def test_uncertainty_note_says_the_bootstrap_drew_leads():
    metrics = _headline_metrics([-0.044, 0.060])
    note = html_report._uncertainty_note(metrics, metrics["uncertainty"])
    assert "200 bootstrap resamples of the 826 test leads, each drawn with all its rows" in note
    del metrics["uncertainty"]["n_groups"]  # a run logged before leads were resampled
    assert "resamples of the test fold." in html_report._uncertainty_note(
        metrics, metrics["uncertainty"]
    )


@pytest.mark.slow
def test_a_flat_exports_source_column_gets_the_channel_table(tmp_path):
    """A HubSpot-style export names its channel ``Original Source`` (with a ``Drill-Down 1``
    detail beside it): the report groups the test fold by it, as ``report channels --spec``
    does, rather than saying the data has no channel column."""
    rng = np.random.default_rng(5)
    n = 600
    sources = rng.choice(["PAID_SEARCH", "ORGANIC_SEARCH", "OFFLINE"], n)
    visits = rng.poisson(4, n) + (sources == "PAID_SEARCH") * 3
    won = rng.uniform(size=n) < 1 / (1 + np.exp(-(visits - 6) / 2))
    pd.DataFrame(
        {
            "Record ID": np.arange(n).astype(str),
            "Create Date": pd.date_range("2025-01-01", periods=n, freq="12h").astype(str),
            "Original Source": sources,
            "Original Source Drill-Down 1": rng.choice(["google", "bing", "expo"], n),
            "Number of Pageviews": visits,
            "Deal Stage": np.where(won, "Closed Won", "Closed Lost"),
        }
    ).to_csv(tmp_path / "contacts.csv", index=False)
    spec = {
        "name": "contacts",
        "source": "contacts.csv",
        "id": "Record ID",
        "label": {"column": "Deal Stage", "won": ["Closed Won"], "lost": ["Closed Lost"]},
        "order_by": "Create Date",
    }
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train_flat_model(
        tmp_path, spec, args=("--tracking-uri", uri, "--metrics-out", str(tmp_path / "m.json"))
    )
    run_id = json.loads((tmp_path / "m.json").read_text())["run_id"]
    out = tmp_path / "report.html"
    assert main(["report", "model", "--run", run_id, "--tracking-uri", uri, "--out", str(out)]) == 0
    section = out.read_text(encoding="utf-8").split("id='channels'", 1)[1]
    assert "Skipped" not in section
    assert "by Original Source:" in section
    body = section.split("<tfoot>", 1)[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([\d,]+)</td>", body)
    assert {name for name, _ in rows} <= set(sources) and len(rows) >= 2


def _section_run(**metrics) -> SimpleNamespace:
    """A run with just what the data and metrics sections read: event data by default."""
    base = {
        "n_test": 1401,
        "n_test_leads": 826,
        "n_train": 3000,
        "fold_kind": "time",
        "model": {"roc_auc": 0.8327, "brier": 0.0557, "capture_top_decile": 0.4357},
        "model_uncalibrated": {"roc_auc": 0.8327, "brier": 0.0557, "capture_top_decile": 0.4357},
        "baselines": {"logistic_regression": {"roc_auc": 0.81, "capture_top_decile": 0.4314}},
        "calibration": "identity",
        "uncertainty": {
            "level": 0.95,
            "resamples": 200,
            "n_groups": 826,
            "intervals": {"model": {"roc_auc": [0.80, 0.85], "capture_top_decile": [0.393, 0.502]}},
        },
    }
    metadata = {
        "data_form": "events",
        "horizon_days": 90,
        "history": {"leads": 2000, "wins": 300, "examples": 5000},
        "folds": {
            "kind": "time",
            "sizes": {"fit": 2400, "valid": 600, "calibrate": 700, "test": 1401},
            "boundaries": {"valid": "2025-10-03", "calibrate": "2025-12-02", "test": "2026-01-31"},
        },
    }
    return SimpleNamespace(
        metrics={**base, **metrics},
        tags={},
        params={},
        spec=None,
        warnings=[],
        test_fold=None,
        model=SimpleNamespace(metadata=metadata),
    )


def test_metrics_table_shows_shares_as_percentages():
    """The headline said "44 %" and the table "0.436" for the same capture rate: shares are
    percentages in the table too (with their interval); scores such as ROC-AUC and Brier
    stay decimals."""
    run = _section_run()
    table = html_report._metrics_section(run)
    model = run.metrics["model"]
    assert f"{100 * model['capture_top_decile']:.1f} %" in table
    assert "39.3 % to 50.2 %" in table
    assert f"{model['capture_top_decile']:.3f}" not in table
    assert f"{model['roc_auc']:.3f}" in table and f"{model['brier']:.4f}" in table
    assert "top 10 % of examples" in table  # event data: the rows are examples


def test_identity_calibration_leaves_out_the_uncalibrated_column():
    """With the identity calibrator the "Model, uncalibrated" column repeated the Model
    column: it is left out, and the page says why; a real calibrator keeps it."""
    identity = html_report._metrics_section(_section_run())
    assert "Model, uncalibrated" not in identity
    assert "the uncalibrated model is the same as the model" in identity
    sigmoid = html_report._metrics_section(_section_run(calibration="sigmoid"))
    assert "<th>Model, uncalibrated</th>" in sigmoid
    assert "the same as the model" not in sigmoid


def _data_rows(run: SimpleNamespace) -> dict[str, str]:
    section = html_report._data_section(run)
    return dict(re.findall(r"<tr><td>([^<]*)</td><td>(.*?)</td></tr>", section))


def test_data_section_counts_event_leads_apart_and_states_the_periods():
    """Event data: "Won leads" counted leads won within the window of an as-of date, not
    the data's wins, so it says so; and the section gives the calendar periods of the
    folds that training logged (the model refitted on fit + valid: trained before the
    calibration fold)."""
    run = _section_run()
    run.params = {
        "folds.valid_from": "2025-10-03",
        "folds.calibrate_from": "2025-12-02",
        "folds.test_from": "2026-01-31",
    }
    rows = _data_rows(run)
    assert "Won leads" not in rows and "Leads" not in rows
    assert rows["Leads won within 90 days of an as-of date"] == "300"
    assert rows["Leads in the examples"] == "2,000"
    assert rows["Training period"] == "as-of dates before 2025-12-02"
    assert rows["Calibration period"] == "as-of dates from 2025-12-02, before 2026-01-31"
    assert rows["Test period"] == "as-of dates from 2026-01-31"
    assert rows["Calibration"].startswith("none (identity)")
    # a run that logged where its examples start and end states both ends
    run.params.update({"folds.first": "2025-03-01", "folds.last": "2026-04-30"})
    rows = _data_rows(run)
    assert rows["Training period"] == "as-of dates from 2025-03-01, before 2025-12-02"
    assert rows["Test period"] == "as-of dates from 2026-01-31 to 2026-04-30"


def test_data_section_of_a_flat_run_keeps_leads_and_dates():
    run = _section_run(n_test_leads=1401, n_train=2400, calibration="isotonic")
    run.model.metadata["data_form"] = "flat"
    rows = _data_rows(run)
    assert rows["Leads"] == "2,000" and rows["Won leads"] == "300"
    # not refitted (n_train is the fit fold): the valid fold only stopped boosting
    assert rows["Training period"] == (
        "dates before 2025-10-03 (boosting stopped on 2025-10-03 up to 2025-12-02)"
    )
    assert rows["Test period"] == "dates from 2026-01-31"
    assert rows["Calibration"] == "isotonic"
    del run.model.metadata["folds"]["boundaries"]  # a run that logged no fold dates
    assert not [k for k in _data_rows(run) if k.endswith("period")]


def test_stage_cut_off_stays_on_one_line():
    """A narrow "Cut-off" column wrapped "16.0 %" after the number; the cells and the
    header are kept on one line."""
    rule = SimpleNamespace(policy="recall", target=0.5)
    stages = SimpleNamespace(
        policy_=SimpleNamespace(mql=rule, sql=rule, period_days=30.0),
        mql_threshold_=0.028,
        sql_threshold_=0.16,
        achieved_={},
    )
    run = _section_run()
    run.model.stages, run.stages = stages, None
    run.metrics["thresholds"] = {"mql": 0.028, "sql": 0.16}
    section = html_report._stages_section(run, {})
    assert '<td><span class="nowrap">16.0 %</span></td>' in section
    assert '<th><span class="nowrap">Cut-off</span></th>' in section
    assert ".nowrap{white-space:nowrap}" in html_report._CSS


def test_charts_of_event_data_count_examples(monkeypatch):
    """The reliability and stage charts counted event-data rows as leads ("6,777 leads;
    each point is a group of 677 leads", "LEAD: 3,330 leads"): the report now tells them
    what the rows are."""
    rng = np.random.default_rng(0)
    n = 300
    p = rng.uniform(0, 0.4, n)
    run = _section_run(n_test=n, n_test_leads=120, thresholds={"mql": 0.1, "sql": 0.3})
    run.test_fold = html_report._TestFold(
        y=rng.binomial(1, p),
        p_raw=p,
        p_cal=p,
        stages=np.where(p >= 0.3, "sql", np.where(p >= 0.1, "mql", "lead")),
        baselines={},
        X=pd.DataFrame(index=range(n)),
        lead_id=np.arange(n).astype(str),
    )
    seen: dict[str, str] = {}
    for name in ("reliability_figure", "stage_histogram_figure"):
        real = getattr(html_report.plots, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            seen[_name] = kwargs.get("rows", "leads")
            return _real(*args, **kwargs)

        monkeypatch.setattr(html_report.plots, name, spy)
    html_report._curve_figures(run)
    assert seen == {
        "reliability_figure": "examples of 120 leads",
        "stage_histogram_figure": "examples",
    }


def test_fit_engagement_legend_sits_outside_the_points():
    """The legend in the lower-left corner covered leads; it now sits below the axes, and
    event data counts its dots as examples."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rng = np.random.default_rng(1)
    n = 400
    stages = rng.choice(["lead", "mql", "sql"], n)
    fig = plots.fit_engagement_figure(
        rng.integers(0, 101, n),
        rng.integers(0, 101, n),
        stages,
        won=rng.random(n) < 0.1,
        rows="examples",
    )
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    (ax,) = fig.axes
    assert ax.get_legend() is None
    (legend,) = fig.legends
    box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.y1 <= area.y0  # wholly below the axes
    labels = [t.get_text() for t in legend.get_texts()]
    assert f"LEAD ({int((stages == 'lead').sum()):,} examples)" in labels


def _fold(y, p, lead_id=None) -> html_report._TestFold:
    y, p = np.asarray(y), np.asarray(p, dtype=float)
    return html_report._TestFold(
        y=y,
        p_raw=p,
        p_cal=p,
        stages=np.full(len(y), "lead"),
        baselines={},
        X=pd.DataFrame(index=range(len(y))),
        lead_id=np.arange(len(y)).astype(str) if lead_id is None else np.asarray(lead_id),
    )


def test_headline_counts_tied_pairs_apart_from_won_above_lost():
    """ROC-AUC counts a tie as half: olist's 0.696 read as "a won lead above a lost one 70 %
    of the time" where 66.4 % of pairs were strictly so and 6.2 % tied; a model that scores
    every lead the same read as "50 % of the time"."""
    y = [1, 1, 0, 0]
    p = [0.3, 0.2, 0.2, 0.1]  # pairs: 3 above, 1 tied: AUC 0.875
    run = _section_run(model={"roc_auc": 0.875})
    run.model.metadata["data_form"] = "flat"
    run.metrics["n_test_leads"] = run.metrics["n_test"]
    run.test_fold = _fold(y, p)
    text = html_report._summary(run)
    assert "above the lost one in 75 % of won/lost pairs, the same score in 25 %" in text
    assert "which counts a tie as half" in text and "of the time" not in text
    run.test_fold = _fold(y, [0.2] * 4)
    run.metrics["model"]["roc_auc"] = 0.5
    text = html_report._summary(run)
    assert "gives every won lead the same score as every lost one" in text
    assert "50 %" not in text
    run.test_fold = None  # without the fold: the AUC, worded as counting ties as half
    assert "in 50 % of won/lost pairs, ties counted as half" in html_report._summary(run)


def test_headline_says_when_model_or_baseline_is_no_better_than_random():
    """ "ties with the best simple baseline, rule points (ROC-AUC 0.500)" left unsaid that
    both orders were no better than random; "-0.000" read as a loss."""
    metrics = _headline_metrics([-0.0004, 0.023])
    metrics["model"]["roc_auc"] = 0.7536
    metrics["uncertainty"]["intervals"] = {
        "model": {"roc_auc": [0.41, 0.55]},
        "rule_points": {"roc_auc": [0.5, 0.5]},
    }
    text = html_report._summary(SimpleNamespace(metrics=metrics))
    assert "no better than random order: its 95% interval, 0.410 to 0.550, holds 0.500" in text
    assert "rule points, itself no better than random order" in text
    assert "-0.000" not in text and "interval 0.000 to +0.023" in text


def test_calibration_headline_uses_a_real_group_of_the_test_fold():
    """ "of leads scored 30 %, about 30 in 100 converted" was fixed text, on a fold whose
    highest score was 20 %: the example is now the fold's top tenth, with its count."""
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.2, 1000)
    y = (rng.uniform(size=1000) < p).astype(int)
    metrics = _headline_metrics([0.004, 0.025])
    metrics["model"]["ece"] = 0.02
    metrics["uncertainty"]["ece_by_chance"] = {"mean": 0.022, "upper": 0.031}
    run = SimpleNamespace(metrics=metrics, test_fold=_fold(y, p))
    text = html_report._summary(run)
    top = np.sort(p)[-100:]
    assert "of leads scored 30 %" not in text
    assert (
        f"the highest-scored tenth of the test examples (100), given {100 * top.mean():.1f} %"
        in (text)
    )
    metrics["model"]["ece"] = 0.06  # off by more than chance: no "mean what they say"
    assert "mean what they say" not in html_report._summary(run)


def test_capacity_policy_shows_the_test_folds_figure_and_says_it_counts_leads():
    """The capacity row's test column had no per-period figure though train printed it
    (stage_policy.sql.test); a recall policy showed an unexplained "per 30 days"."""
    achieved = {"count": 812, "leads": 540, "precision": 0.4, "recall": 0.6, "per_period": 39.9}
    cal = html_report._achieved_text(achieved, "per_period", unit="examples", period_days=7.0)
    assert cal.startswith("812 examples of 540 leads, ")
    assert cal.endswith("<b>39.9 distinct leads per 7 days</b>")
    recall = html_report._achieved_text(achieved, "recall", unit="examples", period_days=30.0)
    assert "per 30 days" not in recall
    run = _section_run(
        stage_policy={"sql": {"measure": "per_period", "test": 41.61}, "mql": {"measure": "recall"}}
    )
    run.test_fold = _fold([1, 0, 1, 0], [0.9, 0.8, 0.1, 0.9], lead_id=["a", "a", "b", "c"])
    test = html_report._test_achieved(run, "sql", 0.5)
    assert test["per_period"] == 41.61 and test["leads"] == 2 and test["count"] == 3
    assert html_report._test_achieved(run, "mql", 0.5)["per_period"] is None
    run.model.stages = SimpleNamespace(
        policy_=SimpleNamespace(sql=SimpleNamespace(policy="capacity"), mql=None)
    )
    assert "counts distinct leads" in html_report._per_period_note(run)


def test_event_headline_and_charts_count_examples():
    """On event data the capture metric is over examples: the headline said "the top 10 %
    of leads", and the gains axes "Share of leads contacted"."""
    run = _section_run(thresholds={"mql": 0.1, "sql": 0.3})
    assert "Calling the top 10 % of examples by score" in html_report._summary(run)
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.4, 200)
    run.test_fold = _fold(rng.binomial(1, p), p)
    run.test_fold = html_report._TestFold(
        **{**run.test_fold.__dict__, "stages": np.where(p >= 0.3, "sql", "lead")}
    )
    figures = html_report._curve_figures(run)
    assert set(figures) >= {"cumulative_gains", "stages"}
    fig = plots.gains_figure(run.test_fold.y, {"Model": p}, rows="examples")
    assert all(ax.get_xlabel().startswith("Share of examples contacted") for ax in fig.axes)


def test_identity_model_is_not_called_calibrated():
    """With the identity calibrator the stage chart's axis said "(calibrated)"."""
    run = _section_run()
    assert not html_report._calibrated(run)
    assert html_report._calibrated(_section_run(calibration="isotonic"))
    p = np.linspace(0, 0.5, 50)
    stages = np.where(p >= 0.3, "sql", "lead")
    fig = plots.stage_histogram_figure(p, stages, {"sql": 0.3}, calibrated=False)
    assert "calibrated" not in fig.axes[0].get_xlabel()
    fig = plots.stage_histogram_figure(p, stages, {"sql": 0.3}, calibrated=True)
    assert "(calibrated)" in fig.axes[0].get_xlabel()
