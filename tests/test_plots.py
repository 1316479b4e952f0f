"""Charts: each returns a Figure with the expected axes and lines, and renders to PNG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from leadscore import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def scored() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 800
    z = rng.normal(size=n)
    p_true = 1 / (1 + np.exp(-(1.5 * z - 2.0)))
    y = rng.binomial(1, p_true)
    return {
        "y": y,
        "p_cal": p_true,
        "p_raw": 1 / (1 + np.exp(-(2.2 * z - 1.5))),
        "lr": 1 / (1 + np.exp(-(z + rng.normal(size=n) - 2.0))),
        "rules": np.clip(0.3 + (z + rng.normal(size=n)) / 6, 0, 1),
    }


def _scores(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"Model": s["p_cal"], "Logistic regression": s["lr"], "Rule points": s["rules"]}


def _saves_png(fig: Figure, path) -> None:
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000  # a drawn chart, not an empty canvas


def _texts(fig: Figure) -> str:
    parts = []
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        legend = ax.get_legend()
        if legend is not None:
            parts += [t.get_text() for t in legend.get_texts()]
    for legend in fig.legends:  # a legend placed outside the axes
        parts += [t.get_text() for t in legend.get_texts()]
    return " | ".join(parts)


def test_roc_has_one_line_per_score_plus_chance(scored, tmp_path):
    fig = plots.roc_figure(scored["y"], _scores(scored))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    assert len(fig.axes[0].get_lines()) == 3 + 1
    text = _texts(fig)
    assert "ROC-AUC" in text and "Rule points" in text and "won leads" in text
    _saves_png(fig, tmp_path / "roc.png")


def test_roc_curve_is_scikit_learn_s_and_its_legend_gives_the_auc(scored):
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = plots.roc_figure(scored["y"], {"Model": scored["p_cal"]})
    x, y = fig.axes[0].get_lines()[0].get_data()
    fpr, tpr, _ = roc_curve(scored["y"], scored["p_cal"])
    np.testing.assert_allclose(x, fpr)
    np.testing.assert_allclose(y, tpr)
    assert (x[0], y[0]) == (0.0, 0.0) and (x[-1], y[-1]) == (1.0, 1.0)
    legend = fig.axes[0].get_legend().get_texts()[0].get_text()
    assert f"{roc_auc_score(scored['y'], scored['p_cal']):.3f}" in legend


def test_pr_has_one_line_per_score_plus_base_rate(scored, tmp_path):
    fig = plots.pr_figure(scored["y"], _scores(scored))
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 + 1
    base = ax.get_lines()[-1].get_ydata()
    assert base[0] == pytest.approx(scored["y"].mean())
    assert "PR-AUC" in _texts(fig)
    _saves_png(fig, tmp_path / "pr.png")


def test_reliability_shows_raw_and_calibrated_bins(scored, tmp_path):
    fig = plots.reliability_figure(scored["y"], scored["p_raw"], scored["p_cal"], n_bins=10)
    assert len(fig.axes) == 2
    curve, hist = fig.axes
    lines = curve.get_lines()
    assert len(lines) == 3  # diagonal, before, after
    assert all(len(line.get_xdata()) == 10 for line in lines[1:])
    assert len(hist.patches) == 2 * 40  # two histograms of 40 bars
    text = _texts(fig) + " ".join(t.get_text() for t in curve.texts)
    assert "Before calibration" in text and "After calibration" in text
    assert "group of 80 leads" in text  # 800 leads in 10 equal-count groups
    _saves_png(fig, tmp_path / "reliability.png")


def test_reliability_bars_are_the_wilson_intervals_of_the_calibrated_groups(scored):
    from scipy.stats import binomtest

    y = scored["y"]
    fig = plots.reliability_figure(y, scored["p_raw"], scored["p_cal"], n_bins=10)
    curve = fig.axes[0]
    (bars,) = [c for c in curve.collections if "Wilson" in str(c.get_label())]
    segments = bars.get_segments()
    order = np.argsort(scored["p_cal"], kind="stable")
    groups = np.array_split(order, 10)
    assert len(segments) == len(groups)
    for segment, group in zip(segments, groups, strict=True):
        (x0, low), (x1, high) = segment
        ci = binomtest(int(y[group].sum()), len(group)).proportion_ci(0.95, method="wilson")
        assert x0 == x1 == pytest.approx(scored["p_cal"][group].mean())
        assert (low, high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert "Wilson" in _texts(fig)
    assert curve.get_ylim()[1] >= max(s[1][1] for s in segments)
    # rows of one lead share its outcome: an interval counting rows would be too narrow
    examples = plots.reliability_figure(
        y, scored["p_raw"], scored["p_cal"], rows="examples of 310 leads"
    )
    assert not [c for c in examples.axes[0].collections if "Wilson" in str(c.get_label())]
    assert "Wilson" not in _texts(examples)


def test_equal_count_bins_hold_every_lead_once():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=103)
    y = rng.binomial(1, p)
    mean_p, rate, counts = plots.equal_count_bins(y, p, 10)
    assert counts.sum() == 103
    assert counts.max() - counts.min() <= 1
    assert np.all(np.diff(mean_p) >= 0)
    assert np.all((rate >= 0) & (rate <= 1))
    assert (counts * rate).sum() == pytest.approx(y.sum())


def test_equal_count_bins_drop_empty_bins_on_tiny_data():
    _, _, counts = plots.equal_count_bins(np.array([0, 1, 1]), np.array([0.1, 0.5, 0.9]), 10)
    assert counts.tolist() == [1, 1, 1]


def test_gains_and_lift_against_random(scored, tmp_path):
    fig = plots.gains_figure(scored["y"], _scores(scored))
    gains, lift = fig.axes
    assert len(gains.get_lines()) == 3 + 2  # scores, random, perfect
    assert len(lift.get_lines()) == 3 + 1  # scores, random
    _, y = gains.get_lines()[0].get_data()
    assert y[0] == 0.0 and y[-1] == pytest.approx(1.0)
    assert np.all(np.diff(y) >= 0)
    # the model's lift ends at 1: calling every lead converts at the average rate
    assert lift.get_lines()[0].get_ydata()[-1] == pytest.approx(1.0)
    assert "Share of all wins captured" in _texts(fig)
    _saves_png(fig, tmp_path / "gains.png")


def test_charts_of_tied_scores_agree_with_the_metrics_whatever_the_row_order():
    """545 of olist's test leads share one score: broken by row order, the gains legend read
    22% of wins in the top 10% where the metrics said 20.4%, and the reliability points moved
    when the rows were reversed. Ties count with their group's mean outcome, as the metrics
    count them; a bar at a cut-off keeps a visible width."""
    from leadscore.metrics import expected_calibration_error, top_decile

    rng = np.random.default_rng(5)
    # one tie group at the MQL cut-off, one straddling the top tenth's edge
    p = np.r_[np.full(545, 0.062244), np.full(300, 0.35), rng.uniform(0.01, 0.3, 1810)]
    y = rng.binomial(1, p)
    for rows in (np.arange(len(p)), np.arange(len(p))[::-1]):
        _, share_wins = plots._gains(y[rows], p[rows])
        top = int(np.ceil(0.1 * len(p)))
        assert share_wins[top] == pytest.approx(top_decile(y, p)[1])
        mean_p, rate, counts = plots.equal_count_bins(y[rows], p[rows])
        ece = float((counts * np.abs(rate - mean_p)).sum() / counts.sum())
        assert ece == pytest.approx(expected_calibration_error(y, p))
    stages = np.where(p >= 0.062244, "mql", "lead")
    fig = plots.stage_histogram_figure(p, stages, {"mql": 0.062244})
    narrowest = min(patch.get_width() for patch in fig.axes[0].patches if patch.get_height())
    assert narrowest > fig.axes[0].get_xlim()[1] / 100


def test_event_rows_are_counted_as_examples_of_leads(scored):
    """Event data holds a lead at several as-of dates: the charts count its rows as the
    report does ("800 examples of 310 leads"), not as 800 leads."""
    p = scored["p_cal"]
    fig = plots.reliability_figure(scored["y"], scored["p_raw"], p, rows="examples of 310 leads")
    text = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "800 examples of 310 leads; each point is a group of 80 examples" in text
    assert fig.axes[1].get_ylabel() == "Number of examples"
    stages = np.where(p >= 0.4, "sql", "lead")
    ax = plots.stage_histogram_figure(p, stages, {"sql": 0.4}, rows="examples").axes[0]
    assert ax.get_ylabel() == "Number of examples"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(
        label.startswith(f"SQL: {int((stages == 'sql').sum())} examples") for label in labels
    )


def test_stage_histogram_one_bar_set_per_stage_and_a_line_per_threshold(scored, tmp_path):
    p = scored["p_cal"]
    stages = np.where(p >= 0.4, "sql", np.where(p >= 0.1, "mql", "lead"))
    fig = plots.stage_histogram_figure(p, stages, {"mql": 0.1, "sql": 0.4})
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one histogram per stage
    cuts = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert cuts == [0.1, 0.4]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    n_sql = int((stages == "sql").sum())
    assert any(label.startswith(f"SQL: {n_sql} leads") for label in labels)
    # every lead up to the axis' end is in a bar; the few beyond it are counted in the label
    end = ax.get_xlim()[1]
    assert sum(patch.get_height() for patch in ax.patches) == (p <= end).sum()
    for patch in ax.patches:  # no bar straddles a cut-off
        left, right = patch.get_x(), patch.get_x() + patch.get_width()
        assert not any(left < cut < right - 1e-12 for cut in (0.1, 0.4))
    _saves_png(fig, tmp_path / "stages.png")


def test_stage_histogram_skips_stages_nobody_reaches(scored):
    p = scored["p_cal"]
    stages = np.where(p >= 0.1, "mql", "lead")
    fig = plots.stage_histogram_figure(p, stages, {"mql": 0.1, "sql": float("inf")})
    assert len(fig.axes[0].containers) == 2
    assert [line.get_xdata()[0] for line in fig.axes[0].get_lines()] == [0.1]


def test_reliability_says_when_calibration_changed_nothing(scored):
    fig = plots.reliability_figure(scored["y"], scored["p_cal"], scored["p_cal"])
    assert "uncalibrated: no method beat it on the calibration fold" in _texts(fig)


def test_reliability_draws_no_hidden_before_series_when_calibration_changed_nothing(scored):
    """With the identity calibrator the "before" series lay exactly under the "after" one:
    a legend entry for a line nobody could see. It is neither drawn nor listed now."""
    fig = plots.reliability_figure(scored["y"], scored["p_cal"], scored["p_cal"].copy())
    curve, hist = fig.axes
    assert len(curve.get_lines()) == 2  # diagonal, the model
    assert len(hist.containers) == 1  # one histogram
    assert "Before calibration" not in _texts(fig)
    changed = plots.reliability_figure(scored["y"], scored["p_raw"], scored["p_cal"])
    assert "Before calibration" in _texts(changed)


def test_probability_histograms_end_near_the_highest_scores_and_say_so():
    """Nearly every lead below 0.2 and a handful near 0.9: the axis used to run to 0.9 and
    squeeze the leads into a few bars. It now ends near the 99.5th percentile (but past every
    stage cut-off), and the axis label counts the leads it leaves out."""
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.beta(1.2, 20, 2000), [0.85, 0.88, 0.9]])
    y = rng.binomial(1, p)
    stages = np.where(p >= 0.3, "sql", np.where(p >= 0.05, "mql", "lead"))
    hist_ax = plots.stage_histogram_figure(p, stages, {"mql": 0.05, "sql": 0.3}).axes[0]
    reliability_hist = plots.reliability_figure(y, p, p).axes[1]
    assert hist_ax.get_xlim()[1] >= 0.3  # the SQL cut-off stays in view
    for ax in (hist_ax, reliability_hist):
        end = ax.get_xlim()[1]
        assert end < 0.5
        beyond = int((p > end).sum())
        assert beyond >= 3
        assert f"{beyond:,} leads above it" in ax.get_xlabel()
    # data that fills its axis gets no note
    even = np.linspace(0.0, 0.5, 400)
    flat = plots.stage_histogram_figure(even, np.full(400, "lead"), {}).axes[0]
    assert "not shown" not in flat.get_xlabel()
    assert flat.get_xlim()[1] >= 0.5


def test_shap_summary_wraps_long_labels_whole_and_names_its_dots():
    """ "High-intent actions (pricing or …or sales forms)" lost the middle of the label; the
    summary now wraps such labels onto three lines, whole. The beeswarm says what a dot is:
    a lead on flat data, an example (a lead at one as-of date) on event data."""
    from leadscore.schema import Feature

    rng = np.random.default_rng(0)
    long = "High-intent actions (pricing or demo pages, demo or sales forms), last 90 days"
    features = (
        Feature("intent", "engagement", long, "numeric"),
        Feature("size", "fit", "Company size (employees)", "numeric"),
    )
    X = pd.DataFrame({"intent": rng.poisson(2, 300), "size": rng.uniform(1, 500, 300)})
    log_odds = pd.DataFrame({"intent": 0.3 * (X["intent"] - 2), "size": 0.001 * (X["size"] - 250)})
    fig = plots.shap_summary_figure(log_odds, X, features, rows="examples")
    swarm = fig.axes[0]
    labels = [" ".join(t.get_text().split("\n")) for t in swarm.get_yticklabels()]
    assert long in labels
    assert not any("…" in label for label in labels)
    assert swarm.get_title().startswith("Each dot is an example, a lead at one as-of date")
    flat = plots.shap_summary_figure(log_odds, X, features, max_points=100)
    assert flat.axes[0].get_title() == "Each dot is a lead (100 of 300 drawn at random)"


def test_shap_summary_of_categories_only_draws_no_high_low_colour_bar():
    """olist's features are all categories, drawn grey: a High/Low colour bar explained
    nothing there. It is dropped, and the title says what grey means; a numeric feature
    keeps it."""
    from leadscore.schema import Feature

    rng = np.random.default_rng(1)
    features = (
        Feature("origin", "fit", "Origin", "categorical"),
        Feature("page", "fit", "Landing page", "categorical"),
    )
    X = pd.DataFrame(
        {
            "origin": pd.Categorical(rng.choice(["paid", "organic"], 200)),
            "page": pd.Categorical(rng.choice(["a", "b", "c"], 200)),
        }
    )
    log_odds = pd.DataFrame({"origin": rng.normal(0, 0.3, 200), "page": rng.normal(0, 0.2, 200)})
    fig = plots.shap_summary_figure(log_odds, X, features)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title().endswith("grey: categories, which have no high or low")
    numeric = X.assign(page=rng.uniform(0, 1, 200))
    with_number = (features[0], Feature("page", "fit", "Landing page", "numeric"))
    assert len(plots.shap_summary_figure(log_odds, numeric, with_number).axes) == 3


def test_mismatched_lengths_are_refused(scored):
    with pytest.raises(ValueError, match="values for"):
        plots.roc_figure(scored["y"], {"Model": scored["p_cal"][:-1]})
    with pytest.raises(ValueError, match="stages has"):
        plots.stage_histogram_figure(scored["p_cal"], ["lead"], {})


def test_figures_do_not_touch_pyplot_state(scored):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.roc_figure(scored["y"], _scores(scored))
    plots.reliability_figure(scored["y"], scored["p_raw"], scored["p_cal"])
    assert plt.get_fignums() == before


def _legend_texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_stage_legend_shares_add_up_and_a_small_stage_is_not_zero():
    """46% + 36% + 19% = 101%, and "SQL: 4 leads (0%)" for a stage that holds leads."""
    counts = {"lead": 844, "mql": 657, "sql": 347}
    stages = np.repeat(list(counts), list(counts.values()))
    p = np.where(stages == "sql", 0.8, np.where(stages == "mql", 0.4, 0.1))
    labels = _legend_texts(plots.stage_histogram_figure(p, stages, {"mql": 0.2, "sql": 0.7}))
    shares = [int(t.rsplit("(", 1)[1].rstrip("%)")) for t in labels if "leads (" in t]
    assert sum(shares) == 100
    stages = np.array(["lead"] * 1844 + ["sql"] * 4)
    p = np.where(stages == "sql", 0.9, 0.1)
    labels = _legend_texts(plots.stage_histogram_figure(p, stages, {"sql": 0.8}))
    assert "SQL: 4 leads (<1%)" in labels and "LEAD: 1,844 leads (>99%)" in labels


def test_lift_panel_has_headroom_when_every_lead_ties():
    """All-equal probabilities drew the lift line on the panel's top edge (ylim 0 to None)."""
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(int)
    fig = plots.gains_figure(y, {"Model": np.full(500, 0.1)})
    low, high = fig.axes[1].get_ylim()
    assert low == 0 and high >= 1.5
    assert fig.axes[1].get_legend()._loc == 0  # "best": away from the curve


def test_reliability_legend_does_not_cover_the_wilson_bars():
    """The legend sat on the intervals of a model whose scores all lie near 15 %."""
    rng = np.random.default_rng(3)
    p = rng.uniform(0.148, 0.16, 600)
    y = (rng.random(600) < 0.15).astype(int)
    fig = plots.reliability_figure(y, p, p)
    ax = fig.axes[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    assert ax.get_legend() is None
    (legend,) = fig.legends
    assert legend.get_window_extent().y0 >= ax.get_window_extent().y1  # above the chart
    assert "95% interval of each group's rate (Wilson)" in [t.get_text() for t in legend.texts]
    assert "each point is a group of 60 leads" in ax.texts[0].get_text()


def test_fit_engagement_counts_converted_rows_by_what_they_are():
    """ "Converted (551)" counted examples on event data without saying so."""
    n = 40
    fig = plots.fit_engagement_figure(
        np.arange(n), np.arange(n), np.full(n, "lead"), won=np.arange(n) < 5, rows="examples"
    )
    assert "Converted (5 examples)" in [t.get_text() for t in fig.legends[0].get_texts()]
