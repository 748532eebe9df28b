"""How the keypoints processor's options are chosen (NOTRAINING_KEYPOINTS_FEATURES)."""

from __future__ import annotations

import pytest
from notraining_agent.errors import ProcessorError
from notraining_agent.processors.keypoints.options import (
    CONDITIONS,
    FEATURES_ENV,
    KeypointsOptions,
    options_from_env,
)


def test_sift_by_default() -> None:
    """No variable (or an empty one) means SIFT with 600 features per art and every view."""
    for environ in ({}, {FEATURES_ENV: " "}):
        options = options_from_env(environ)
        assert options == KeypointsOptions()
        assert options.features == "sift"
        assert options.art_features == 600
        assert options.conditions == CONDITIONS


def test_orb_is_selected_by_the_variable_in_any_case() -> None:
    """ORB, however it is written, with more features per art."""
    options = options_from_env({FEATURES_ENV: " ORB "})
    assert options.features == "orb"
    assert options.art_features == 1000


def test_unknown_value_fails_the_job_naming_the_variable() -> None:
    """A typo is a ProcessorError that names the variable and the choices."""
    with pytest.raises(
        ProcessorError, match=f"{FEATURES_ENV}.*sift, orb|sift, orb.*{FEATURES_ENV}"
    ):
        options_from_env({FEATURES_ENV: "surf"})


def test_plan_round_trip() -> None:
    """Options survive the trip through the workers' plan file."""
    options = KeypointsOptions(features="orb", max_side=800, art_features=321, conditions=("blur",))
    assert KeypointsOptions.from_json(options.to_json()) == options
