"""Messages about the input files a marketer hands over: an Excel CSV that is not UTF-8, a
header that names a column twice, columns renamed or padded with spaces in a new export.

Each is one line that says what is wrong, where, and what to do, whichever reader (the whole
table, or the sliced reader ``score --input`` uses) meets it first.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from leadscore.encoding import FeatureEncoder
from leadscore.errors import DataError
from leadscore.io import iter_table_chunks, read_table
from leadscore.names import closest_names, missing_names_text, spaced_twin
from leadscore.schema import Feature

ROWS = [f"L{i},{'Curaçao' if i == 7 else 'France'},{i}" for i in range(12)]


def write_windows_csv(path: Path, rows: list[str] = ROWS) -> Path:
    """A CSV as Excel's "CSV (Comma delimited)" saves it: Windows-1252, CRLF lines."""
    path.write_bytes("\r\n".join(["id,country,visits", *rows, ""]).encode("cp1252"))
    return path


def read_all(path: Path, sliced: bool) -> None:
    if sliced:
        for _ in iter_table_chunks(path, chunk_rows=2, strings=True):
            pass
    else:
        read_table(path)


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "chunks"])
def test_a_windows_csv_says_it_is_not_utf8_where_and_how_to_save_it(tmp_path, sliced):
    """The reader's own "can't decode byte 0xe7 in position 4" counted in a buffer of its
    own; the line is the file's (header = line 1), the text around the byte is shown as
    Windows reads it, and the fix is Excel's "CSV UTF-8"."""
    path = write_windows_csv(tmp_path / "export.csv")
    with pytest.raises(DataError) as caught:
        read_all(path, sliced)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{path} is not UTF-8 text: line 9 has the byte 0xE7")
    assert "('ç' in Windows-1252)" in message and '"L7,Curaçao,7"' in message
    assert 'Save it as UTF-8: in Excel, Save As "CSV UTF-8 (Comma delimited)"' in message
    assert "position" not in message


def test_the_line_counts_the_whole_file_past_the_first_block(tmp_path):
    """A character of two bytes cut by the 1 MiB block the scan reads is UTF-8 all the same,
    and the bad byte's line counts every line before it, not those of its block."""
    head = "id,country,visits\n"
    filler = "x" * ((1 << 20) - len(head) - 1) + "é\n"  # é straddles the block's end
    lines = [f"L{i},Chile,{i}" for i in range(50_000)]
    body = "\n".join(lines[:40_000]) + "\nL40000,Espa\xf1a,1\n" + "\n".join(lines[40_001:])
    path = tmp_path / "big.csv"
    path.write_bytes(head.encode() + filler.encode() + body.encode("cp1252"))
    with pytest.raises(DataError, match=r"line 40003 has the byte 0xF1 \('ñ' in"):
        read_table(path)


def test_a_utf16_csv_is_named_as_such(tmp_path):
    path = tmp_path / "unicode.csv"
    path.write_bytes("id,visits\r\nL1,3\r\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"is UTF-16 text .*, not UTF-8\. Save it as UTF-8"):
        read_table(path)


def test_a_utf8_csv_with_excel_bom_still_reads(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,country\nL1,Curaçao\n".encode())
    assert read_table(path)["country"].tolist() == ["Curaçao"]


@pytest.mark.parametrize("sliced", [False, True], ids=["whole", "chunks"])
def test_a_header_naming_a_column_twice_is_refused_not_renamed(tmp_path, sliced):
    """pandas would read the second ``Email`` as ``Email.1``, a feature nobody named."""
    path = tmp_path / "dup.csv"
    path.write_text("id,Email,Phone,Email,Phone,Phone\nL1,a@x.com,1,b@y.com,2,3\n")
    with pytest.raises(DataError) as caught:
        read_all(path, sliced)
    assert str(caught.value) == (
        f"{path}: the header names 'Email' twice (columns 2 and 4), 'Phone' 3 times "
        "(columns 3, 5 and 6). Rename one of them in the header, or delete the copy."
    )


def test_blank_headers_are_no_duplicates(tmp_path):
    """Two empty header cells (a trailing comma or two) are Excel's, dropped when empty."""
    path = tmp_path / "trailing.csv"
    path.write_text("id,visits,,\nL1,3,,\n")
    assert list(read_table(path).columns) == ["id", "visits"]


def test_a_query_naming_a_column_twice_is_refused_in_duckdb_and_sql(tmp_path):
    """DuckDB's result would call the second ``email`` ``email_1``, a database's keep both."""
    file = tmp_path / "crm.duckdb"
    with duckdb.connect(str(file)) as con:
        con.execute("CREATE TABLE leads AS SELECT 'L1' AS id, 'a@x.com' AS email")
    query = "SELECT id, email, email FROM leads"
    with pytest.raises(DataError, match=r"crm.duckdb: the query names 'email' twice \(columns 2 "):
        read_table(file, query=query)
    with pytest.raises(DataError, match=r"the query names 'email' twice .*a name of its own"):
        list(iter_table_chunks(file, query=query))
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    pd.DataFrame({"id": ["L1"], "email": ["a@x.com"]}).to_sql("leads", url, index=False)
    for read in (
        lambda: read_table(url, query=query),
        lambda: list(iter_table_chunks(url, query=query)),
    ):
        with pytest.raises(DataError, match=r"the query names 'email' twice \(columns 2 and 3\)"):
            read()


def encoder(*names: str) -> FeatureEncoder:
    features = [Feature(n, "fit", n, "numeric") for n in names]
    return FeatureEncoder.from_frame(pd.DataFrame({n: [1.0, 2.0] for n in names}), features)


def test_scoring_names_every_missing_column_with_its_likely_rename():
    """A new export that renamed ``Pricing Page Views`` and dropped ``Annual Revenue``: both
    named in one run, each with the input's unused column most like it."""
    model = encoder("Annual Revenue", "Pages Viewed", "Pricing Page Views")
    leads = pd.DataFrame({"Pages Viewed": [1.0], "Pricing Views": [2.0], "Lead ID": ["L1"]})
    with pytest.raises(DataError) as caught:
        model.matrix(leads)
    assert str(caught.value) == (
        "the leads to score have no columns 'Annual Revenue', 'Pricing Page Views' (closest: "
        "'Pricing Views'). Rename the input's columns to the model's names, or add them "
        "(empty values are fine): the model needs every feature it was trained on."
    )


def test_scoring_says_when_a_column_differs_only_by_a_space():
    model = encoder("Pricing Page Views", "Pages Viewed")
    leads = pd.DataFrame({"Pricing Page Views ": [1.0], "Pages Viewed": [2.0]})
    with pytest.raises(DataError) as caught:
        model.frame(leads)
    message = str(caught.value)
    assert "no column 'Pricing Page Views' (the input has 'Pricing Page Views ', with a " in message
    assert (
        "space after it). Rename the input's columns to the model's names (without the" in message
    )


def test_many_missing_columns_are_named_up_to_a_limit():
    names = [f"feature {i:02d}" for i in range(12)]
    with pytest.raises(DataError, match=r"'feature 07' and 4 more\. Rename"):
        encoder(*names).matrix(pd.DataFrame({"other": [1]}))


def test_a_name_that_differs_only_by_spaces_says_which():
    have = ["Lead ID", "Lead Status ", "Lead Source"]
    assert spaced_twin("Lead Status", have) == "Lead Status "
    assert closest_names("Lead Status", have) == " (closest: 'Lead Status ', with a space after it)"
    assert closest_names(" Lead Source", have) == (
        " (closest: 'Lead Source', without a space before it)"
    )
    assert closest_names("Lead Status", ["\tLead Status  "]).endswith(
        "with a tab before it and 2 spaces after it)"
    )
    assert closest_names("Lead source", have) == " (closest: 'Lead Source')"
    assert missing_names_text(["Budget"], ["Lead ID"]) == "'Budget'"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_utf16_csv_is_converted_from_utf16_not_windows_1252(tmp_path, encoding):
    """The fix said ``iconv -f WINDOWS-1252``, which turns UTF-16 into NUL-ridden garbage;
    a UTF-16 file (with its byte-order mark, or without one: NUL bytes beside ASCII) is told
    to convert from UTF-16."""
    path = tmp_path / "unicode.csv"
    text = "id,country\r\nL1,Espa\xf1a\r\n"
    path.write_bytes(text.encode(encoding) + b"\xff\xd8")
    with pytest.raises(DataError) as refused:
        read_table(path)
    message = str(refused.value)
    assert "is UTF-16 text" in message and "iconv -f UTF-16 -t UTF-8" in message, message
    assert "WINDOWS-1252" not in message


def test_excel_trailing_blank_rows_are_skipped_with_a_log_line(tmp_path, caplog):
    """Excel leaves ``,,,`` rows at the end of a CSV it saved: they were refused as leads
    without an id; a row with any value is still read, and checked, as before."""
    path = tmp_path / "leads.csv"
    path.write_text("id,country,visits\r\nL1,Chile,3\r\n,,\r\nL2,,\r\n,,\r\n,,\r\n")
    with caplog.at_level("INFO", logger="leadscore.io"):
        frame = read_table(path, text_columns=("id",), strings=True)
    assert frame["id"].tolist() == ["L1", "L2"]
    assert "skipped 3 row(s) in which every field is blank" in caplog.text
