"""The Python API's answers to plausible mix-ups in a notebook: the wrong kind of object
gets one line that names the argument and the call that makes the right one, and a date
given as text works wherever a date does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadscore.errors import LeadscoreError, SpecError, UsageError
from leadscore.features import build_features, build_training_examples
from leadscore.io import load_closed_loop, write_tables
from leadscore.schema import Feature, LabelledDataset, validate_closed_loop
from leadscore.scoring import event_feature_chunks
from leadscore.training import train

AS_OF = "2024-03-31"


@pytest.fixture
def data(event_frames):
    return validate_closed_loop(**event_frames, observed_until="2024-06-30")


def test_a_usage_error_is_one_line_and_a_type_error_too(data) -> None:
    with pytest.raises(UsageError) as err:
        build_features("data/synthetic", AS_OF)  # type: ignore[arg-type]
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("build_features's data is a str")
    assert "load_closed_loop(" in text
    assert isinstance(err.value, TypeError) and isinstance(err.value, LeadscoreError)


@pytest.mark.parametrize(
    ("call", "named", "fix"),
    [
        (
            lambda d: train(pd.DataFrame({"x": [1]})),  # type: ignore[arg-type]
            "train's dataset is a DataFrame",
            "load_dataset",
        ),
        (
            lambda d: train(build_features(d, AS_OF)),  # type: ignore[arg-type]
            "train's dataset is a FeatureTable",
            "build_training_examples(",
        ),
        (
            lambda d: build_training_examples(d, AS_OF, 30),
            "as_of_dates is a single date ('2024-03-31')",
            "['2024-03-31']",
        ),
        (
            lambda d: build_training_examples(d, pd.Timestamp(AS_OF), 30),
            "as_of_dates is a single date",
            "default_as_of_dates",
        ),
        (
            lambda d: load_closed_loop(d.leads),  # type: ignore[arg-type]
            "load_closed_loop's source is a DataFrame",
            "validate_closed_loop(",
        ),
        (
            lambda d: validate_closed_loop(d.leads, [{"lead_id": "a"}]),  # type: ignore[arg-type]
            "validate_closed_loop's activities is a list",
            "pd.DataFrame(rows)",
        ),
    ],
)
def test_the_wrong_kind_of_object_names_the_argument_and_the_fix(data, call, named, fix) -> None:
    with pytest.raises(UsageError) as err:
        call(data)
    assert named in str(err.value)
    assert fix in str(err.value)


def test_train_reads_a_config_path_as_the_command_line_does(tmp_path: Path) -> None:
    """A path is a YAML file (``train(ds, "configs/train.yaml")`` had raised an
    AttributeError); anything else that is not a config is refused in one line."""
    dataset = LabelledDataset(
        name="tiny",
        X=pd.DataFrame({"visits": [1.0, 2.0]}),
        y=np.array([0, 1]),
        lead_id=pd.Series(["a", "b"]),
        order=None,
        features=(Feature("visits", "engagement", "Visits", "numeric"),),
    )
    with pytest.raises(SpecError, match=r"config file .*nowhere\.yaml does not exist"):
        train(dataset, tmp_path / "nowhere.yaml")
    config = tmp_path / "train.yaml"
    config.write_text("quality_gate:\n  allow_wrose: true\n")
    with pytest.raises(SpecError, match=r"train\.yaml: .*allow_wrose"):
        train(dataset, str(config))
    with pytest.raises(UsageError, match=r"train's config is a int.*a TrainConfig"):
        train(dataset, 5)  # type: ignore[arg-type]


def test_scoring_functions_take_a_date_as_text(tmp_path: Path, event_frames) -> None:
    """``event_feature_chunks(folder, "2024-03-31")`` had failed subtracting a Timedelta
    from a str; it must give what the Timestamp gives."""
    write_tables(event_frames, tmp_path)
    by_text = pd.concat(X for X, _ in event_feature_chunks(tmp_path, AS_OF, chunk_leads=2))
    by_timestamp = pd.concat(
        X for X, _ in event_feature_chunks(tmp_path, pd.Timestamp(AS_OF), chunk_leads=2)
    )
    pd.testing.assert_frame_equal(by_text, by_timestamp)
    with pytest.raises(LeadscoreError, match=r"as_of '31/02' has no year|is not a date"):
        event_feature_chunks(tmp_path, "31/02", chunk_leads=2)


def test_tables_show_as_one_short_line_in_a_notebook(data) -> None:
    """Shown in a cell, a feature table or a data set had printed every row (22,000
    characters for 3,000 leads)."""
    table = build_features(data, AS_OF)
    examples = build_training_examples(data, ["2024-01-15", "2024-02-15"], 30)
    for shown, starts in [(table, "FeatureTable(3 leads x "), (examples, "LabelledDataset(")]:
        text = repr(shown)
        assert text.startswith(starts) and "\n" not in text and len(text) < 200
    assert f"{len(examples.X):,} examples of {examples.lead_id.nunique():,} leads" in repr(examples)
