"""The serving rule's words: every answer says which model answered and why."""

from __future__ import annotations


def test_every_answer_says_which_model_answered_and_why():
    from flts_streams.models.serving_rule import model_reason

    assert model_reason("A", False, False) == "the champion model of 'A'"
    default = model_reason("A", True, False)
    assert "no model is trained for 'A'" in default and "FLTS_MODEL__DEFAULT_URI" in default
    demo = model_reason("A", True, True)
    assert "synthetic data" in demo and "says nothing about your data" in demo and "flts train --identifier A" in demo
