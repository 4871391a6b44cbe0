"""One validation place: every config field, from flags or YAML, is checked before anything is created.

The property test draws arbitrary values (numbers of every size, NaN, text, lists, mappings) for one or
several fields at once: the config validates, or a ``UserError`` names the problem -- never another
exception."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.errors import UserError
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.validate import RULES

FIELDS = [f.name for f in fields(TrainConfig)]
PATH_FIELDS = ("data", "cache_dir", "weights", "output")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["all", "none", "head", "3", "cpu", "cuda:0", "val_loss", "sgd", "onecycle", "strong", "1e-3"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=8), scalars, max_size=3))


def test_every_field_has_a_rule():
    assert set(RULES) == set(FIELDS)


def _validate_or_user_error(settings_: dict) -> None:
    try:
        TrainConfig(**settings_).validate()
    except UserError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([n for n in FIELDS if n not in PATH_FIELDS]), value=values)
def test_any_value_of_any_field_validates_or_is_a_user_error(name, value):
    _validate_or_user_error({name: value})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([n for n in FIELDS if n not in PATH_FIELDS]), values, min_size=2, max_size=6))
def test_several_fields_at_once_validate_or_are_a_user_error(drawn):
    _validate_or_user_error(drawn)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(PATH_FIELDS), value=st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_paths_with_any_text_validate_or_are_a_user_error(name, value):
    _validate_or_user_error({name: value})


@pytest.mark.parametrize("settings_, message", [
    ({"epochs": "ten"}, "--epochs must be an integer from 1 to 100000, not 'ten'"),
    ({"val_fraction": "0.5"}, "--val-fraction must be a number in [0, 1), not '0.5'"),
    ({"device": "tpu"}, "--device must be auto, cpu, cuda or cuda:N, not 'tpu'"),
    ({"label_smoothing": 1.5}, "--label-smoothing must be a number in [0, 1), not 1.5"),
    ({"momentum": -1.0}, "--momentum must be a number in [0, 1), not -1.0"),
    ({"weight_decay": -1.0}, "--weight-decay must be a number of at least 0, not -1.0"),
    ({"step_gamma": -1.0}, "--step-gamma must be a number in (0, 1], not -1.0"),
    ({"lr": float("nan")}, "--lr must be a number above 0, not nan"),
    ({"epochs": True}, "--epochs must be an integer from 1 to 100000, not True"),
    ({"monitor": "val_nonsense"}, "--monitor must be a history column: one of val_loss, val_accuracy"),
    ({"model_options": {"dropout": 1.5}}, "model ahe_cnn rejects its options {'dropout': 1.5}: dropout probability"),
    ({"augment_options": {"hflip": 2}}, "--aug hflip=2 is out of range: use a number from 0 to 1"),
    ({"model": "tiny_test", "image_size": 4}, "--image-size must be an integer from 8 to 4096, or sizes joined by ':'"),
])
def test_messages_name_field_value_and_range(settings_, message):
    with pytest.raises(UserError) as e:
        TrainConfig(**settings_).validate()
    assert message in str(e.value)


def test_spellings_are_normalised():
    cfg = TrainConfig(batch_size="16", freeze=" Head ", pretrained="no").validate()
    assert (cfg.batch_size, cfg.freeze, cfg.pretrained) == (16, "head", False)
