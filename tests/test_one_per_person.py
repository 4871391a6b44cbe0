"""`embed experiment one-per-person`: each arm is scored with its checkpoint of lowest dev EER."""

from __future__ import annotations

import json

from cnnlab.embed.experiment import one_per_person


def test_each_arm_is_scored_at_its_best_dev_epoch(tmp_path):
    table = one_per_person(epochs=3, seed=0, device="cpu", scale=0.05, output=tmp_path)
    arms = [(arm, s) for arm, s in table.rows if arm is not None]
    assert [arm.key for arm, _ in arms] == ["a", "b", "c"]
    assert [(arm.people, arm.per_person) for arm, _ in arms] == [(100, 1), (100, 1), (10, 10)]  # equal images
    for arm, summary in arms:
        history = json.loads((tmp_path / arm.key / "history.json").read_text())
        assert len(history) == 3
        assert summary["epoch"] == min(history, key=lambda row: row["dev_eer"])["epoch"]
    text = table.render()
    assert "epoch" in text.splitlines()[1] and "Lowest test EER" in text


def test_the_reading_calls_close_results_a_tie():
    from cnnlab.embed.experiment import ExperimentTable

    assert "about equally well" in ExperimentTable._verdict(0.359, 0.360)
    assert "better embedding" in ExperimentTable._verdict(0.30, 0.36)
    assert "several photos per person beat" in ExperimentTable._verdict(0.36, 0.30)
