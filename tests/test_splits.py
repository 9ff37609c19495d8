"""fmrgb/training/splits.py: the stratified, seeded split into train/val/test and its clear errors."""
import pytest

from fmrgb.training.splits import train_val_test


def test_split_is_stratified_disjoint_complete_and_seeded():
    labels = ["a"] * 30 + ["b"] * 15 + ["c"] * 15
    parts = train_val_test(labels, test_size=0.2, val_size=0.2, seed=3)
    train, val, test = parts["train"], parts["val"], parts["test"]
    assert sorted(train + val + test) == list(range(60))
    for part, n in ((train, 36), (val, 12), (test, 12)):
        assert len(part) == n
        counts = {k: sum(labels[i] == k for i in part) for k in "abc"}
        assert counts["a"] == 2 * counts["b"] == 2 * counts["c"], counts  # class ratio 2:1:1 kept in each part
    assert train_val_test(labels, test_size=0.2, val_size=0.2, seed=3) == parts
    assert train_val_test(labels, test_size=0.2, val_size=0.2, seed=4) != parts


# ----------------------------------------------------------------------------- clear errors

def test_fewer_than_two_classes_is_an_error():
    with pytest.raises(ValueError, match="at least two classes"):
        train_val_test(["a"] * 10, test_size=0.2, val_size=0.2, seed=0)


def test_a_class_too_small_for_the_split_names_the_counts():
    with pytest.raises(ValueError, match=r"too small.*a=10, b=2"):
        train_val_test(["a"] * 10 + ["b"] * 2, test_size=0.2, val_size=0.2, seed=0)
