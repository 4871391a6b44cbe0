"""The generated `identities` set and the identity-disjoint split."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data.identities import make_identities
from cnnlab.data.split import IdentitySplit, identity_split, select_identities
from cnnlab.errors import UserError


def test_an_identity_is_the_same_person_however_many_images_are_made():
    one = make_identities(range(3, 6), 1, 24, seed=5)
    three = make_identities(range(3, 6), 3, 24, seed=5)
    assert one.classes == three.classes == ["id00003", "id00004", "id00005"]
    # image 0 of each identity has the same shape parameters and pose; only the pixel noise stream differs
    diff = (one.images.float() - three.images[::3].float()).abs().mean()
    assert diff < 12, diff
    assert three.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_images_of_one_person_are_nearer_than_images_of_different_people():
    s = make_identities(range(30), 4, 32, seed=0)
    x = s.images.float().flatten(1)
    x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    d = torch.cdist(x, x)
    same = s.labels[:, None] == s.labels[None, :]
    off_diag = ~torch.eye(len(x), dtype=torch.bool)
    assert d[same & off_diag].mean() < 0.9 * d[~same].mean()  # identity is visible in the pixels...
    assert d[same & off_diag].mean() > 0.3 * d[~same].mean()  # ...but images of a person vary a lot


def test_identity_split_never_leaks_a_person_into_two_parts():
    images = make_identities(range(40), 3, 16, seed=1)
    for seed in range(5):
        split = identity_split(images, 20, 10, 10, seed)
        parts = [split.train, split.dev, split.test]
        people = [set(p.classes) for p in parts]
        assert [len(p) for p in people] == [20, 10, 10]
        assert not (people[0] & people[1]) and not (people[0] & people[2]) and not (people[1] & people[2])
        for part in parts:  # every image sits with its own person, relabelled 0..n-1
            assert all(name.split("/")[1] == part.classes[k] for name, k in zip(part.names, part.labels.tolist()))
            assert sorted(set(part.labels.tolist())) == list(range(len(part.classes)))
    assert identity_split(images, 20, 10, 10, 0).test.classes != identity_split(images, 20, 10, 10, 1).test.classes


def test_a_leaking_split_is_refused_and_impossible_sizes_are_a_user_error():
    images = make_identities(range(6), 2, 16)
    a, b = select_identities(images, [0, 1, 2]), select_identities(images, [2, 3])
    with pytest.raises(AssertionError, match="leaks"):
        IdentitySplit(a, b, select_identities(images, [4, 5]))
    with pytest.raises(UserError, match="cannot split 6 identities"):
        identity_split(images, 4, 2, 2, 0)


def test_select_identities_keeps_the_first_images_of_each_person():
    images = make_identities(range(4), 5, 16)
    part = select_identities(images, [3, 1], per_identity=2)
    assert part.classes == ["id00003", "id00001"]
    assert part.names == ["identities/id00003/00", "identities/id00003/01", "identities/id00001/00",
                          "identities/id00001/01"]
    assert part.labels.tolist() == [0, 0, 1, 1]
