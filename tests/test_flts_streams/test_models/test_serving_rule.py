"""The serving rule's words: every answer says which model answered and why."""

from __future__ import annotations

from flts_streams.models.serving_rule import DEFAULT_KEY, GLOBAL_KEY, model_reason, model_source


def test_every_answer_says_which_model_answered_and_why():
    assert model_reason("A", "own", False) == "the champion model of 'A'"
    assert "global model" in model_reason("A", "global", False)
    default = model_reason("A", "default", False)
    assert "no model is trained for 'A'" in default and "FLTS_MODEL__DEFAULT_URI" in default
    demo = model_reason("A", "default", True)
    assert "synthetic data" in demo and "says nothing about your data" in demo and "flts train --identifier A" in demo


def test_the_source_names_the_rung_of_the_serving_order():
    assert model_source("A", "A") == "own"
    assert model_source("A", GLOBAL_KEY) == "global"
    assert model_source("A", DEFAULT_KEY) == "default"
