"""The encoder's check of the columns a model is scored with."""

from __future__ import annotations

import pandas as pd
import pytest

from leadscore.encoding import FeatureEncoder
from leadscore.errors import DataError
from leadscore.schema import Feature


def _encoder(excluded: tuple[str, ...]) -> FeatureEncoder:
    features = [
        Feature("Original Source", "fit", "Original Source", "categorical"),
        Feature("Number of Sessions", "engagement", "Number of Sessions", "numeric"),
    ]
    return FeatureEncoder(features, {"Original Source": ["Ads", "Web"]}, excluded=excluded)


def _missing_message(encoder: FeatureEncoder, columns: list[str]) -> str:
    leads = pd.DataFrame({name: [1.0] for name in columns}).assign(**{"Original Source": "Web"})
    with pytest.raises(DataError) as caught:
        encoder.matrix(leads)
    return str(caught.value)


def test_a_missing_feature_is_never_matched_to_a_column_the_spec_excluded():
    """HubSpot's ``Number of Sessions`` renamed ``Sessions``: the hint offered ``Number of
    Pageviews``, a lifetime counter the spec excludes, and not ``Sessions``."""
    encoder = _encoder(("Record ID", "Number of Pageviews"))
    renamed = _missing_message(encoder, ["Record ID", "Number of Pageviews", "Sessions"])
    assert "no column 'Number of Sessions' (closest: 'Sessions'). Rename" in renamed
    dropped = _missing_message(encoder, ["Record ID", "Number of Pageviews"])
    assert "no column 'Number of Sessions'. Rename" in dropped
    # a lifetime counter of the same name is the closest match unless the spec excluded it
    lifetime = ["Record ID", "Number of Sessions (lifetime)"]
    offered = _missing_message(_encoder(()), lifetime)
    assert "(closest: 'Number of Sessions (lifetime)')" in offered
    excluded = _missing_message(_encoder(("Number of Sessions (lifetime)",)), lifetime)
    assert "no column 'Number of Sessions'. Rename" in excluded
