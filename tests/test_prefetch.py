"""Batches prepared ahead on background threads: same results in the same order, errors where they
happen, no thread left behind, and training that does not depend on the number of threads."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from cnnlab.data.dataset import DataBundle
from cnnlab.data.imageset import ImageSet
from cnnlab.data.prefetch import prefetch
from cnnlab.runs.config import TrainConfig
from cnnlab.train.trainer import Trainer


def _data_threads_alive() -> int:
    return sum(t.name.startswith("cnnlab-data") for t in threading.enumerate())


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_results_come_in_order_whatever_finishes_first(threads):
    def slow_square(i: int) -> tuple[int, str]:
        time.sleep(0.002 * ((7 * i) % 5))  # later items often finish first
        return i * i, threading.current_thread().name

    out = list(prefetch(slow_square, range(20), threads))
    assert [v for v, _ in out] == [i * i for i in range(20)]
    on_main = {name == threading.main_thread().name for _, name in out}
    assert on_main == ({True} if threads == 0 else {False})
    assert _data_threads_alive() == 0


def test_work_runs_ahead_of_the_consumer():
    started: list[int] = []

    def record(i: int) -> int:
        started.append(i)
        return i

    stream = prefetch(record, range(10), threads=2)
    assert next(stream) == 0
    time.sleep(0.05)
    assert started[:3] == [0, 1, 2]  # items 1 and 2 were prepared before they were asked for
    stream.close()


def test_an_error_is_raised_at_its_item_and_early_exit_leaves_no_thread():
    def fail_at_3(i: int) -> int:
        if i == 3:
            raise ValueError("bad item 3")
        return i

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for v in prefetch(fail_at_3, range(10), threads=2):
            got.append(v)
    assert got == [0, 1, 2]
    assert _data_threads_alive() == 0
    for v in prefetch(lambda i: i, range(100), threads=2):
        if v == 5:
            break
    assert _data_threads_alive() == 0


def _bundle(n: int = 40) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    pool = ImageSet(torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g), torch.arange(n) % 3,
                    [f"x/{i}" for i in range(n)], ["a", "b", "c"])
    return DataBundle(pool, pool.subset(list(range(6))), None, [], "synthetic")


def test_training_with_augmentation_gives_the_same_model_with_any_number_of_data_threads(tmp_path):
    models = []
    for threads in (0, 1, 3):
        cfg = TrainConfig(model="tiny_test", epochs=2, batch_size=8, augment="strong", data_threads=threads,
                          output=str(tmp_path / f"t{threads}"), channels_last=False)
        trainer = Trainer(cfg, data=_bundle())
        trainer.fit()
        models.append(trainer.model.state_dict())
    for other in models[1:]:
        assert all(torch.equal(models[0][k], other[k]) for k in models[0])
    cfg = TrainConfig(model="tiny_test", epochs=2, batch_size=8, augment="none", output=str(tmp_path / "none"),
                      channels_last=False)
    unaugmented = Trainer(cfg, data=_bundle())
    unaugmented.fit()
    assert not torch.equal(unaugmented.model.state_dict()["0.weight"], models[0]["0.weight"])  # augmentation mattered
