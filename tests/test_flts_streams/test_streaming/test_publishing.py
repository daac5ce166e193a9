"""What `flts publish-claims` sends: round-robin claims, and a file replayed as successive objects."""

from __future__ import annotations

import json

import pytest

from flts_streams.streaming.publishing import ClaimPlan, claim_messages, replay_slices


def test_claims_go_round_robin_and_a_replay_names_each_identifiers_objects_in_turn():
    plan = ClaimPlan({"A": "a.parquet", "B": ["b0", "b1"]}, count=6, bucket="flts")
    sent = [(key, json.loads(value)) for key, value, _ in claim_messages(plan, "t")]
    assert [k for k, _ in sent] == [b"A", b"B"] * 3
    assert [v["object_key"] for _, v in sent] == ["a.parquet", "b0", "a.parquet", "b1", "a.parquet", "b0"]
    assert [v["claim_id"] for _, v in sent] == [f"t-{n}" for n in range(6)]


def test_replay_slices_hold_the_recent_past_a_step_further_each_time():
    assert replay_slices(rows=10, span=4, step=3) == [(0, 4), (3, 7), (6, 10)]
    assert replay_slices(rows=3, span=4, step=2) == [(0, 3)]  # a short file is one object
    with pytest.raises(ValueError):
        replay_slices(rows=10, span=0, step=1)
