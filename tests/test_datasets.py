"""Flat lead tables and dataset specs: typing, labels, censoring, and every spec error."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from leadscore.datasets import (
    load_dataset,
    mark_missing,
    prepare_flat_dataset,
    read_flat_table,
)
from leadscore.encoding import parse_numbers
from leadscore.errors import DataError, SpecError
from leadscore.reasons import reason_text
from leadscore.specs import load_spec, parse_spec

SPEC = {
    "name": "toy",
    "source": "leads.csv",
    "id": "id",
    "label": {"column": "converted", "won": [1], "lost": [0]},
    "order_by": "seq",
    "exclude": {"tags": "written by sales after contact"},
    "missing_values": ["Select"],
    "groups": {"engagement": ["visits"]},
    "labels": {"visits": "Website visits"},
}


def write_spec(folder: Path, frame: pd.DataFrame, **overrides) -> Path:
    frame.to_csv(folder / "leads.csv", index=False)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump({**SPEC, **overrides}))
    return path


def test_flat_table_becomes_labelled_examples(tmp_path, flat_frame):
    data = load_dataset(write_spec(tmp_path, flat_frame))
    assert list(data.X.columns) == ["visits", "source"]
    assert data.X["visits"].dtype == "float64"
    assert isinstance(data.X["source"].dtype, pd.CategoricalDtype)
    assert data.X["source"].isna().sum() == 20  # "Select" means not answered
    assert data.y.tolist() == flat_frame["converted"].tolist()
    assert data.order_kind == "sequence"
    assert {"tags", "id", "converted", "seq"} <= set(data.excluded)
    by_name = {f.name: f for f in data.features}
    assert by_name["visits"].group == "engagement" and by_name["visits"].label == "Website visits"
    assert by_name["source"].group == "fit"


def test_relative_source_resolves_against_the_spec_folder(tmp_path, flat_frame, monkeypatch):
    spec_path = write_spec(tmp_path, flat_frame)
    monkeypatch.chdir(Path("/"))
    assert len(load_dataset(spec_path).y) == len(flat_frame)


def test_relative_sqlite_url_resolves_against_the_spec_folder(tmp_path, flat_frame, monkeypatch):
    """``sqlite:///crm.db`` in a spec names a file beside the spec, like a relative path: run
    from another folder, it must not open (and create) an empty database there."""
    import sqlite3

    with sqlite3.connect(tmp_path / "crm.db") as con:
        flat_frame.to_sql("leads", con, index=False)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "source": "sqlite:///crm.db", "table": "leads"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert len(load_dataset(spec_path).y) == len(flat_frame)
    assert not (elsewhere / "crm.db").exists()


def test_relative_duckdb_url_resolves_against_the_spec_folder(tmp_path, flat_frame, monkeypatch):
    """``duckdb:///crm.duckdb`` names the DuckDB file beside the spec, as ``crm.duckdb`` does."""
    import duckdb

    with duckdb.connect(str(tmp_path / "crm.duckdb")) as con:
        con.register("frame", flat_frame)
        con.execute("CREATE TABLE leads AS SELECT * FROM frame")
    spec_path = tmp_path / "spec.yaml"
    spec = {**SPEC, "source": "duckdb:///crm.duckdb", "table": "leads"}
    spec_path.write_text(yaml.safe_dump(spec))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert len(load_dataset(spec_path).y) == len(flat_frame)


def test_identifier_like_and_constant_columns_are_left_out(flat_frame):
    frame = flat_frame.assign(
        email=[f"x{i}@a.com" for i in range(60)],
        code=[f"C-{i:04d}" for i in range(60)],
        country="IN",
    )
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert not {"email", "code", "country"} & set(data.X)
    assert "identifier" in data.excluded["code"] and "single value" in data.excluded["country"]
    assert data.excluded["email"] == "e-mail addresses of one kind only (corporate)"


def test_e_mail_addresses_are_read_as_the_kind_of_their_domain(flat_frame):
    """An address is unique per lead, its domain's kind is a fit signal: the column becomes a
    categorical feature the model reads raw addresses into, at training and at scoring. A
    column declared categorical stays as written; a few addresses among text do not count."""
    n = len(flat_frame)
    emails = [f"p{i}@{('gmail.com', 'acme.io', 'yahoo.co.uk')[i % 3]}" for i in range(n)]
    emails[4] = "n/a"
    frame = flat_frame.assign(
        email=emails, note=[f"call {i}" if i % 4 else f"n{i}@acme.io" for i in range(n)]
    )
    data = prepare_flat_dataset(frame, parse_spec({**SPEC, "labels": {"email": "Work e-mail"}}))
    feature = {f.name: f for f in data.features}["email"]
    assert (feature.kind, feature.read_as) == ("categorical", "email_domain_kind")
    assert feature.label == "Work e-mail (corporate or free mail)"
    assert data.X["email"].tolist()[:5] == ["free", "corporate", "free", "free", "missing"]
    assert "free text" in data.excluded["note"]

    declared = prepare_flat_dataset(frame, parse_spec({**SPEC, "categorical": ["email"]}))
    email = {f.name: f for f in declared.features}["email"]
    assert email.read_as is None and declared.X["email"].iloc[0] == "p0@gmail.com"


def test_amounts_and_shares_read_in_reasons_as_they_were_written(flat_frame):
    """'$24,035' is read as 24035 and '44%' as 0.44; a reason quotes them as written, a
    plain number column as a number, and braces in a label stay text."""
    n = len(flat_frame)
    frame = flat_frame.assign(
        price=[f"${1000 + 37 * i:,}" for i in range(n)],
        share=[f"{i % 90}%" for i in range(n)],
        rating=[str(i % 9) for i in range(n)],
    )
    spec = parse_spec({**SPEC, "labels": {"share": "Engagement {%}"}})
    features = {f.name: f for f in prepare_flat_dataset(frame, spec).features}
    assert reason_text(features["price"], 24035.0) == "price: $24,035"
    assert reason_text(features["price"], -75.25) == "price: -$75.25"
    assert reason_text(features["share"], 0.125) == "Engagement {%}: 12.5%"
    assert features["rating"].sentence is None
    assert reason_text(features["rating"], 4.0) == "rating: 4"


def test_won_within_days_with_censoring_and_observed_from():
    frame = pd.DataFrame(
        {
            "id": list("abcdef"),
            "contact": [
                "2018-01-01",
                "2018-01-01",
                "2018-01-10",
                "2018-03-20",
                "2018-03-25",
                "2017-11-01",
            ],
            "won_date": ["2018-01-20", "2018-03-15", None, "2018-03-30", None, "2018-01-01"],
            "origin": ["x", "y", "x", "y", "x", "y"],
        }
    )
    spec = parse_spec(
        {
            "name": "w",
            "source": "unused.csv",
            "id": "id",
            "order_by": "contact",
            "label": {
                "column": "won_date",
                "won": "not_null",
                "within_days": 30,
                "observed_from": "2017-12-01",
                "observed_until": "2018-04-10",
            },
        }
    )
    data = prepare_flat_dataset(frame, spec)
    # a: won in 19 days; b: won after 73 days (lost within 30); c: not won, window complete;
    # d: won within 10 days but its window is still open at 2018-04-10 (censored: keeping the
    # early wins of open windows and dropping the rest would inflate the newest leads' rate);
    # e: not won and window open (censored); f: contacted before outcomes were recorded
    assert data.lead_id.tolist() == ["a", "b", "c"]
    assert data.y.tolist() == [1, 0, 0]
    assert data.horizon_days == 30


def test_won_not_null_without_a_window_is_refused_with_the_fix():
    """A blank won date is a lost lead or one still open, and without ``within_days`` nothing
    tells which: training counted every blank as lost while ``score --spec`` scored the same
    blanks as open (a HubSpot export sent 668 leads lost long ago to sales). The spec is
    refused in one line that names both readings and the window to add."""
    spec = {
        "name": "w",
        "source": "unused.csv",
        "id": "id",
        "order_by": "created",
        "label": {"column": "won_date", "won": "not_null"},
    }
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "spec: label.won: not_null without label.within_days cannot tell a lead lost from one "
        "still open: both leave 'won_date' blank"
    )
    assert "Add label.within_days: N" in message
    parse_spec({**spec, "label": {**spec["label"], "within_days": 90}})


def test_a_won_date_in_the_future_does_not_silently_end_censoring():
    """The latest won date is the default extract date; one typo (2204) would end the
    censoring of every open window and count the newest leads as lost."""
    frame = pd.DataFrame(
        {
            "id": list("abcd"),
            "contact": ["2024-01-01", "2024-02-01", "2024-03-01", "2024-03-20"],
            "won_date": ["2024-01-20", "2204-02-10", None, None],
            "origin": ["x", "y", "x", "y"],
        }
    )
    label = {"column": "won_date", "won": "not_null", "within_days": 30}
    spec = {"name": "w", "source": "unused.csv", "id": "id", "order_by": "contact"}
    with pytest.raises(DataError, match=r"1 won date\(s\) in the future, e.g. 2204-02-10"):
        prepare_flat_dataset(frame, parse_spec({**spec, "label": label}))
    label["observed_until"] = "2024-04-10"
    data = prepare_flat_dataset(frame, parse_spec({**spec, "label": label}))
    assert data.lead_id.tolist() == ["a", "b", "c"] and data.y.tolist() == [1, 0, 0]


def test_within_days_does_not_inflate_the_newest_leads_win_rate():
    """Leads win at the same rate all year; the newest ones must not look better because
    their early wins are kept while their not-yet-won leads are censored."""
    rng = np.random.default_rng(3)
    n = 4000
    contact = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    won_at = contact + pd.to_timedelta(rng.integers(0, 80, n), unit="D")
    won_at = won_at.where(rng.random(n) < 0.25)
    frame = pd.DataFrame(
        {
            "id": [f"L{i}" for i in range(n)],
            "contact": contact,
            "won_date": won_at,
            "origin": rng.choice(["a", "b"], n),
        }
    )
    spec = parse_spec(
        {
            "name": "w",
            "source": "unused.csv",
            "id": "id",
            "order_by": "contact",
            "label": {"column": "won_date", "won": "not_null", "within_days": 90},
        }
    )
    data = prepare_flat_dataset(frame, spec)
    kept = frame.set_index("id").loc[data.lead_id.tolist()]
    assert (kept["contact"] + pd.Timedelta(days=90) <= won_at.max()).all()
    newest = np.asarray(data.y)[np.argsort(kept["contact"].to_numpy())][-len(data.y) // 5 :]
    assert abs(newest.mean() - 0.25) < 0.05
    assert abs(data.y.mean() - 0.25) < 0.03


def test_builtin_specs_load_the_shared_files(shared_data_root):
    xe = load_dataset("x_education", data_root=shared_data_root)
    assert len(xe.y) == 9240 and abs(xe.y.mean() - 0.385) < 0.001
    leaky = {"Tags", "Lead Quality", "Lead Profile", "Last Activity", "Last Notable Activity"}
    assert not leaky & set(xe.X.columns)
    assert all(not c.startswith("Asymmetrique") for c in xe.X.columns)
    assert xe.order_kind == "sequence"

    olist = load_dataset("olist", data_root=shared_data_root)
    assert set(olist.X.columns) == {"origin", "landing_page_id"}
    assert olist.order_kind == "time" and olist.order.min() >= pd.Timestamp("2018-01-01")
    assert olist.test_from == pd.Timestamp("2018-04-01")
    assert 0.09 < olist.y.mean() < 0.13


def test_builtin_spec_without_data_root(monkeypatch, tmp_path):
    monkeypatch.delenv("LEADSCORE_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"needs the shared data folder.*--data-root"):
        load_spec("x_education")


# --------------------------------------------------------------------- one test per error


def test_spec_key_that_does_not_exist(tmp_path, flat_frame):
    with pytest.raises(SpecError, match=r"unknown key 'exlude'.*README"):
        load_dataset(write_spec(tmp_path, flat_frame, exlude={"tags": "leak"}))


def test_spec_missing_key(tmp_path, flat_frame):
    path = write_spec(tmp_path, flat_frame)
    data = yaml.safe_load(path.read_text())
    del data["id"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match=r"missing key 'id'"):
        load_dataset(path)


def test_spec_file_not_found():
    with pytest.raises(SpecError, match=r"neither a built-in spec nor an existing file"):
        load_spec("no/such/spec.yaml")


def test_spec_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"not valid YAML"):
        load_spec(path)


def test_a_tab_in_a_spec_or_config_is_named_with_its_line(tmp_path):
    """YAML's first line ("while scanning for the next token") says neither where nor what:
    the message gives the line and column an editor shows, and names the tab."""
    from leadscore.config import load_config

    for name, loader in (("spec.yaml", load_spec), ("config.yaml", load_config)):
        path = tmp_path / name
        path.write_text("name: acme\ngroups:\n\tfit: [Country]\n")
        with pytest.raises(SpecError) as err:
            loader(path)
        message = str(err.value)
        assert f"{path} is not valid YAML at line 3, column 1: found character" in message
        assert message.endswith("Indent with spaces: YAML does not allow tabs.")
        assert "\n" not in message


def test_unknown_column_named_by_the_spec(tmp_path, flat_frame):
    with pytest.raises(DataError, match=r"has no column 'visit_count'"):
        load_dataset(write_spec(tmp_path, flat_frame, groups={"engagement": ["visit_count"]}))


def test_missing_id_column(tmp_path, flat_frame):
    with pytest.raises(DataError, match=r"has no column 'id'"):
        load_dataset(write_spec(tmp_path, flat_frame.drop(columns="id")))


def test_wrong_type(tmp_path, flat_frame):
    frame = flat_frame.astype({"visits": "string"})
    frame.loc[3, "visits"] = "many"
    with pytest.raises(DataError, match=r"'visits' is declared numeric but holds 'many'"):
        load_dataset(write_spec(tmp_path, frame, numeric=["visits"]))


def test_a_number_column_with_a_missing_token_stays_numeric(flat_frame):
    frame = flat_frame.astype({"visits": "str"})
    frame.loc[[3, 10, 17], "visits"] = "Select"
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert data.X["visits"].dtype == "float64"
    assert data.X["visits"].isna().sum() == 3
    expected = flat_frame["visits"].astype(float).drop(index=[3, 10, 17])
    assert data.X["visits"].dropna().tolist() == expected.tolist()
    scored = parse_numbers(mark_missing(frame, SPEC["missing_values"])["visits"])[0]
    pd.testing.assert_series_equal(scored, data.X["visits"], check_names=False)
    numbers, bad = parse_numbers(pd.Series(["1.5", "NULL", " N/A ", "", "none"], dtype="str"))
    assert numbers.isna().tolist() == [False, True, True, True, True]
    assert bad.tolist() == [False, False, False, False, True]  # only pandas' own spellings


def test_digit_text_that_is_an_id_a_code_or_a_category_is_not_a_number(flat_frame):
    """Only text that is a quantity reads as numbers: a reference unique per row is an
    identifier, zero-padded codes are labels, and a categorical dtype is kept."""
    n = len(flat_frame)
    frame = flat_frame.assign(
        crm_ref=[str(100_000 + i) for i in range(n)],
        zip=[f"{i % 7:05d}" for i in range(n)],
        page=pd.Categorical([str(10 + i % 4) for i in range(n)]),
    )
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert data.excluded["crm_ref"] == "unique per row (an identifier)"
    kinds = {f.name: f.kind for f in data.features}
    assert kinds["zip"] == "categorical" and kinds["page"] == "categorical"
    assert "00003" in set(data.X["zip"].cat.categories)


def test_identifiers_and_dates_are_left_out_however_typed(flat_frame):
    """Whole numbers unique per row are identifiers as integers or as text; unique decimals
    are measurements; dates written as text are timestamps, not categories."""
    n = len(flat_frame)
    frame = flat_frame.assign(
        phone=np.arange(5_550_000_000, 5_550_000_000 + n),
        phone_text=[str(5_550_000_000 + i) for i in range(n)],
        revenue=[f"{1000 + i * 1.37:.2f}" for i in range(n)],
        last_activity=[f"2024-03-{1 + i % 28:02d} 10:{i % 60:02d}:00" for i in range(n)],
        last_contacted=[f"Jun {1 + i % 28}, 2024" for i in range(n)],
    )
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert data.excluded["last_contacted"] == "a timestamp (not a property of the lead)"
    assert data.excluded["phone"] == data.excluded["phone_text"] == "unique per row (an identifier)"
    assert data.excluded["last_activity"] == "a timestamp (not a property of the lead)"
    assert {f.name: f.kind for f in data.features}["revenue"] == "numeric"


def test_the_same_table_types_the_same_from_csv_and_parquet(tmp_path, flat_frame):
    """A CSV is read as text and typed like the text columns of a Parquet file: zero-padded
    codes keep their zeros, TRUE/FALSE are one level whichever reader typed them, the country
    NA (Namibia) is a country in both, NULL in a column of numbers is missing in both, and an
    empty won date is a lost lead whether the file wrote nothing or ``""``."""
    n = len(flat_frame)
    frame = flat_frame.assign(
        zip=[f"{i % 7:05d}" for i in range(n)],
        decision_maker=["TRUE" if i % 3 else "FALSE" for i in range(n)],
        country=["NA", "IN", "US"] * (n // 3),
        revenue=[f"{i * 10}" if i % 4 else "NULL" for i in range(n)],
        won_at=["2024-01-05" if i % 3 == 0 else "" for i in range(n)],
        created="2024-01-01",
    ).astype({"seq": "str", "visits": "str", "converted": "str"})
    frame.to_csv(tmp_path / "leads.csv", index=False)
    frame.to_parquet(tmp_path / "leads.parquet", index=False)
    loaded = {}
    for suffix in ("csv", "parquet"):
        spec = {**SPEC, "name": f"toy_{suffix}", "source": str(tmp_path / f"leads.{suffix}")}
        loaded[suffix] = prepare_flat_dataset(read_flat_table(parse_spec(spec)), parse_spec(spec))
        by_date = {
            **spec,
            "order_by": "created",
            "label": {
                "column": "won_at",
                "won": "not_null",
                "within_days": 30,
                "observed_until": "2024-12-31",
            },
        }
        by_date["exclude"] = {**SPEC["exclude"], "converted": "the other label"}
        dated = prepare_flat_dataset(read_flat_table(parse_spec(by_date)), parse_spec(by_date))
        np.testing.assert_array_equal(dated.y, frame["converted"].astype(int))
    csv, parquet = loaded["csv"], loaded["parquet"]
    assert [(f.name, f.kind) for f in csv.features] == [(f.name, f.kind) for f in parquet.features]
    pd.testing.assert_frame_equal(csv.X, parquet.X)
    assert "00003" in set(csv.X["zip"].cat.categories)
    assert set(csv.X["decision_maker"].cat.categories) == {"True", "False"}
    assert set(csv.X["country"].cat.categories) == {"NA", "IN", "US"}
    assert csv.X["revenue"].dtype == "float64" and csv.X["revenue"].isna().sum() == n // 4


def test_blank_cells_are_missing_in_numbers_and_categories(flat_frame):
    frame = flat_frame.astype({"visits": "str"})
    frame.loc[4, "visits"] = ""
    frame.loc[5, "visits"] = "   "
    frame.loc[6, "source"] = " "
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert data.X["visits"].dtype == "float64"
    assert data.X["visits"].isna().tolist() == [i in (4, 5) for i in range(60)]
    assert data.X["source"].isna().sum() == 21  # 20 "Select" and one blank
    assert set(data.X["source"].cat.categories) == {"ads", "organic"}


def test_numeric_codes_forced_categorical_get_integer_levels(flat_frame):
    frame = flat_frame.assign(page=[float(i % 4) if i % 5 else np.nan for i in range(60)])
    data = prepare_flat_dataset(frame, parse_spec({**SPEC, "categorical": ["page"]}))
    assert list(data.X["page"].cat.categories) == ["0", "1", "2", "3"]
    assert data.X["page"].isna().sum() == 12


def test_empty_file(tmp_path, flat_frame):
    write_spec(tmp_path, flat_frame)
    (tmp_path / "leads.csv").write_text("")
    with pytest.raises(DataError, match=r"leads.csv is empty"):
        load_dataset(tmp_path / "spec.yaml")


def test_header_only_file(tmp_path, flat_frame):
    with pytest.raises(DataError, match=r"the table is empty"):
        load_dataset(write_spec(tmp_path, flat_frame.iloc[0:0]))


def test_duplicate_lead_id(tmp_path, flat_frame):
    frame = pd.concat([flat_frame, flat_frame.iloc[[5]]])
    with pytest.raises(DataError, match=r"duplicate id 'p5' in column 'id'"):
        load_dataset(write_spec(tmp_path, frame))


def test_ids_that_differ_only_by_spaces_around_them_are_one_lead(tmp_path, flat_frame):
    frame = flat_frame.astype({"id": "object"})
    frame.loc[7, "id"] = "p5 "
    with pytest.raises(DataError) as err:
        load_dataset(write_spec(tmp_path, frame))
    assert "ids 'p5' and 'p5 ' differ only by spaces around them in column 'id'" in str(err.value)
    assert str(err.value).endswith("Strip the spaces around ids in the export: each is one lead.")


def test_csv_lead_ids_are_read_as_written(tmp_path, flat_frame):
    """Zero-padded numeric ids (and the id ``NA``) must still join back to the CRM."""
    ids = [f"{i:05d}" for i in range(len(flat_frame))]
    ids[3] = "NA"
    data = load_dataset(write_spec(tmp_path, flat_frame.assign(id=ids)))
    assert data.lead_id.tolist() == ids


def test_empty_lead_id_names_the_spec_s_id_column(tmp_path, flat_frame):
    frame = flat_frame.astype({"id": "object"})
    frame.loc[[2, 7], "id"] = None
    with pytest.raises(
        DataError, match=r"toy\.id is empty in 2 row\(s\)\. Give every row a value in id"
    ):
        load_dataset(write_spec(tmp_path, frame))


def test_label_values_other_than_declared(tmp_path, flat_frame):
    frame = flat_frame.assign(converted=flat_frame["converted"].replace({0: 2}))
    with pytest.raises(DataError, match=r"holds '2', which is neither won \[1\] nor lost \[0\]"):
        load_dataset(write_spec(tmp_path, frame))


@pytest.mark.parametrize(
    ("values", "label", "which"),
    [
        ({0: "lost", 1: "lost"}, {"won": ["won"]}, "won"),
        ({0: "other", 1: "other"}, {"won": ["customer"], "lost": ["other"]}, "won"),
        ({0: "customer", 1: "customer"}, {"won": ["customer"], "lost": ["other"]}, "lost"),
        ({0: "customer", 1: "customer"}, {"won": ["customer"]}, "lost"),
    ],
)
def test_a_label_value_that_matches_no_closed_row_is_named(
    tmp_path, flat_frame, values, label, which
):
    """A history without a win (a misspelt label.won, with or without label.lost) or without
    a loss is refused naming the values the closed rows hold, not reported as too little
    history with 0 won."""
    frame = flat_frame.assign(converted=flat_frame["converted"].map(values))
    label = {"column": "converted", **label}
    with pytest.raises(DataError, match=rf"no closed row of 'converted' is {which} .*hold '") as e:
        load_dataset(write_spec(tmp_path, frame, label=label))
    assert "None" not in str(e.value)  # without label.lost, every other value is lost


def test_unparseable_order_timestamp(tmp_path, flat_frame):
    frame = flat_frame.assign(seq=["2024-01-01"] * 59 + ["someday"])
    with pytest.raises(DataError, match=r"seq: 1 value\(s\) do not parse as timestamps"):
        load_dataset(write_spec(tmp_path, frame))


def test_order_by_as_text_numbers_is_a_sequence(flat_frame):
    frame = flat_frame.assign(seq=[str(i) for i in range(60)])
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert data.order_kind == "sequence"
    assert data.order.tolist() == [float(i) for i in range(60)]


def test_order_by_numbers_with_a_stray_value_names_it(flat_frame):
    frame = flat_frame.assign(seq=[str(10_000 + i) for i in range(59)] + ["unknown"])
    with pytest.raises(DataError, match=r"'seq' holds sequence numbers, but 1 value.*'unknown'"):
        prepare_flat_dataset(frame, parse_spec(SPEC))


def test_order_by_dates_with_a_few_plain_numbers_names_them(flat_frame):
    """'1040' among dates read as the year 1040: the oldest lead, silently in the fit fold."""
    dates = [f"2024-01-{1 + i % 28:02d}" for i in range(57)]
    frame = flat_frame.assign(seq=[*dates, "1040", "1041", "1040"])
    with pytest.raises(DataError) as err:
        prepare_flat_dataset(frame, parse_spec(SPEC))
    assert str(err.value) == (
        "order_by column 'seq' holds dates, but 3 value(s) are plain numbers: '1040', '1041'. "
        "Write those as dates (YYYY-MM-DD), or drop those rows: a number would be read as a year."
    )


def test_within_days_needs_order_by():
    spec = {**SPEC, "label": {"column": "converted", "won": "not_null", "within_days": 30}}
    del spec["order_by"]
    with pytest.raises(SpecError, match=r"within_days needs order_by"):
        parse_spec(spec)


def test_label_matching_ignores_number_formatting(flat_frame):
    frame = flat_frame.assign(converted=flat_frame["converted"].astype(float))
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert np.array_equal(data.y, flat_frame["converted"].to_numpy())


def dated(flat_frame: pd.DataFrame) -> pd.DataFrame:
    """The flat frame with a creation date per lead, one a day from 2023-01-01."""
    days = pd.date_range("2023-01-01", periods=len(flat_frame), freq="D")
    return flat_frame.assign(created=days.strftime("%Y-%m-%d"))


def test_observed_from_and_until_apply_without_within_days(flat_frame):
    label = {**SPEC["label"], "observed_from": "2023-01-11", "observed_until": "2023-02-19"}
    frame = dated(flat_frame)
    frame.loc[:9, "converted"] = None  # outcomes were not recorded before observed_from
    data = prepare_flat_dataset(frame, parse_spec({**SPEC, "order_by": "created", "label": label}))
    assert data.lead_id.tolist() == [f"p{i}" for i in range(10, 50)]
    assert data.y.tolist() == flat_frame["converted"].iloc[10:50].tolist()


def test_observed_from_needs_a_date_order_by(flat_frame):
    label = {**SPEC["label"], "observed_from": "2023-01-11"}
    no_order = {k: v for k, v in SPEC.items() if k != "order_by"}
    with pytest.raises(SpecError, match=r"observed_from and observed_until need order_by"):
        parse_spec({**no_order, "label": label})
    with pytest.raises(SpecError, match=r"need dates in order_by, but 'seq' holds numbers"):
        prepare_flat_dataset(flat_frame, parse_spec({**SPEC, "label": label}))


def test_yes_and_no_in_a_yaml_spec_are_words(tmp_path, flat_frame):
    frame = flat_frame.assign(converted=flat_frame["converted"].map({1: "yes", 0: "no"}))
    frame.to_csv(tmp_path / "leads.csv", index=False)
    (tmp_path / "spec.yaml").write_text(
        "name: toy\nsource: leads.csv\nid: id\norder_by: seq\n"
        "label:\n  column: converted\n  won: [yes, Won]\n  lost: [no]\n"
    )
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.label.won == ["yes", "Won"] and spec.label.lost == ["no"]
    data = load_dataset(spec)
    assert data.y.tolist() == flat_frame["converted"].tolist()


@pytest.mark.parametrize("declared", [(True, False), ("yes", "no"), (1, 0), ("True", "FALSE")])
def test_flag_spellings_match_each_other_either_way(flat_frame, declared):
    label = {"column": "converted", "won": [declared[0]], "lost": [declared[1]]}
    for won, lost in (("Yes", "No"), (1, 0), ("true", "false"), (True, False)):
        frame = flat_frame.assign(converted=flat_frame["converted"].map({1: won, 0: lost}))
        data = prepare_flat_dataset(frame, parse_spec({**SPEC, "label": label}))
        assert data.y.tolist() == flat_frame["converted"].tolist()


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"won": ["Won"], "lost": ["Lost"], "open": ["won "]}, "repeats a won or lost value"),
        ({"won": [1], "lost": [0], "open": ["1.0"]}, "repeats a won or lost value"),
        ({"won": "not_null", "open": ["Open"]}, "label.open needs label.won as a list"),
        ({"won": ["Won"], "open": []}, "label.open lists no value"),
    ],
)
def test_label_open_must_not_overlap_the_outcomes(label, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({"name": "w", "source": "x.csv", "id": "id", "label": {"column": "s", **label}})


def test_join_adds_columns_and_refuses_ids_that_never_match(tmp_path, flat_frame):
    """A joined table whose ids are written differently (integers against zero-padded text)
    matches no lead: an error, not a feature that is silently empty everywhere."""
    ids = [f"{i:06d}" for i in range(len(flat_frame))]
    flat_frame.assign(id=ids).to_csv(tmp_path / "leads.csv", index=False)
    pages = [i % 5 for i in range(len(ids))]
    pd.DataFrame({"lead": ids, "pages": pages}).to_csv(tmp_path / "web.csv", index=False)
    join = [{"source": "web.csv", "id": "lead", "columns": ["pages"]}]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "join": join}))
    data = load_dataset(spec)
    assert data.X["pages"].tolist() == [float(p) for p in pages]

    web = pd.DataFrame({"lead": range(len(ids)), "pages": pages})
    web.to_parquet(tmp_path / "web.parquet", index=False)
    spec.write_text(yaml.safe_dump({**SPEC, "join": [{**join[0], "source": "web.parquet"}]}))
    with pytest.raises(DataError, match=r"web.parquet: none of its 60 lead values is a lead id"):
        load_dataset(spec)


def test_an_empty_column_is_left_out_as_empty(flat_frame):
    data = prepare_flat_dataset(flat_frame.assign(notes=""), parse_spec(SPEC))
    assert data.excluded["notes"] == "empty in every row"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"groups": {"engagement": ["tags"]}}, r"groups.engagement names 'tags', which is excl"),
        ({"allow_leakage": ["converted"]}, r"allow_leakage names 'converted', which is the label"),
        ({"categorical": ["seq"]}, r"categorical names 'seq', which is order_by"),
        ({"categorical": ["visits"], "numeric": ["visits"]}, r"both categorical and numeric"),
        ({"name": ".."}, r"name"),
    ],
)
def test_a_spec_that_contradicts_itself_is_refused(overrides, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, **overrides})


def test_an_impossible_unquoted_date_is_a_one_line_error(tmp_path, flat_frame):
    path = write_spec(tmp_path, flat_frame)
    path.write_text(path.read_text() + "test_from: 2024-13-45\n")
    with pytest.raises(SpecError, match=r"spec.yaml holds an impossible date: month must be"):
        load_dataset(path)


def test_spreadsheet_numbers_months_and_free_text_are_typed_as_what_they_are(flat_frame):
    """Numbers with thousands separators are numbers (at scoring too), a year-month is a
    date, and text with a different value for most rows is not a categorical feature."""
    n = len(flat_frame)
    frame = flat_frame.assign(
        revenue=[f"{1000 * (i % 9) + i:,}.5" for i in range(n)],
        signup_month=[f"2024-{i % 12 + 1:02d}" for i in range(n)],
        note=[f"called on day {i % 40}" for i in range(n)],
        plan=["basic", "pro", "team"] * (n // 3),
    )
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    kinds = {f.name: f.kind for f in data.features}
    assert kinds["revenue"] == "numeric" and kinds["plan"] == "categorical"
    assert data.X["revenue"].iloc[[1, 59]].tolist() == [1001.5, 5059.5]
    pd.testing.assert_series_equal(
        parse_numbers(frame["revenue"])[0], data.X["revenue"], check_names=False
    )
    assert data.excluded["signup_month"] == "a timestamp (not a property of the lead)"
    assert data.excluded["note"] == "free text (a different text for most leads)"
    kept = prepare_flat_dataset(frame, parse_spec({**SPEC, "categorical": ["note"]}))
    assert "note" in kept.X


def test_spaces_around_category_values_are_trimmed_as_in_training(flat_frame):
    spec = parse_spec(SPEC)
    clean = prepare_flat_dataset(flat_frame, spec)
    spaced = flat_frame.assign(
        source=flat_frame["source"].map({"ads": "ads ", "organic": " organic", "Select": "Select"})
    )
    padded = prepare_flat_dataset(spaced, spec)
    pd.testing.assert_frame_equal(padded.X, clean.X)
    # the scorer reads its chunks through mark_missing too: the levels it sees are the trained
    chunk = mark_missing(spaced, spec.missing_values)
    assert set(chunk["source"].dropna()) == set(clean.X["source"].cat.categories)
    # case is kept (the event form keeps it too), and the id is read as written
    cased = mark_missing(pd.DataFrame({"id": [" p1"], "x": ["Pro "]}), [], as_written=("id",))
    assert cased.to_dict("list") == {"id": [" p1"], "x": ["Pro"]}


def test_a_decomposed_unicode_header_matches_the_spec(tmp_path, flat_frame):
    import unicodedata

    name = "Städt Region"
    frame = flat_frame.assign(**{unicodedata.normalize("NFD", name): ["a", "b", "c"] * 20})
    data = load_dataset(write_spec(tmp_path, frame, labels={name: "Region"}))
    assert name in data.X.columns
    # and the other way round: the spec decomposed, the file composed
    frame = flat_frame.assign(**{name: ["a", "b", "c"] * 20})
    decomposed = unicodedata.normalize("NFD", name)
    data = load_dataset(write_spec(tmp_path, frame, labels={decomposed: "Region"}))
    assert data.features[-1].label == "Region"


@pytest.mark.parametrize("written", ["visits ", "Visits"])
def test_a_column_the_data_lacks_names_the_closest_ones(tmp_path, flat_frame, written):
    path = write_spec(tmp_path, flat_frame.rename(columns={"visits": written}))
    with pytest.raises(DataError, match=rf"no column 'visits' \(closest: '{written}'"):
        load_dataset(path)


def test_percent_and_currency_text_are_numeric_features(tmp_path, flat_frame, caplog):
    """Shares written ``43.6%`` (mixed with ``0.43``) and amounts written ``$1,549,000`` read
    as numbers, as the scorer reads them; amounts in two currencies are read with a warning."""
    rng = np.random.default_rng(21)
    n = len(flat_frame)
    tenths = rng.integers(-50, 1000, n) / 10
    share = [f"{t:.1f}%" if i % 3 else f"{t / 100:.3f}" for i, t in enumerate(tenths)]
    dollars = [f"${v:,}" for v in rng.integers(0, 10**7, n)]
    mixed = [f"{'€' if i % 2 else '£'}{v:,.2f}" for i, v in enumerate(rng.random(n) * 10**4)]
    frame = flat_frame.assign(share=share, price=dollars, fee=mixed)
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        data = load_dataset(write_spec(tmp_path, frame))
    kinds = {f.name: f.kind for f in data.features}
    assert kinds["share"] == kinds["price"] == kinds["fee"] == "numeric"
    np.testing.assert_array_equal(data.X["share"], [float(f"{t / 100:.3f}") for t in tenths])
    for column in ("share", "price", "fee"):
        pd.testing.assert_series_equal(
            parse_numbers(frame[column].astype("str"))[0], data.X[column], check_names=False
        )
    warned = [r.getMessage() for r in caplog.records if "currency" in r.getMessage()]
    assert len(warned) == 1 and "fee" in warned[0] and "£ and €" in warned[0]


def test_each_left_out_column_gets_the_reason_that_fits_it():
    """Uniqueness is judged against the rows: a column given for a few leads is no identifier
    (a sparse column of few values stays a category, sparse whole numbers stay numbers, sparse
    distinct text is called mostly empty), and text with spaces is free text, not an id."""
    rng = np.random.default_rng(22)
    n = 1200
    sparse = rng.random(n) < 0.06
    given = int(sparse.sum())
    frame = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "seq": np.arange(n),
            "converted": rng.integers(0, 2, n),
            "visits": rng.poisson(3, n),
            "ref": [f"R-{i:07d}" for i in rng.permutation(n)],
            "notes": [f"called {i}, asked about {rng.choice(['price', 'demo'])}" for i in range(n)],
            "coupon": np.where(sparse, [f"CPN{i}" for i in range(n)], None),
            "remark": np.where(sparse, [f"wants a call on day {i}" for i in range(n)], None),
            "tier": np.where(sparse, rng.choice(["gold", "silver", "bronze"], n), None),
            "deal": np.where(sparse, rng.permutation(n) * 1000.0, np.nan),
        }
    ).astype({"ref": "str", "notes": "str", "coupon": "str", "remark": "str", "tier": "str"})
    spec = parse_spec({**SPEC, "exclude": {}, "groups": {}, "labels": {}})
    data = prepare_flat_dataset(frame, spec)
    assert data.excluded["ref"] == "unique per row (an identifier)"
    assert data.excluded["notes"] == "free text (a different text for each lead)"
    expected = f"({given:,} of {n:,} rows have a value) and different in most of those"
    assert data.excluded["coupon"].startswith(f"mostly empty {expected}")
    assert data.excluded["remark"].startswith(f"free text, mostly empty {expected}")
    assert not any("identifier" in data.excluded[c] for c in ("notes", "coupon", "remark"))
    kinds = {f.name: f.kind for f in data.features}
    assert kinds["tier"] == "categorical" and kinds["deal"] == "numeric"
    assert data.X["tier"].notna().sum() == given


@pytest.mark.parametrize("won_kind", ["list", "lost declared", "yes/no"])
def test_a_label_without_lost_names_what_it_counts_as_lost(caplog, won_kind):
    """With only ``label.won`` every other value counts as lost: a warning names them with
    their counts (five at most), unless the spec says so (``lost``) or the label is yes/no."""
    rng = np.random.default_rng(23)
    n = 400
    stages = ["Won", "Lost", "Open", "Working", "Nurture", "Stalled", "Junk", "Later"]
    stage = rng.choice(stages, n, p=[0.3, 0.3, 0.1, 0.1, 0.06, 0.06, 0.05, 0.03])
    if won_kind == "yes/no":
        stage = np.where(stage == "Won", "yes", "no")
    frame = pd.DataFrame(
        {"id": [f"p{i}" for i in range(n)], "stage": stage, "visits": rng.poisson(3, n)}
    ).astype({"stage": "str"})
    label = {
        "list": {"won": ["Won"]},
        "lost declared": {"won": ["Won"], "lost": stages[1:]},
        "yes/no": {"won": [1]},
    }[won_kind]
    spec = parse_spec(
        {"name": "t", "source": "x.csv", "id": "id", "label": {"column": "stage", **label}}
    )
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        prepare_flat_dataset(frame, spec)
    warned = [r for r in caplog.records if "counted as lost" in r.getMessage()]
    if won_kind != "list":
        assert not warned
        return
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
    message = warned[0].getMessage()
    counts = pd.Series(stage[stage != "Won"]).value_counts()
    for value, count in counts.iloc[:5].items():
        assert f"'{value}' ({count:,})" in message
    rest = counts.iloc[5:]
    assert f"and {len(rest)} more ({rest.sum():,})" in message
    assert message.startswith("label stage: counted as lost: ")
    assert message.endswith("declare label.lost and label.open to make this explicit")


@pytest.mark.parametrize("value", ["Won", "1", "true", "yes", "2.5", "'Closed Won'"])
def test_a_single_label_value_needs_no_brackets(tmp_path, value):
    """``won: Won`` in a spec file is ``won: [Won]``, for lost and open too; ``won: not_null``
    keeps its meaning, and ``not_null`` elsewhere is an error."""

    def label(won: str, rest: str = "") -> object:
        path = tmp_path / "spec.yaml"
        path.write_text(
            f"name: t\nsource: x.csv\nid: id\nlabel:\n  column: s\n  won: {won}\n{rest}"
        )
        return load_spec(path).label

    rest = "  lost: Lost\n  open: Working\n"
    assert label(value, rest) == label(f"[{value}]", "  lost: [Lost]\n  open: [Working]\n")
    assert label("not_null", "  within_days: 90\norder_by: c\n").won == "not_null"
    with pytest.raises(SpecError, match=r"label\.lost: not_null is only for label\.won"):
        label(value, "  lost: not_null\n")


def test_amounts_written_with_a_scale_read_as_numbers(flat_frame):
    """Revenue as CRMs export it (``$1.2M``, ``€3bn``, ``150K €``) is one numeric column,
    read by training and scoring alike; a scale without a currency (a tier ``1B``, a screen
    ``4K``, a term ``3M``), or beside a percent sign, is text."""
    n = len(flat_frame)
    written = ["$1.2M", "$150K", "€3bn", "2.5M €", "$900", "-$2k"]
    frame = flat_frame.assign(revenue=[written[i % len(written)] for i in range(n)])
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert {f.name: f.kind for f in data.features}["revenue"] == "numeric"
    assert data.X["revenue"].iloc[: len(written)].tolist() == [1.2e6, 1.5e5, 3e9, 2.5e6, 900, -2e3]
    codes = pd.Series(["1B", "4K", "3M", "150K", "5KM", "$1.2MB", "3M%", "M5"], dtype="str")
    numbers, bad = parse_numbers(codes)
    assert bad.all() and numbers.isna().all()
    tiers = flat_frame.assign(tier=[["1", "2", "3", "1B", "2B"][i % 5] for i in range(n)])
    kinds = {f.name: f.kind for f in prepare_flat_dataset(tiers, parse_spec(SPEC)).features}
    assert kinds["tier"] == "categorical"


def test_an_amount_whose_dot_may_group_thousands_is_not_read_as_decimals():
    """``€12.500`` is twelve thousand five hundred in much of Europe: read as 12.5 it ranked
    below ``€850`` without a word. Such amounts stay text (the column's words are then named
    as usual); currencies carry two decimals at most, so ``€12.50``, ``$0.125`` and a scale
    (``€1.250M``) read as before, and so does a plain ``2.333`` (a ratio)."""
    ambiguous = pd.Series(["€12.500", "12.500 €", "$1.250", "-£999.000"], dtype="str")
    numbers, bad = parse_numbers(ambiguous)
    assert bad.all() and numbers.isna().all()
    read, bad = parse_numbers(pd.Series(["€12.50", "$0.125", "€1.250M", "2.333", "12.5%"]))
    assert not bad.any()
    assert read.tolist() == [12.5, 0.125, 1.25e6, 2.333, 0.125]


def test_numbers_with_a_few_words_stay_categories_with_a_warning(flat_frame, caplog):
    """A count column holding ``unknown`` in a few rows keeps every value as categories (a
    bucket such as ``3+`` is no noise), and a warning names the words and how to read the
    column as numbers instead: the words under missing_values."""
    n = len(flat_frame)
    counts = [str(i % 5) for i in range(n)]
    counts[3] = counts[17] = "unknown"
    frame = flat_frame.assign(forms=counts)
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        data = prepare_flat_dataset(frame, parse_spec(SPEC))
    assert {f.name: f.kind for f in data.features}["forms"] == "categorical"
    (warned,) = [r.getMessage() for r in caplog.records if "'forms'" in r.getMessage()]
    assert "'unknown' (2)" in warned and "missing_values" in warned
    fixed = prepare_flat_dataset(frame, parse_spec({**SPEC, "missing_values": ["unknown"]}))
    assert {f.name: f.kind for f in fixed.features}["forms"] == "numeric"
    assert fixed.X["forms"].isna().sum() == 2


def test_amounts_left_as_text_are_named_with_how_to_write_them(flat_frame, caplog):
    """``12500 EUR`` became 848 categories, and ``€12.500`` beside ``€850`` a few words,
    without a word on why: the warning names the kind of amount and how to write it, and
    says what happens to the column (here, a different value for most leads: left out)."""
    n = len(flat_frame)
    coded = [f"{1000 + 37 * i} EUR" for i in range(n)]
    dotted = [f"€{850 + i}" if i % 4 else f"€{12 + i % 7}.500" for i in range(n)]
    frame = flat_frame.assign(value=coded, budget=dotted)
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        prepare_flat_dataset(frame, parse_spec(SPEC))
    warned = {
        name: r.getMessage()
        for r in caplog.records
        for name in ("value", "budget")
        if r.getMessage().startswith(f"{name!r} is left out as ")
    }
    assert "amounts with a currency code ('1000 EUR'), which stay text" in warned["value"]
    assert "amounts whose dot may group thousands ('€12.500'), which stay text" in warned["budget"]
    assert "write them as 12500 or 12,500" in warned["budget"]


def test_free_text_job_titles_read_as_the_seniority_they_name(flat_frame):
    """A CRM's job titles are a different text for most leads, so as categories they would be
    left out; named like titles and naming ranks, they read as seniority (as the event form
    reads them), at training and scoring alike. Titles that name no rank stay left out."""
    from leadscore.encoding import read_title_seniority
    from leadscore.reasons import reason_text

    n = len(flat_frame)
    ranks = ["VP of Sales", "Marketing Manager", "Chief Revenue Officer", "Analyst", "Director"]
    titles = [f"{ranks[i % len(ranks)]} #{i}" for i in range(n)]
    # page titles with rank words in them: the name says they are no job titles
    pages = [f"{ranks[i % len(ranks)]} guide, part {i}" for i in range(n)]
    frame = flat_frame.assign(**{"Job Title": titles, "Last Page Title": pages})
    data = prepare_flat_dataset(frame, parse_spec(SPEC))
    (title,) = [f for f in data.features if f.name == "Job Title"]
    assert (title.kind, title.read_as, title.label) == (
        "categorical",
        "title_seniority",
        "Job Title (seniority)",
    )
    assert data.X["Job Title"].iloc[:5].astype(str).tolist() == [
        "vp",
        "manager",
        "c_level",
        "individual",
        "director",
    ]
    assert data.excluded["Last Page Title"].startswith("free text")
    assert reason_text(title, "individual") == "Job Title (seniority): Individual contributor"
    assert reason_text(title, "vp") == "Job Title (seniority): VP"
    read = read_title_seniority(frame["Job Title"])
    pd.testing.assert_series_equal(read_title_seniority(read.astype(str)), read)
    as_written = prepare_flat_dataset(frame, parse_spec({**SPEC, "categorical": ["Job Title"]}))
    assert {f.name: f.read_as for f in as_written.features}["Job Title"] is None


def test_titles_that_repeat_too_little_read_as_seniority_and_a_picklist_stays(flat_frame):
    """Hand-written titles repeat ("Sr. Director, IT" twice), so fewer than half are distinct
    and they were kept as thousands of categories the model could not use: a long tail
    (fewer than 10 leads a level) named like titles reads as seniority. A picklist of a few
    titles stays categories."""
    n = len(flat_frame)
    ranks = ["VP of Sales", "Marketing Manager", "Chief Revenue Officer", "Analyst", "Director"]
    titles = [f"{ranks[i // 3 % len(ranks)]} #{i // 3}" for i in range(n)]  # each 3 times
    assert pd.Series(titles).nunique() < n / 2
    frame = flat_frame.assign(Title=titles)
    read = {f.name: f.read_as for f in prepare_flat_dataset(frame, parse_spec(SPEC)).features}
    assert read["Title"] == "title_seniority"
    picklist = flat_frame.assign(Title=[ranks[i % len(ranks)] for i in range(n)])
    features = prepare_flat_dataset(picklist, parse_spec(SPEC)).features
    assert {f.name: (f.kind, f.read_as) for f in features}["Title"] == ("categorical", None)


def test_joined_ids_with_spaces_around_them_are_named(tmp_path, flat_frame, caplog):
    """Ids a joined table writes with spaces around them match no lead: the error (none
    match) or warning (some do) says so, rather than leaving their columns empty in silence.
    Ids are not stripped: they are matched as written."""
    ids = [f"{i:06d}" for i in range(len(flat_frame))]
    flat_frame.assign(id=ids).to_csv(tmp_path / "leads.csv", index=False)
    join = [{"source": "web.parquet", "id": "lead", "columns": ["pages"]}]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "join": join}))
    pages = [float(i % 5) for i in range(len(ids))]
    web = pd.DataFrame({"lead": [f" {i}" for i in ids], "pages": pages})
    web.to_parquet(tmp_path / "web.parquet", index=False)
    with pytest.raises(DataError, match=r"60 of those id\(s\) differ from a lead's id only by"):
        load_dataset(spec)
    half = web.assign(lead=[i if n % 2 else f"{i} " for n, i in enumerate(ids)])
    half.to_parquet(tmp_path / "web.parquet", index=False)
    with caplog.at_level("WARNING", logger="leadscore.datasets"):
        data = load_dataset(spec)
    assert data.X["pages"].isna().sum() == 30
    said = [m for m in caplog.messages if "only by spaces" in m]
    assert len(said) == 1 and said[0].startswith("joined table web.parquet: 30 id(s) differ")


def test_a_number_column_with_lone_dashes_says_it_is_left_out_not_read_as_categories(
    flat_frame, caplog
):
    """Revenue with an em dash in a few cells was warned about as "read as categories" and
    then left out as identifier-like text: the messages now say what happens (left out), why,
    and the line to add; a dash is named for what it usually is, an empty cell. A count with
    dashes is read as categories, as its warning says."""
    n = len(flat_frame)
    revenue = [f"{1000 + 13.7 * i:.2f}" if i % 6 else "—" for i in range(n)]
    forms = [str(i % 4) if i % 5 else "-" for i in range(n)]
    frame = flat_frame.assign(revenue=revenue, forms=forms)
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        data = prepare_flat_dataset(frame, parse_spec(SPEC))
    lines = [r.getMessage() for r in caplog.records]
    assert not [line for line in lines if line.startswith("'revenue' is read as categories")]
    (left,) = [line for line in lines if line.startswith("'revenue'")]
    assert left == (
        "'revenue' is left out as identifier-like text (a different value for most leads): it "
        "holds numbers, except 10 value(s): '—' (10); a lone dash is how many CRMs write an "
        'empty cell: list it under missing_values (missing_values: ["—"]) to read the column '
        "as numbers"
    )
    assert data.excluded["revenue"].startswith(
        "identifier-like text (a different value for most leads); it holds numbers, except 10 "
        "value(s): '—' (10); a lone dash"
    )
    (forms_line,) = [line for line in lines if line.startswith("'forms'")]
    assert forms_line.startswith("'forms' is read as categories: numbers, except 12 value(s)")
    assert {f.name: f.kind for f in data.features}["forms"] == "categorical"
    fixed = prepare_flat_dataset(frame, parse_spec({**SPEC, "missing_values": ["—", "-"]}))
    assert {f.name: f.kind for f in fixed.features}["revenue"] == "numeric"
    assert fixed.X["revenue"].isna().sum() == 10


def test_decimal_commas_are_named_with_how_to_read_them(flat_frame, caplog):
    """``4,3`` in a column declared numeric was told to "add the token to missing_values",
    and undeclared it became hundreds of categories without a word: both now name decimal
    commas, the value written with a dot, and the DuckDB view that reads them as numbers."""
    n = len(flat_frame)
    minutes = [f"{i % 3},{i % 4}" if i % 3 else str(i % 9) for i in range(n)]
    frame = flat_frame.assign(minutes=minutes)
    with pytest.raises(DataError) as err:
        prepare_flat_dataset(frame, parse_spec({**SPEC, "numeric": ["minutes"]}))
    assert str(err.value) == (
        "column 'minutes' is declared numeric but holds decimal commas ('1,1'), which stay "
        "text. Write them with a dot (1.1), or read the file through a DuckDB view that parses "
        "them (source: a .duckdb file holding CREATE VIEW leads AS SELECT * FROM "
        "read_csv('leads.csv', decimal_separator=','), and table: leads)."
    )
    with caplog.at_level(logging.WARNING, logger="leadscore.datasets"):
        data = prepare_flat_dataset(frame, parse_spec(SPEC))
    (line,) = [r.getMessage() for r in caplog.records if "'minutes'" in r.getMessage()]
    assert line.startswith(
        "'minutes' is read as categories: decimal commas ('1,1') stay text: write them with a "
        "dot (1.1), or read the file through a DuckDB view"
    )
    assert {f.name: f.kind for f in data.features}["minutes"] == "categorical"
    with pytest.raises(DataError, match=r"'visits' is declared numeric but holds 'many'\. "):
        prepare_flat_dataset(
            flat_frame.assign(visits=["many" if i == 3 else str(i % 7) for i in range(n)]),
            parse_spec({**SPEC, "numeric": ["visits"]}),
        )


ENGLISH_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
GERMAN_MONTHS = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"
GERMAN_SHORT_MONTHS = "Jänner Feb. Mär. Apr. Mai Jun. Jul. Aug. Sep. Okt. Nov. Dez."


@pytest.mark.parametrize(
    "months",
    [ENGLISH_MONTHS, GERMAN_MONTHS, GERMAN_SHORT_MONTHS],
    ids=["english", "german", "german-abbreviated"],
)
def test_a_date_written_day_dot_month_name_is_a_timestamp(flat_frame, months):
    """``17. Mar 2025`` and a German export's ``17. März 2025`` were kept as categories (a
    later date leaks), while ``17-Mar-2025`` and ``Mar 17, 2025`` were left out as dates."""
    n = len(flat_frame)
    names = months.split()
    written = [f"{i % 28 + 1}. {names[i % 12]} {2024 + i % 2}" for i in range(n)]
    data = prepare_flat_dataset(flat_frame.assign(last_activity=written), parse_spec(SPEC))
    assert data.excluded["last_activity"] == "a timestamp (not a property of the lead)"


def test_an_order_value_neither_number_nor_date_names_the_input_and_no_iso_dates():
    """``score --input`` with ``Lead Number`` all ``abc`` was told ``leads.csv.Lead Number
    ... Write Lead Number as ISO dates``: the spec's source, not the input, and dates for a
    sequence column. The table scored is named, and the fix asks for either kind."""
    from leadscore.datasets import parse_order_column

    spec = parse_spec(
        {
            "name": "w",
            "source": "leads.csv",
            "id": "id",
            "order_by": "Lead Number",
            "label": {"column": "s", "won": ["Won"]},
        }
    )
    values = pd.Series(["abc", "abc", None], dtype="string")
    with pytest.raises(DataError) as refused:
        parse_order_column(values, spec, table="in_orderbad.csv")
    message = str(refused.value)
    assert message.startswith(
        "in_orderbad.csv: order_by column 'Lead Number' holds 2 value(s) that are neither "
        "numbers nor dates: 'abc'"
    ), message
    assert "ISO dates" not in message and "sequence number or the date" in message
    dates = pd.Series(["2024-03-01", "01/03/2024"], dtype="string")  # still the date error
    with pytest.raises(DataError, match="timestamps"):
        parse_order_column(dates, spec)
