"""The val split: seeded, stratified, disjoint from train; and which split plays which role."""

from __future__ import annotations

import pytest
import torch

from lrrun.data.base import Split
from lrrun.data.splits import assign_roles, stratified_split
from lrrun.errors import DataError

LABELS = torch.tensor([0] * 600 + [1] * 300 + [2] * 97 + [3] * 3)


@pytest.mark.parametrize("count", [1, 7, 100, 500])
def test_stratified_seeded_and_disjoint(count: int) -> None:
    train, val = stratified_split(LABELS, count, seed=0)
    assert len(val) == count and len(train) + len(val) == len(LABELS)
    assert not set(train.tolist()) & set(val.tolist())
    got = torch.bincount(LABELS[val], minlength=4).tolist()
    share = torch.bincount(LABELS).float() / len(LABELS) * count
    assert all(abs(g - s) < 1 for g, s in zip(got, share.tolist(), strict=True))  # to one sample
    again = stratified_split(LABELS, count, seed=0)[1]
    assert torch.equal(val, again)  # the same split in every job and on every machine
    if count >= 7:
        assert not torch.equal(val, stratified_split(LABELS, count, seed=1)[1])


def test_roles() -> None:
    train = Split(torch.zeros(10, 2), torch.arange(10) % 2)
    test = Split(torch.ones(4, 2), torch.tensor([0, 1, 0, 1]))
    tr, val, te, selection, how = assign_roles(train, None, test, 0.2, seed=3)
    assert (len(tr), len(val), te is test, selection) == (8, 2, True, "val")
    assert how == "2 held out of train (stratified, dataset.split_seed=3)"
    tr, val, te, selection, how = assign_roles(train, None, test, 0, seed=3)
    assert (tr is train, val is test, te, selection) == (True, True, None, "test")
    own_val = Split(torch.ones(3, 2), torch.tensor([0, 1, 1]))
    assert assign_roles(train, own_val, test, 0.5, 3)[1] is own_val  # the source's val wins
    with pytest.raises(DataError, match="neither a val nor a test split"):
        assign_roles(train, None, None, 0, 3)
    with pytest.raises(DataError, match="holds out 10 of the 10 train samples"):
        assign_roles(train, None, None, 10, 3)
