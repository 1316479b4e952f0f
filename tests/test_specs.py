"""Spec files with mistakes: each is refused with one line that names the key as written in
the YAML and what to write there, in plain words and never in pydantic's."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
import yaml

from leadscore.errors import SpecError
from leadscore.specs import (
    DatasetSpec,
    GroupsSpec,
    JoinSpec,
    LabelSpec,
    label_key,
    load_spec,
    parse_spec,
)

TOP = "name: toy\nsource: leads.csv\nid: Lead ID\n"
LABEL = "label:\n  column: Status\n  won: [Won]\n"

#: Pydantic's wording, which a spec error must never show: it speaks of Python types and of
#: steps the user never wrote.
PYDANTIC_WORDING = (
    "Input should",
    "String should match",
    "Field required",
    "Extra inputs",
    "Value error",
    "valid dictionary",
    "instance of",
    "list[",
    "literal[",
    "union[",
    "[key]",
    "should have at least",
    "greater than",
    "Datetimes provided",
    "^[A-Za-z0-9",
)


def spec_error(tmp_path: Path, text: str) -> str:
    """The one-line message with which load_spec refuses ``text`` written as a spec file."""
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert not [words for words in PYDANTIC_WORDING if words in message], message
    return message


def test_an_exclude_entry_without_a_reason_asks_for_one(tmp_path):
    message = spec_error(tmp_path, TOP + LABEL + "exclude:\n  Deal Owner:\n")
    assert message.endswith(
        'exclude.Deal Owner has no reason. Write why it is left out, e.g. "Deal Owner: '
        'assigned by sales after contact".'
    )


def test_a_misspelt_label_key_is_named_with_the_key_meant(tmp_path):
    """The typo leaves label.column missing too; the typo is what to name, with the fix."""
    message = spec_error(tmp_path, TOP + "label:\n  colum: Status\n  won: [Won]\n")
    assert "unknown key 'label.colum' (did you mean 'column'?)" in message
    assert "label takes column, won, lost, open, within_days" in message
    assert "missing key" not in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("exlude:\n  Tags: by sales\n", "unknown key 'exlude' (did you mean 'exclude'?)"),
        ("Labels:\n  Visits: Visits\n", "unknown key 'Labels' (did you mean 'labels'?)"),
        ("groups:\n  engagment: [Visits]\n", "'groups.engagment' (did you mean 'engagement'?)"),
        (
            "join:\n  - source: w.csv\n    id: Lead\n    colums: [Pages]\n",
            "(did you mean 'columns'?)",
        ),
    ],
)
def test_a_misspelt_key_suggests_the_key_of_its_own_level(tmp_path, extra, expected):
    message = spec_error(tmp_path, TOP + LABEL + extra)
    assert expected in message
    assert "Fix its spelling or remove it" in message


def test_a_key_at_the_wrong_level_is_told_where_it_belongs(tmp_path):
    message = spec_error(tmp_path, TOP + LABEL + "lost: [Lost]\n")
    assert message.endswith("unknown key 'lost' (it belongs under label). Move it there, indented.")
    message = spec_error(tmp_path, TOP + LABEL + "  order_by: Created\n")
    assert "unknown key 'label.order_by' (it belongs at the top level)" in message
    message = spec_error(tmp_path, TOP + LABEL + "colour: blue\n")
    assert message.endswith(
        "unknown key 'colour'. Fix its spelling or remove it; the README's dataset spec section "
        "lists every key."
    )


def test_a_bad_name_says_in_words_which_characters_it_may_hold(tmp_path):
    message = spec_error(tmp_path, "name: Ventes été 2024!\nsource: x.csv\nid: id\n" + LABEL)
    assert message.endswith(
        "name 'Ventes été 2024!' may hold only letters, digits, '_', '.' and '-'. "
        "Rename it, e.g. name: Ventes_ete_2024."
    )


@pytest.mark.parametrize(
    ("text", "names", "fix"),
    [
        # wrong kinds: a list or text where keys are expected, and the other way round
        (
            TOP + "label: [Status]\n",
            "label is a list, but it must be a mapping of keys",
            "Write its keys (column, won",
        ),
        (TOP + "label: Status\n", "label is the text 'Status'", "indented on the lines below"),
        (TOP + LABEL + "groups: [Visits]\n", "groups is a list", "Write its keys (fit and"),
        (
            TOP + LABEL + "exclude: [Tags]\n",
            "exclude is a list",
            "e.g. exclude: {Tags: assigned by sales after contact}",
        ),
        (TOP + LABEL + "exclude: Tags\n", "exclude is the text 'Tags'", "exclude: {Tags: "),
        (
            TOP + LABEL + "join:\n  source: w.csv\n",
            "join is a mapping of keys, but it must be a list",
            "put '- ' before the first key of each entry",
        ),
        (TOP + LABEL + "join: [w.csv]\n", "join[0] is the text 'w.csv'", "(source, table, id"),
        (
            TOP + LABEL + "categorical: Tags\n",
            "categorical is the text 'Tags', but it must be a list",
            "Write it in brackets: categorical: [Tags].",
        ),
        (TOP + LABEL + "numeric:\n", "numeric has no value", "e.g. numeric: [A, B], or remove"),
        (
            TOP + "label:\n  column: Status\n  won: {Won: 1}\n",
            "label.won is a mapping of keys, but it must be a list or not_null",
            "won: [A, B], or won: not_null.",
        ),
        (TOP + "label:\n  column: Status\n  won:\n", "label.won has no value", "won: not_null"),
        (
            TOP + "label:\n  column: Status\n  won: [[Won]]\n",
            "label.won[0] is a list, but it must be a single value",
            "Write a single value in it.",
        ),
        (  # YAML reads an unquoted ': ' inside a value as a key and its value
            TOP + "label:\n  column: Status\n  won: [Closed: Converted]\n",
            "label.won[0] is a mapping of keys, but it must be a single value",
            'Put text holding ": " in quotes: "Closed: Converted".',
        ),
        (
            TOP + "label:\n  column: Status\n  won: [Won]\n  lost: {Lost: 0}\n",
            "label.lost is a mapping of keys",
            "lost: [A, B]",
        ),
        (
            TOP + LABEL + "test_from: [2024-01-01]\norder_by: Created\n",
            "test_from is a list, but it must be a single value",
            "after 'test_from:'",
        ),
        # a number (or a date, or true) where text is expected
        (
            "name: toy\nsource: leads.csv\nid: true\n" + LABEL,
            "id is the yes/no value true, but it must be text",
            'Put it in quotes: id: "true".',
        ),
        (TOP + LABEL + "groups:\n  1: [Visits]\n", "unknown key 'groups.1'", "takes fit and"),
        (
            "name: toy\nsource: leads.csv\nid: 1234\n" + LABEL,
            "id is the number 1234, but it must be text",
            'Put it in quotes: id: "1234".',
        ),
        (
            TOP + "label:\n  column: 2024\n  won: [Won]\n",
            "label.column is the number 2024",
            'column: "2024"',
        ),
        (
            TOP + LABEL + "categorical: [Tags, 2024]\n",
            "categorical[1] is the number 2024",
            'Put it in quotes: "2024".',
        ),
        (
            TOP + LABEL + "exclude:\n  2024: old survey\n",
            "exclude has the number 2024 as a key",
            'Put it in quotes, "2024"',
        ),
        (
            TOP + LABEL + "labels:\n  Visits:\n",
            "labels.Visits has no label",
            '"Visits: Time on the website (seconds)"',
        ),
        (TOP + LABEL + "description: 5\n", "description is the number 5", 'description: "5"'),
        (
            TOP + LABEL + "exclude:\n  Tags: 2024-01-01\n",
            "exclude.Tags has the date 2024-01-01 as its reason",
            "Write why it is left out",
        ),
        # a missing value
        ("name:\nsource: x.csv\nid: id\n" + LABEL, "name has no value", "after 'name:'"),
        ("name: ''\nsource: x.csv\nid: id\n" + LABEL, "name is empty", "letters, digits"),
        (
            TOP + "label:\n  column: Status\n  won: [Won, null]\n",
            "label.won[1] is empty",
            "remove it",
        ),
        ("name: toy\nsource: x.csv\n" + LABEL, "missing key 'id'", "Add 'id:' to the spec"),
        (
            TOP + LABEL + "join:\n  - source: w.csv\n    columns: [Pages]\n",
            "missing key 'join[0].id'",
            "Add 'id:' under join[0]",
        ),
        # numbers, dates and lists that break a rule
        (
            TOP + LABEL + "  within_days: 0\norder_by: Created\n",
            "label.within_days is 0, but it must be more than 0",
            "within_days: 90",
        ),
        (
            TOP + LABEL + "  within_days: soon\norder_by: Created\n",
            "label.within_days is the text 'soon', but it must be a whole number",
            "whole number",
        ),
        (
            TOP + LABEL + "  within_days: true\norder_by: Created\n",
            "label.within_days is the yes/no value true, but it must be a whole number",
            "within_days: 90",
        ),
        (
            TOP + LABEL + "  within_days: 30.5\norder_by: Created\n",
            "the number 30.5",
            "within_days: 90",
        ),
        (
            TOP + LABEL + "  observed_from: '2024-13-01'\norder_by: Created\n",
            "label.observed_from is the text '2024-13-01', but it must be a date",
            "YYYY-MM-DD, e.g. observed_from: 2024-01-31",
        ),
        (
            TOP + LABEL + "  observed_until: 20240101\norder_by: Created\n",
            "label.observed_until is the number 20240101",
            "YYYY-MM-DD",
        ),
        (
            TOP + LABEL + "join:\n  - source: w.csv\n    id: Lead\n    columns: []\n",
            "join[0].columns lists nothing",
            "List at least one",
        ),
        # the spec's own checks keep their words
        (
            TOP + "label:\n  column: Status\n  won: [Won]\n  lost: not_null\n",
            "label.lost: not_null is only for label.won",
            "README",
        ),
        (
            "name: ..\nsource: x.csv\nid: id\n" + LABEL,
            "name '..' would write the model outside",
            "README",
        ),
        (TOP + "label:\n  column: Status\n  won: []\n", "label.won lists no value", "README"),
        # a blank won date without a window: lost to training, open to the scorer
        (
            TOP + "label:\n  column: Won Date\n  won: not_null\norder_by: Created\n",
            "label.won: not_null without label.within_days cannot tell a lead lost from one "
            "still open: both leave 'Won Date' blank",
            "Add label.within_days: N (won means won within N days of order_by",
        ),
    ],
)
def test_a_bad_value_names_its_key_and_the_fix(tmp_path, text, names, fix):
    message = spec_error(tmp_path, text)
    assert names in message
    assert fix in message
    assert message.index(names) < message.index(fix)


#: Values of every kind YAML can give, to put under every key of a spec.
ODD_VALUES = (
    None,
    "",
    "text",
    0,
    -1,
    1.5,
    True,
    dt.date(2024, 1, 1),
    [],
    [None],
    [[1]],
    [{"a": 1}],
    {},
    {"a": None},
    {1: "x"},
)


def test_no_value_under_any_key_shows_pydantic_wording():
    """Every key of every level with every kind of value: whatever pydantic objects to, the
    message is one line that names the key, never pydantic's own."""
    base = {
        "name": "toy",
        "source": "x.csv",
        "id": "id",
        "order_by": "t",
        "label": {"column": "s", "won": ["Won"]},
        "groups": {},
        "join": [{"source": "w.csv", "id": "id", "columns": ["c"]}],
    }
    levels = {(): DatasetSpec, ("label",): LabelSpec, ("groups",): GroupsSpec}
    levels[("join", 0)] = JoinSpec
    refused = 0
    for level, model in levels.items():
        for key in (k for k, field in model.model_fields.items() if not field.exclude):
            for value in ODD_VALUES:
                data = copy.deepcopy(base)
                node = data
                for step in level:
                    node = node[step]
                node[key] = value
                try:
                    parse_spec(data, origin="spec.yaml")
                except SpecError as err:
                    refused += 1
                    message = str(err)
                    assert "\n" not in message
                    assert not [w for w in PYDANTIC_WORDING if w in message], message
                    assert key in message or "label" in message, message
    assert refused > 200


@pytest.mark.parametrize(
    ("written", "day_first", "month_first"),
    [
        ("01/09/2025", "2025-09-01", "2025-01-09"),
        ("1.9.25", "2025-09-01", "2025-01-09"),
        ("05-06-2026 10:00", "2026-06-05", "2026-05-06"),
    ],
)
def test_a_test_from_that_reads_as_two_days_is_refused(tmp_path, written, day_first, month_first):
    """``test_from: 01/09/2025`` was read month-first (9 January) whatever the data's format,
    while the other spec dates take YYYY-MM-DD only: it is refused, with both readings."""
    message = spec_error(tmp_path, TOP + LABEL + f"order_by: Created\ntest_from: {written}\n")
    assert message.endswith(
        f"test_from {written!r} reads both day-first ({day_first}) and month-first "
        f"({month_first}). Write it as YYYY-MM-DD: test_from: {day_first} or test_from: "
        f"{month_first}."
    )


@pytest.mark.parametrize("written", ["15/09/2025", "05/05/2025", "2025-09-01", "1000", "'07/2025'"])
def test_a_test_from_that_reads_one_way_is_kept(tmp_path, written):
    path = tmp_path / "spec.yaml"
    path.write_text(TOP + LABEL + f"order_by: Created\ntest_from: {written}\n")
    kept = load_spec(path).test_from
    as_written = yaml.safe_load(f"v: {written}")["v"]  # a date, a number or text, as YAML reads it
    assert kept == as_written and type(kept) is type(as_written)


def test_label_values_match_with_runs_of_spaces_inside_folded():
    """``Closed  Won`` with two spaces (or a tab) is the ``Closed Won`` a spec lists, as
    feature categories fold ``Paid  Search``; the words themselves still count."""
    assert label_key("Closed  Won") == label_key(" closed\twon ") == label_key("Closed Won")
    assert label_key("ClosedWon") != label_key("Closed Won")


@pytest.mark.parametrize("name", ["x_education", "olist"])
def test_built_in_labels_read_as_sentences_with_or_without_a_value(name):
    """A label is quoted as "<label>: <value>" and, missing, "<label> not given": a label that
    ends on a preposition ("Heard about us through") reads "Heard about us through not
    given"."""
    spec = load_spec(name, data_root=Path("."))
    dangling = ("through", "by", "from", "of", "about", "for", "with", "to", "via", "in", "on")
    for column, label in spec.labels.items():
        assert label.split()[-1].lower() not in dangling, (column, label)
        assert label[0].isupper() and not label.endswith((":", ".")), (column, label)


def _bomb(levels: int) -> str:
    """The "billion laughs" YAML: each level a list of nine aliases of the one before."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def _refused_file(tmp_path: Path, content: str | bytes) -> str:
    """The one line with which load_spec refuses ``content`` written as a spec file."""
    path = tmp_path / "spec.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    """Nine levels of nine aliases (432 bytes) expand to 387 million values: the spec reader
    copied each one and grew past 2 GB. The expansion is counted on the parsed nodes, each
    shared node once, and refused before anything walks it."""
    message = _refused_file(tmp_path, _bomb(9))
    assert "aliases (*name) expand to more than 100,000 values" in message
    assert message.endswith(
        "Write the values out rather than nesting anchors (&name) in one another."
    )
    assert "alias inside its own anchor" in _refused_file(tmp_path, TOP + "x: &a [1, *a]\n")


def test_a_spec_may_still_share_a_list_by_an_anchor(tmp_path):
    """An anchor used as YAML intends, a list written once and named twice, still loads."""
    path = tmp_path / "spec.yaml"
    path.write_text(TOP + LABEL + "categorical: &cols [Source, Region]\nallow_leakage: *cols\n")
    spec = load_spec(path)
    assert spec.categorical == spec.allow_leakage == ["Source", "Region"]


def test_a_spec_that_is_not_utf8_says_so_not_an_impossible_date(tmp_path):
    """A spec saved as Windows-1252 was reported as holding "an impossible date" (the decode
    error is a ValueError, which the date check caught)."""
    message = _refused_file(tmp_path, (TOP + "# Région\n").encode("cp1252"))
    assert message == (
        f"{tmp_path / 'spec.yaml'} is not UTF-8 text: line 4 has the byte 0xE9. "
        "Save it as UTF-8 (your editor's Save As, encoding UTF-8)."
    )


def test_a_spec_nested_too_deep_is_one_line_not_a_recursion_error(tmp_path):
    message = _refused_file(tmp_path, "x: " + "[" * 1_000 + "]" * 1_000 + "\n")
    assert message.endswith(
        "nests lists or keys too deep for the YAML reader. Write it with "
        "fewer nested levels (a spec or config needs a handful)."
    )


def test_an_impossible_date_is_still_named(tmp_path):
    message = _refused_file(tmp_path, TOP + LABEL + "test_from: 2024-13-45\n")
    assert "holds an impossible date" in message


def test_a_value_yaml_cannot_read_is_not_called_a_date(tmp_path):
    """An integer of 5,000 digits had read "holds an impossible date ... Write dates as
    YYYY-MM-DD"; a day out of its month is still a date."""
    message = _refused_file(tmp_path, TOP + LABEL + "min_rows: " + "9" * 5000 + "\n")
    assert "holds a value YAML cannot read" in message and "date" not in message
    assert "impossible date" in _refused_file(tmp_path, TOP + LABEL + "test_from: 2024-02-30\n")


def test_a_missing_shared_data_folder_names_the_flag_and_the_python_keyword(
    monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv("LEADSCORE_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"needs the shared data folder") as err:
        load_spec("x_education")
    assert "--data-root DIR (data_root= in Python)" in str(err.value)
    assert "LEADSCORE_DATA_ROOT" in str(err.value) and "\n" not in str(err.value)


def test_a_key_written_twice_is_refused_with_both_lines(tmp_path):
    """A second ``exclude:`` block pasted at the end of a spec silently replaced the first
    (YAML keeps the last): the nine exclusions of x_education vanished without a word."""
    message = _refused_file(
        tmp_path,
        TOP + LABEL + "exclude:\n  Tags: after contact\n  Score: after contact\n"
        "categorical: [Source]\nexclude:\n  Region: not needed\n",
    )
    assert message == (
        f"{tmp_path / 'spec.yaml'}: the key 'exclude' is written twice in one block (lines 7 "
        "and 11); YAML would keep only the second. Keep one exclude: and delete the other "
        "(moving into the kept one any entries of the other you still need)."
    )
    nested = _refused_file(tmp_path, TOP + LABEL + "  won: [Closed]\n")
    assert "key 'won' is written twice in one block (lines 6 and 7)" in nested

    # the check is per mapping: the same key in two blocks, or one written over a merged
    # anchor (``<<: *base``), is YAML as intended
    path = tmp_path / "spec.yaml"
    path.write_text(
        TOP + "label: &lab\n  column: Status\n  won: [Won]\n"
        "labels:\n  Status: Status\n"
        "join:\n  - {source: a.csv, id: Lead ID, columns: [Status]}\n"
        "  - {source: b.csv, id: Lead ID, columns: [Region]}\n"
        "facts:\n  Source: [a]\n"
    )
    assert load_spec(path).label.won == ["Won"]
    merged = tmp_path / "merged.yaml"
    merged.write_text(
        "base: &base {column: Status, won: [Won]}\n"
        "name: toy\nsource: leads.csv\nid: Lead ID\nlabel:\n  <<: *base\n  won: [Closed]\n"
    )
    from leadscore.yaml_files import read_yaml_file

    assert read_yaml_file(merged)["label"] == {"column": "Status", "won": ["Closed"]}


@pytest.mark.parametrize(
    ("won", "lost"),
    [([1], [0, 1]), (["Won"], ["Lost", " won "]), ([1], ["1.0"]), (["yes"], ["true"])],
)
def test_a_value_both_won_and_lost_is_refused(won, lost):
    """``won: [1]`` with ``lost: [0, 1]`` was accepted and 1 silently counted as won; values
    are compared as the label column is matched (``1`` and ``"1.0"`` agree)."""
    with pytest.raises(SpecError, match=r"label\.lost repeats a won value") as refused:
        parse_spec(
            {
                "name": "w",
                "source": "x.csv",
                "id": "id",
                "label": {"column": "s", "won": won, "lost": lost},
            }
        )
    assert "List each label value under one of label.won and label.lost only" in str(refused.value)
