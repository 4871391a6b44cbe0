"""Verification and identification metrics against values worked out by hand on tiny lists.

Distances sorted: 0.1G 0.2G 0.3G 0.4I 0.5I 0.6G 0.7I 0.8I 0.9I (G genuine, I impostor).
"""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.metrics.identification import cmc, dir_at_fpir, ranks
from cnnlab.metrics.verification import (
    accuracy_at, eer, eer_threshold, rates_at, roc, tar_at_far, threshold_at_far,
)

GENUINE = np.array([0.3, 0.1, 0.6, 0.2])
IMPOSTOR = np.array([0.9, 0.4, 0.7, 0.5, 0.8])


def test_auc_is_the_fraction_of_genuine_impostor_pairs_ordered_correctly():
    # .1, .2, .3 are below all 5 impostors (15 pairs), .6 below .7, .8, .9 (3): 18 of 20.
    assert roc(GENUINE, IMPOSTOR).auc == pytest.approx(0.9)


def test_eer_where_far_meets_frr():
    # Between thresholds .3 (FAR 0, FRR .25) and .5 (FAR .4, FRR .25) FRR stays .25: FAR = FRR = .25.
    curve = roc(GENUINE, IMPOSTOR)
    assert eer(curve) == pytest.approx(0.25)
    assert eer_threshold(curve) == pytest.approx(0.3)  # max(FAR, FRR) = .25 there, the least of any threshold


def test_eer_of_perfectly_separated_and_inverted_lists():
    assert eer(roc([0.1, 0.2], [0.3, 0.4])) == 0.0
    assert eer(roc([0.3, 0.4], [0.1, 0.2])) == 1.0


def test_tar_and_threshold_at_far():
    curve = roc(GENUINE, IMPOSTOR)
    assert tar_at_far(curve, 0.0) == pytest.approx(0.75)  # .1 .2 .3 accepted before the first impostor
    assert tar_at_far(curve, 0.39) == pytest.approx(0.75)  # FAR steps are 0.2
    assert tar_at_far(curve, 0.4) == pytest.approx(1.0)  # accept <= .6: impostors .4 .5
    assert threshold_at_far(curve, 0.4) == pytest.approx(0.6)
    assert rates_at(GENUINE, IMPOSTOR, 0.6) == (pytest.approx(0.4), pytest.approx(1.0))


def test_accuracy_at_threshold():
    assert accuracy_at(GENUINE, IMPOSTOR, 0.3) == pytest.approx(8 / 9)  # 3 genuine in, 5 impostors out
    assert accuracy_at(GENUINE, IMPOSTOR, 0.0) == pytest.approx(5 / 9)


DIST = np.array([[0.1, 0.5, 0.9],
                 [0.2, 0.3, 0.8],
                 [0.4, 0.4, 0.6],
                 [0.5, 0.5, 0.9]])
TRUE = np.array([0, 1, 2, 1])


def test_ranks_and_cmc():
    assert ranks(DIST, TRUE).tolist() == [1, 2, 3, 1]  # a tie (last probe) counts in the probe's favour
    assert cmc(DIST, TRUE).tolist() == pytest.approx([0.5, 0.75, 1.0])
    assert cmc(DIST, TRUE, max_rank=2).tolist() == pytest.approx([0.5, 0.75])


@pytest.mark.parametrize(("fpir", "expected_dir", "expected_threshold"), [
    (0.0, 0.25, 0.2),  # accept < .2: no non-mated probe in; probe 0 (rank 1, .1) found
    (0.2, 0.25, 0.45),  # one non-mated (.2) may pass: threshold .45; probe 3 (.5) still out
    (0.4, 0.5, 0.7),  # two may pass: probe 3 (rank 1, .5) found too
    (1.0, 0.5, float("inf")),  # everything accepted: DIR is the rank-1 rate
])
def test_dir_at_fpir(fpir, expected_dir, expected_threshold):
    mated, mated_rank = DIST[np.arange(4), TRUE], ranks(DIST, TRUE)
    non_mated = np.array([1.0, 0.2, 0.9, 0.45, 0.7])
    rate, threshold = dir_at_fpir(mated, mated_rank, non_mated, fpir)
    assert rate == pytest.approx(expected_dir)
    assert threshold == pytest.approx(expected_threshold)
