"""Activity details as CRMs and marketing tools write them: page views as URLs, form names
as titles, read as the pages and forms the features count, by every reader; a warning when
most details name no page or form leadscore knows; sales activity mapped to a real type;
outcomes spelled as Salesforce spells them."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.errors import DataError
from leadscore.features import (
    DetailCounts,
    build_features,
    build_training_examples,
    count_unrecognised_details,
    form_of_details,
    page_of_details,
    warn_unrecognised_details,
)
from leadscore.io import iter_closed_loop_chunks, load_closed_loop, write_tables
from leadscore.schema import (
    HIGH_INTENT_FORMS,
    HIGH_INTENT_PAGES,
    KNOWN_FORMS,
    KNOWN_PAGES,
    validate_activity_type_map,
    validate_closed_loop,
)
from leadscore.scoring import event_feature_chunks

AS_OF = pd.Timestamp("2024-03-31")
HIGH_INTENT = [
    "pricing_page_views_30d",
    "demo_page_views_30d",
    "high_intent_actions_30d",
    "high_intent_forms_30d",
    "days_since_last_high_intent",
]


# --------------------------------------------------------------------------- reading


#: (detail, the page it names): as written by a category log, a web analytics export, a CMS.
PAGE_CASES = [
    ("pricing", "pricing"),
    ("Pricing", "pricing"),
    ("https://www.acme.com/pricing?utm_source=x", "pricing"),
    ("https://www.acme.com/pricing/#faq", "pricing"),
    ("http://acme.com/en/pricing/", "pricing"),
    ("/en-us/pricing", "pricing"),
    ("/pricing-plans", "pricing"),
    ("https://acme.com/de/pricing-enterprise?x=1", "pricing"),
    ("www.acme.com/pricing", "pricing"),
    ("/products/pricing", "pricing"),
    ("/pricing.html", "pricing"),
    ("Pricing Page", "pricing"),
    ("https://www.acme.com/demo?utm_source=x", "demo"),
    ("/request-demo/demo", "demo"),
    # a later segment does not name a page by its first words: a blog post on pricing
    ("/blog/pricing-strategies-for-saas", "blog"),
    ("https://acme.com/blog/how-we-demo", "blog"),
    # the host is not the path
    ("https://demo.acme.com/docs/", "docs"),
    ("https://pricing.acme.com/", "home"),
    ("https://www.acme.com/", "home"),
    ("/", "home"),
    # a language alone is the site's root in that language
    ("https://acme.com/en/", "home"),
    ("/en-us/", "home"),
    ("http://www.acme.com/de_DE?utm_source=x", "home"),
    ("www.acme.com/fr#top", "home"),
    # a single-page site's route is its page; any other fragment is a place on the page
    ("https://acme.com/#/pricing", "pricing"),
    ("https://acme.com/#!/pricing-plans?utm_source=x", "pricing"),
    ("https://acme.com/en/#/demo", "demo"),
    ("https://acme.com/?utm_source=x#/blog/pricing-tips", "blog"),
    ("https://acme.com/#/", "home"),
    ("https://acme.com/#pricing", "home"),
    ("https://acme.com/#!pricing", "home"),
    ("en", None),
    ("/en/us/", None),
    ("case_study", "case_study"),
    ("/case-studies/acme", "case_studies"),
    ("pricingx", None),
    ("/en/preise", None),
    ("https://acme.com/solutions-for-pricing-teams", "solutions"),
    ("/our-story", None),
    (None, None),
    ("   ", None),
]


@pytest.mark.parametrize(("detail", "page"), PAGE_CASES)
def test_a_page_detail_reads_as_the_page_it_names(detail, page):
    assert page_of_details([detail]).tolist() == [page]


#: (detail, the form it names).
FORM_CASES = [
    ("demo_request", "demo_request"),
    ("Demo Request", "demo_request"),
    ("DEMO-REQUEST", "demo_request"),
    ("  demo   request ", "demo_request"),
    ("Contact Sales - EMEA", "contact_sales"),
    ("pricing quote form", "pricing_quote"),
    ("Newsletter", "newsletter"),
    ("Request a Demo", None),
    ("demorequest", None),
    (None, None),
]


@pytest.mark.parametrize(("detail", "form"), FORM_CASES)
def test_a_form_detail_reads_as_the_form_it_names(detail, form):
    assert form_of_details([detail]).tolist() == [form]


def test_the_reading_keeps_the_index_of_a_series():
    details = pd.Series(["/pricing", "Demo Request"], index=[7, 3])
    assert page_of_details(details).index.tolist() == [7, 3]
    assert form_of_details(details).to_dict() == {7: None, 3: "demo_request"}


def test_synthetic_pages_and_forms_are_all_known():
    from leadscore.synth import FORMS, PAGES

    assert page_of_details([p for p, *_ in PAGES]).tolist() == [p for p, *_ in PAGES]
    assert {p for p, *_ in PAGES} <= KNOWN_PAGES | {"pricing", "demo"}
    assert form_of_details([f for f, *_ in FORMS]).tolist() == [f for f, *_ in FORMS]
    assert {f for f, *_ in FORMS} <= KNOWN_FORMS | HIGH_INTENT_FORMS


def _page_variants() -> list[str | None]:
    """The table's page details and every page name and a few unknown words written as
    URLs and paths are: hosts, languages, suffixes, other segments, queries, any case."""
    names = [*sorted(HIGH_INTENT_PAGES | KNOWN_PAGES), "preise", "our_story", "en", "landing"]
    written = {n.replace("_", "-") for n in names} | {n.replace("_", " ").title() for n in names}
    paths = [
        f"{p}{w}{s}"
        for w in sorted(written)
        for p, s in itertools.product(
            ["", "/", "/blog/", "/products/", "/de/", "/en-us/", "/request-", "/x/y/"],
            ["", "/", "-plans", ".html", "/sub", "-strategies/", "s"],
        )
    ]
    hosts = ["", "https://www.acme.com", "http://acme.com", "www.acme.com", "//pricing.acme.com"]
    tails = ["", "/", "?utm_source=x", "#faq", "/?a=b#c", "/en", "/en-us/", "/#/", "#!/x?a=b"]
    urls = [f"{h}{t}" for h, t in itertools.product(hosts, tails)]
    rng = np.random.default_rng(11)
    urls += [
        f"{rng.choice(hosts)}{'/' if not p.startswith('/') else ''}{p}{rng.choice(tails)}"
        for p in paths
    ]
    upper = [u.upper() for u in urls[::7]]
    return [d for d, _ in PAGE_CASES] + names + paths + urls + upper + ["", " ", "_", "/-/"]


def _form_variants() -> list[str | None]:
    names = [*sorted(HIGH_INTENT_FORMS | KNOWN_FORMS), "book_a_meeting", "demo", "contact_sale"]
    written = [
        f"{p}{w}{s}"
        for n in names
        for w in (n, n.replace("_", " ").title(), n.replace("_", "-").upper(), n.replace("_", ""))
        for p, s in itertools.product(
            ["", " ", "Website ", "request a ", "_"], ["", " form", " - EMEA", "s", "_2024", "x"]
        )
    ]
    return [d for d, _ in FORM_CASES] + written + ["", " ", "-"]


@pytest.mark.parametrize("kind", ["page", "form"])
def test_the_features_read_details_as_the_public_reading_names_them(kind):
    """page_of_details and form_of_details (public) and _read_pages and _read_forms (what
    features count) are two codes: over thousands of details, a detail is high intent for one
    exactly when it is for the other, the same page or form, and named by one exactly when
    known to the other."""
    from leadscore import features

    details, least = (_page_variants(), 5_000) if kind == "page" else (_form_variants(), 1_000)
    assert len(details) > least
    read, names = {
        "page": (features._read_pages, features._HIGH_PAGES),
        "form": (features._read_forms, features._HIGH_FORMS),
    }[kind]
    high, known = read(features._arrow_texts(details))
    named = (page_of_details if kind == "page" else form_of_details)(details)
    features_read = pd.Series([names[i] if i >= 0 else None for i in high], dtype=object)
    is_high = named.isin(HIGH_INTENT_PAGES if kind == "page" else HIGH_INTENT_FORMS)
    assert named.notna().any() and is_high.any() and named.isna().any()
    pd.testing.assert_series_equal(named.where(is_high, None), features_read)
    assert named.notna().tolist() == known.tolist()


def test_a_language_root_is_a_known_page():
    """``/en/`` is the home page to the warning's count too: not a page leadscore lacks."""
    log = pd.DataFrame(
        {
            "activity_type": "page_view",
            "detail": ["https://acme.com/en/", "/en-us/", "https://acme.com/de?x=1", "/pricing"],
        }
    )
    counts = count_unrecognised_details(log)
    assert counts.rows["page_view"] == 4 and counts.unread["page_view"] == 0


# --------------------------------------------------------------------------- features


def _log(pages: list[str], forms: list[str]) -> dict[str, pd.DataFrame]:
    """Two leads: ``a`` viewed ``pages`` and filled ``forms`` over the last 20 days, ``b``
    read the blog; details as given, so a URL log and a category log differ only there."""
    rows = [("a", AS_OF - pd.Timedelta(days=1 + i), "page_view", p) for i, p in enumerate(pages)]
    rows += [("a", AS_OF - pd.Timedelta(days=2 + i), "form_fill", f) for i, f in enumerate(forms)]
    rows += [("b", AS_OF - pd.Timedelta(days=3), "page_view", "blog")]
    activities = pd.DataFrame(rows, columns=["lead_id", "occurred_at", "activity_type", "detail"])
    leads = pd.DataFrame({"lead_id": ["a", "b"], "created_at": [pd.Timestamp("2024-01-01")] * 2})
    return {"leads": leads, "activities": activities}


PLAIN = _log(
    ["pricing", "pricing", "demo", "blog", "product", "pricing"],
    ["demo_request", "contact_sales", "newsletter"],
)
#: The same log as a web analytics export and a marketing tool write it.
WRITTEN = _log(
    [
        "https://www.acme.com/pricing?utm_source=x",
        "https://www.acme.com/en/pricing/",
        "https://www.acme.com/demo#video",
        "https://www.acme.com/blog/pricing-strategies",
        "/product",
        "/pricing-plans",
    ],
    ["Demo Request", "Contact-Sales", "Newsletter"],
)


def _features(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    data = validate_closed_loop(frames["leads"], frames["activities"])
    return build_features(data, AS_OF).frame.set_index("lead_id")


def test_url_and_titled_details_give_the_features_of_leadscores_words():
    plain, written = _features(PLAIN), _features(WRITTEN)
    a = written.loc["a"]
    assert (a["pricing_page_views_30d"], a["demo_page_views_30d"]) == (3, 1)
    assert a["high_intent_forms_30d"] == 2
    assert a["high_intent_actions_30d"] == 6
    pd.testing.assert_frame_equal(written, plain)


def test_the_details_of_other_types_are_matched_as_before():
    """Only page and form details are read as pages and forms: a webinar is attended as
    written, and a download named ``pricing`` is no pricing page view."""
    frames = _log(["pricing"], [])
    extra = pd.DataFrame(
        {
            "lead_id": ["a", "a"],
            "occurred_at": [AS_OF - pd.Timedelta(days=1)] * 2,
            "activity_type": ["webinar", "download"],
            "detail": ["Attended", "https://acme.com/pricing"],
        }
    )
    frames["activities"] = pd.concat([frames["activities"], extra], ignore_index=True)
    a = _features(frames).loc["a"]
    assert a["webinars_attended_90d"] == 1
    assert a["pricing_page_views_30d"] == 1 and a["high_intent_actions_30d"] == 1


def test_every_reader_reads_details_alike(tmp_path):
    """Whole folder, the slices score reads, and training examples: one reading."""
    write_tables(WRITTEN, tmp_path, fmt="csv")
    expected = _features(PLAIN)[HIGH_INTENT]
    whole = build_features(load_closed_loop(tmp_path), AS_OF).frame.set_index("lead_id")
    pd.testing.assert_frame_equal(whole[HIGH_INTENT], expected)
    sliced = pd.concat(
        [build_features(c, AS_OF).frame for c in iter_closed_loop_chunks(tmp_path, chunk_leads=1)]
    ).set_index("lead_id")
    pd.testing.assert_frame_equal(sliced[HIGH_INTENT], expected)
    scored = pd.concat(
        [
            X.set_index(ids.to_numpy())
            for X, ids in event_feature_chunks(tmp_path, AS_OF, chunk_leads=1)
        ]
    )
    pd.testing.assert_frame_equal(scored[HIGH_INTENT], expected, check_names=False)
    data = validate_closed_loop(
        WRITTEN["leads"], WRITTEN["activities"], observed_until=AS_OF + pd.Timedelta(days=1)
    )
    examples = build_training_examples(data, [AS_OF], 1)
    got = examples.X.set_index(examples.lead_id.to_numpy())[HIGH_INTENT]
    pd.testing.assert_frame_equal(got, expected, check_names=False)


def test_a_map_detail_is_read_as_the_log_detail_is(tmp_path):
    """A detail the activity_types map sets goes through the same reading."""
    frames = _log([], [])
    frames["activities"] = pd.DataFrame(
        {
            "lead_id": ["a", "a"],
            "occurred_at": [AS_OF - pd.Timedelta(days=1)] * 2,
            "activity_type": ["Pricing Page Visit", "Demo Form"],
        }
    )
    frames["activity_types"] = pd.DataFrame(
        {
            "source_type": ["Pricing Page Visit", "Demo Form"],
            "activity_type": ["page_view", "form_fill"],
            "detail": ["/pricing/", "Demo Request"],
        }
    )
    write_tables(frames, tmp_path, fmt="csv")
    a = build_features(load_closed_loop(tmp_path), AS_OF).frame.set_index("lead_id").loc["a"]
    assert (a["pricing_page_views_30d"], a["high_intent_forms_30d"]) == (1, 1)


# --------------------------------------------------------------------------- the warning


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "leadscore knows" in r.getMessage()
    ]


def _warned_building(
    caplog: pytest.LogCaptureFixture, frames: dict[str, pd.DataFrame]
) -> list[str]:
    """The detail warnings of building the features of ``frames`` as of ``AS_OF``."""
    data = validate_closed_loop(frames["leads"], frames["activities"])
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        build_features(data, AS_OF)
    return _warnings(caplog)


def _unknown_pages(n_unknown: int, n_known: int) -> dict[str, pd.DataFrame]:
    pages = [f"Landing Page {i % 3}" for i in range(n_unknown)] + ["pricing"] * n_known
    return _log(pages, ["demo_request"])


def test_mostly_unknown_page_details_are_warned_about_once(caplog):
    frames = _unknown_pages(n_unknown=12, n_known=3)
    said = _warned_building(caplog, frames)
    assert len(said) == 1
    # 12 of the 16 page views with a detail (b's blog view is the 16th)
    assert said[0].startswith(
        "activities: 12 of 16 page_view rows with a detail (75%) name no page leadscore knows, "
        "most often 'landing page 0' (4), 'landing page 1' (4), 'landing page 2' (4)"
    )
    assert "pricing_page_views, demo_page_views and high_intent_actions count none" in said[0]
    assert "high-intent pages are demo, pricing" in said[0] and "blog" in said[0]
    assert "https://www.acme.com/pricing?utm_source=x" in said[0]
    assert "form_fill" not in said[0]


def test_mostly_unknown_form_names_are_warned_about(caplog):
    frames = _log(["pricing"], ["Book a meeting", "Book a meeting", "Talk to us", "newsletter"])
    (said,) = _warned_building(caplog, frames)
    assert said.startswith(
        "activities: 3 of 4 form_fill rows with a detail (75%) name no form leadscore knows, "
        "most often 'book a meeting' (2), 'talk to us' (1)"
    )
    assert "contact_sales, demo_request, pricing_quote" in said
    assert "Demo Request is demo_request" in said


def test_a_log_without_any_high_intent_page_is_warned_about(caplog):
    """A site whose pricing page is /plans: most pages are known (blog, docs), yet every
    pricing feature would be zero."""
    frames = _log(["blog", "docs", "/plans"] * 40, ["demo_request"])
    (said,) = _warned_building(caplog, frames)
    assert said.startswith(
        "activities: none of the 121 page_view rows with a detail names a high-intent page "
        "(40 name no page leadscore knows, most often '/plans' (40)), so pricing_page_views "
        "and demo_page_views are zero for every lead and high_intent_actions counts no page"
    )
    # the lead's demo request still counts as a high-intent action: the warning says so
    assert _features(frames)["high_intent_actions_30d"].sum() > 0


def test_the_warning_adds_slices_up_keeping_the_most_common_details_and_every_row():
    """Slices of a log of millions of distinct URLs add up in bounded memory: the most
    common details are kept to name, every unrecognised row is counted."""
    from leadscore.features import KEPT_DETAILS

    def slice_of(first: int) -> DetailCounts:
        urls = [f"/p?id={first + i}" for i in range(KEPT_DETAILS + 500)] + ["/plans"] * 3
        log = pd.DataFrame({"activity_type": "page_view", "detail": urls})
        return count_unrecognised_details(log)

    total = slice_of(0) + slice_of(10_000)
    assert total.unread["page_view"] == 2 * (KEPT_DETAILS + 503)
    assert len(total.unrecognised["page_view"]) == KEPT_DETAILS
    assert total.unrecognised["page_view"].index[0] == "/plans"
    assert total.unrecognised["page_view"].iloc[0] == 6


def test_a_small_log_without_high_intent_pages_is_not_warned_about(caplog):
    frames = _log(["blog", "docs", "/plans"] * 20, ["demo_request"])
    assert _warned_building(caplog, frames) == []


def test_training_warns_once_for_all_its_dates(caplog):
    frames = _unknown_pages(n_unknown=12, n_known=3)
    data = validate_closed_loop(frames["leads"], frames["activities"])
    dates = [AS_OF - pd.Timedelta(days=20), AS_OF - pd.Timedelta(days=10)]
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        build_training_examples(data, dates, 5)
    assert len(_warnings(caplog)) == 1


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(_unknown_pages(n_unknown=8, n_known=8), id="half-unknown"),
        pytest.param(PLAIN, id="leadscore-words"),
        pytest.param(WRITTEN, id="urls-and-titles"),
        pytest.param(_log([], []), id="no-page-views"),
    ],
)
def test_details_mostly_known_are_not_warned_about(frames, caplog):
    assert _warned_building(caplog, frames) == []


def test_page_views_without_details_are_not_counted_as_unknown(caplog):
    frames = _log(["pricing"], [])
    rows = pd.DataFrame(
        {
            "lead_id": ["a"] * 5,
            "occurred_at": [AS_OF - pd.Timedelta(days=2)] * 5,
            "activity_type": ["page_view"] * 5,
            "detail": [None, "", " ", None, None],
        }
    )
    frames["activities"] = pd.concat([frames["activities"], rows], ignore_index=True)
    data = validate_closed_loop(frames["leads"], frames["activities"])
    assert count_unrecognised_details(data.activities).rows["page_view"] == 2
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        build_features(data, AS_OF)
    assert _warnings(caplog) == []


def test_synthetic_data_is_not_warned_about(caplog):
    from leadscore.synth import SynthParams, generate_closed_loop

    synthetic = generate_closed_loop(SynthParams(n_leads=2000, seed=3))
    data = validate_closed_loop(
        synthetic.leads, synthetic.activities, observed_until=synthetic.observed_until
    )
    counts = count_unrecognised_details(data.activities)
    assert counts.rows["page_view"] > 1000 and counts.rows["form_fill"] > 100
    assert counts.unrecognised["page_view"].sum() == 0
    assert counts.unrecognised["form_fill"].sum() == 0
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        build_features(data, synthetic.observed_until)
    assert _warnings(caplog) == []


def _as_dicts(counts: DetailCounts) -> dict[str, object]:
    """``counts`` as plain values, to compare (a Series does not compare as one value)."""
    return {
        "rows": dict(counts.rows),
        "high_intent": dict(counts.high_intent),
        "unread": dict(counts.unread),
        "unrecognised": {k: v.to_dict() for k, v in counts.unrecognised.items()},
    }


def _whole_log_warning(folder: Path, caplog: pytest.LogCaptureFixture) -> str:
    """The one detail warning of a log of mostly unknown pages written to ``folder``, its
    features built whole (caplog cleared after)."""
    write_tables(_unknown_pages(n_unknown=12, n_known=3), folder, fmt="csv")
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        build_features(load_closed_loop(folder), AS_OF)
    (whole,) = _warnings(caplog)
    caplog.clear()
    return whole


def test_slices_can_be_counted_apart_and_warned_about_once(tmp_path, caplog):
    """A reader of slices collects each slice's counts from build_features (on_details)
    and adds them up: the same line as for the whole log, and the same counts as
    count_unrecognised_details gives."""
    whole = _whole_log_warning(tmp_path, caplog)
    found: list[DetailCounts] = []
    counted = DetailCounts({}, {})
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        for part in iter_closed_loop_chunks(tmp_path, chunk_leads=1):
            build_features(part, AS_OF, on_details=found.append)
            counted = counted + count_unrecognised_details(part.activities)
        assert _warnings(caplog) == []
        total = sum(found, DetailCounts({}, {}))
        warn_unrecognised_details(total)
    assert _warnings(caplog) == [whole]
    assert len(found) > 1 and _as_dicts(total) == _as_dicts(counted)


def test_features_built_without_a_details_sink_neither_count_nor_warn(caplog, monkeypatch):
    """``on_details=None`` (a Spark worker's): no warning, and no counting at all."""
    import leadscore.features as features

    frames = _unknown_pages(n_unknown=12, n_known=3)
    data = validate_closed_loop(frames["leads"], frames["activities"])
    expected = build_features(data, AS_OF).frame

    def counted(*args: object) -> DetailCounts:
        raise AssertionError("details counted")

    monkeypatch.setattr(features, "_detail_counts", counted)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        got = build_features(data, AS_OF, on_details=None).frame
    assert _warnings(caplog) == []
    pd.testing.assert_frame_equal(got, expected)


def test_scoring_a_folder_in_slices_warns_once_as_for_the_whole_log(tmp_path, caplog):
    """``score`` reads a folder a slice of leads at a time: its warning is the one line the
    whole log gives, not one per slice."""
    whole = _whole_log_warning(tmp_path, caplog)
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        slices = list(event_feature_chunks(tmp_path, AS_OF, chunk_leads=1))
    assert len(slices) > 1
    assert _warnings(caplog) == [whole]


def test_scoring_reads_each_slice_s_details_once(tmp_path, monkeypatch):
    """The counts the warning adds up are those the features' reading took: a slice's
    details are counted once, not once more for the warning (3 s a slice of 2M URLs)."""
    import leadscore.features as features

    write_tables(_unknown_pages(n_unknown=12, n_known=3), tmp_path, fmt="csv")
    tables: list[int] = []
    counted = features._type_detail_counts

    def counting(*args: object, **kwargs: object) -> object:
        tables.append(1)
        return counted(*args, **kwargs)

    monkeypatch.setattr(features, "_type_detail_counts", counting)
    slices = list(event_feature_chunks(tmp_path, AS_OF, chunk_leads=1))
    assert len(slices) == len(tables) == 2


def test_only_page_and_form_rows_are_counted_whatever_the_chunks(monkeypatch):
    """The count table has a row for page_view and one for form_fill only (its memory goes
    with the distinct details, not with them times the types), chunk by chunk as at once."""
    import leadscore.features as features

    rng = np.random.default_rng(3)
    types = rng.integers(0, len(features._TYPE_CODES) + 1, 1_000).astype(np.int8)
    codes = rng.integers(-1, 40, 1_000).astype(np.int32)
    weights = rng.integers(1, 9, 1_000).astype("float64")
    expected = np.zeros((2, 41), dtype=np.int64)
    weighted = np.zeros((2, 41), dtype=np.int64)
    for row, kind in enumerate(("page_view", "form_fill")):
        mine = types == features._TYPE_CODES[kind]
        np.add.at(expected[row], codes[mine] + 1, 1)
        np.add.at(weighted[row], codes[mine] + 1, weights[mine].astype(np.int64))
    for chunk in (1 << 23, 7):
        monkeypatch.setattr(features, "_DETAIL_CHUNK_ROWS", chunk)
        got = features._type_detail_counts(types, codes, 40)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(
            features._type_detail_counts(types, codes, 40, weights), weighted
        )


def test_a_log_counted_by_type_and_detail_reads_as_its_rows():
    """As a Spark driver would count the log: one row per (type, detail) with its rows."""
    counted = pd.DataFrame(
        {
            "activity_type": ["page_view", "Page_View ", "form_fill", "page_view", "chat"],
            "detail": ["https://a.com/pricing", "/plans", "Demo Request", "/plans", "hi"],
            "n": [5, 10, 2, 1, 7],
        }
    )
    counts = count_unrecognised_details(counted, rows="n")
    assert counts.rows == {"page_view": 16, "form_fill": 2}
    assert counts.high_intent == {"page_view": 5, "form_fill": 2}
    assert counts.unrecognised["page_view"].to_dict() == {"/plans": 11}
    assert counts.unrecognised["form_fill"].empty


# --------------------------------------------------------------------------- the map


def _map(sources: list[str], targets: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"source_type": sources, "activity_type": targets})


def test_the_spark_driver_counts_the_details_the_map_gives():
    """Spark counts the log's details on its driver: the types that read as pages or forms
    once mapped keep the log's detail, unless their map row sets one for all their rows."""
    from leadscore.spark import _detail_sources

    type_map = validate_activity_type_map(
        pd.DataFrame(
            {
                "source_type": ["Web Page Visit", "Pricing Page Visit", "Demo Form", "Opened"],
                "activity_type": ["page_view", "page_view", "form_fill", "email_open"],
                "detail": [None, "/pricing/", "Demo Request", None],
            }
        ),
        "the activity_types DataFrame",
    )
    rows = {"Web Page Visit": 10, "Pricing Page Visit": 4, "Demo Form": 2, "Opened": 5}
    own, set_by_map = _detail_sources(type_map, {**rows, " Page_View": 3, "form_fill": 1})
    assert own == {
        "Web Page Visit": "page_view",
        " Page_View": "page_view",
        "form_fill": "form_fill",
    }
    assert set_by_map.to_numpy().tolist() == [
        ["page_view", "/pricing/", 4],
        ["form_fill", "Demo Request", 2],
    ]
    counts = count_unrecognised_details(set_by_map, rows="count")
    assert counts.high_intent == {"page_view": 4, "form_fill": 2}


def test_sales_activity_mapped_to_a_leadscore_type_is_warned_about(caplog):
    frame = _map(
        [
            "Sales Call",
            "Meeting",
            "Log a Call",
            "TASK",
            "Opportunity Stage Change",
            "Note",
            "Change Status",
            "Status Change",
            "Visit Webpage",
        ],
        [
            "event",
            "event",
            "event",
            "email_sent",
            "form_fill",
            "ignore",
            "ignore",
            "Ignore",
            "page_view",
        ],
    )
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        validate_activity_type_map(frame, "crm/activity_types.csv")
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1
    assert said[0].startswith(
        "crm/activity_types.csv maps 'Sales Call' (to event), 'Meeting' (to event), "
        "'Log a Call' (to event), 'TASK' (to email_sent), 'Opportunity Stage Change' (to "
        "form_fill) to leadscore type(s), but they read like the sales team's activities"
    )
    assert "leak the outcome" in said[0] and "map them to ignore" in said[0]
    for quiet in ("Note", "Change Status", "Status Change", "Visit Webpage"):
        assert repr(quiet) not in said[0]


@pytest.mark.parametrize(
    "source",
    ["Calls", "Sales_Meeting", "deal-won", "Opportunities", "Notes", "Log Call"],
)
def test_sales_words_are_whole_words_in_any_case_and_number(source, caplog):
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        validate_activity_type_map(_map([source], ["event"]), "the map")
    assert f"the map maps {source!r} (to event)" in caplog.text
    assert "map it to ignore" in caplog.text


@pytest.mark.parametrize(
    "source", ["Callback Form", "Webinar Registration", "Dealer Page", "Footnote", "Visit Webpage"]
)
def test_words_merely_containing_a_sales_word_are_not_warned_about(source, caplog):
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        validate_activity_type_map(_map([source], ["event"]), "the map")
    assert caplog.text == ""


def test_a_folder_s_map_is_warned_about_once_per_read(tmp_path, caplog):
    frames = _log(["pricing"], [])
    frames["activities"]["activity_type"] = "Visit Webpage"
    frames["activity_types"] = _map(["Visit Webpage", "Sales Call"], ["page_view", "event"])
    write_tables(frames, tmp_path, fmt="csv")
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        load_closed_loop(tmp_path)
    said = [r.getMessage() for r in caplog.records if "sales team" in r.getMessage()]
    assert len(said) == 1 and "'Sales Call' (to event)" in said[0]
    assert str(tmp_path / "activity_types.csv") in said[0]


def _sales_map_source(tmp_path: Path, kind: str) -> str | Path:
    """Event data whose map sends a sales type to a leadscore type, without a manifest (the
    extract moment is then read from the data, as from a CRM export)."""
    from event_sources import write_duckdb, write_sqlite

    frames = _log(["pricing"], [])
    frames["activities"]["activity_type"] = ["Visit Webpage", "MEETING_BOOKED"]
    frames["activity_types"] = _map(["Visit Webpage", "MEETING_BOOKED"], ["page_view", "event"])
    if kind == "duckdb":
        return write_duckdb(tmp_path / "crm.duckdb", frames)
    if kind == "sqlite":
        return write_sqlite(tmp_path / "crm.db", frames)
    write_tables(frames, tmp_path / "crm", fmt=kind)
    return tmp_path / "crm"


@pytest.mark.parametrize("kind", ["parquet", "csv", "duckdb", "sqlite"])
def test_score_s_reads_of_a_source_warn_about_its_sales_types_once(tmp_path, kind, caplog):
    """``score`` and ``report drift`` take the extract moment (their default as-of), then
    read the source in slices: both check the map, and both warned, so the user read the
    leak warning twice. The extract moment keeps the map's errors and leaves the warning to
    the reader."""
    from leadscore.io import event_observed_until

    source = _sales_map_source(tmp_path, kind)
    with caplog.at_level(logging.WARNING, logger="leadscore"):
        until = event_observed_until(source)
        list(iter_closed_loop_chunks(source, observed_until=until))
    said = [r.getMessage() for r in caplog.records if "sales team" in r.getMessage()]
    assert len(said) == 1 and "'MEETING_BOOKED' (to event)" in said[0]


def test_the_extract_moment_alone_still_refuses_a_wrong_map(tmp_path):
    from leadscore.io import event_observed_until

    frames = _log(["pricing"], [])
    frames["activity_types"] = _map(["Visit Webpage"], ["meeting"])
    write_tables(frames, tmp_path, fmt="parquet")
    with pytest.raises(DataError, match="not a leadscore type"):
        event_observed_until(tmp_path)


# --------------------------------------------------------------------------- outcomes


def _outcomes(values: list[object]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"L{i}" for i in range(len(values))]
    leads = pd.DataFrame({"lead_id": ids, "created_at": ["2024-01-01"] * len(ids)})
    outcomes = pd.DataFrame(
        {"lead_id": ids, "outcome": values, "closed_at": ["2024-02-01"] * len(ids)}
    )
    return leads, outcomes


def test_outcomes_spelled_as_a_crm_does_are_quoted_as_written_with_their_counts():
    leads, outcomes = _outcomes(["Closed Won"] * 3 + ["Closed Lost"] * 5 + ["won", "lost"])
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, outcomes=outcomes)
    assert err.value.problem == (
        "outcomes.outcome holds 2 values that are not won or lost (8 rows): "
        "'Closed Lost' (5 rows), 'Closed Won' (3 rows)"
    )
    assert err.value.fix == (
        "Write won or lost in outcomes.outcome ('Closed Lost' as lost, 'Closed Won' as won); "
        "leave open leads out of outcomes."
    )


def test_outcomes_that_turn_their_word_are_not_read_as_it():
    """``Not Won`` and ``Won't buy`` say no win, and a loss to a competitor is a loss: the
    hint names only the values whose reading is sure."""
    values = ["Not Won", "Won't buy", "Lost - won by a competitor", "Closed-Won", "won", "lost"]
    leads, outcomes = _outcomes(values)
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, outcomes=outcomes)
    assert err.value.fix == (
        "Write won or lost in outcomes.outcome ('Closed-Won' as won, 'Lost - won by a "
        "competitor' as lost); leave open leads out of outcomes."
    )


def test_one_outcome_spelling_is_quoted_with_its_count():
    leads, outcomes = _outcomes(["won", "maybe", "maybe", "lost"])
    with pytest.raises(
        DataError, match=r"outcomes.outcome holds 'maybe', not won or lost \(2 rows\)"
    ):
        validate_closed_loop(leads, outcomes=outcomes)


def test_many_outcome_spellings_are_cut_after_five():
    values = [f"Stage {i}" for i in range(7) for _ in range(i + 1)] + [None]
    leads, outcomes = _outcomes(values)
    with pytest.raises(DataError) as err:
        validate_closed_loop(leads, outcomes=outcomes)
    message = err.value.problem
    assert message.startswith("outcomes.outcome holds 8 values that are not won or lost (29 rows)")
    assert "'Stage 6' (7 rows), 'Stage 5' (6 rows)" in message
    assert message.endswith("and 3 more (4 rows)")  # Stage 1, Stage 0 and the empty one
    assert "as won" not in err.value.fix
