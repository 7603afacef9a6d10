"""trainer.device=auto: which device a job gets (no GPU needed to test the choice)."""

from __future__ import annotations

import pytest
import torch

from lrrun.train.devices import auto_device, resolve_device


@pytest.mark.parametrize(
    ("cuda", "mps", "job", "expected"),
    [
        (0, False, None, "cpu"),
        (0, True, 3, "mps"),
        (1, False, None, "cuda"),
        (1, False, 5, "cuda"),  # one GPU: every job on it
        (4, False, None, "cuda"),  # a single run: the default CUDA device
        (4, False, 0, "cuda:0"),
        (4, False, 5, "cuda:1"),
        (4, False, 7, "cuda:3"),
        (2, True, 3, "cuda:1"),
    ],
)
def test_auto_spreads_multirun_jobs_over_gpus(
    cuda: int, mps: bool, job: int | None, expected: str
) -> None:
    assert auto_device(cuda, mps, job) == expected


def test_round_robin_covers_every_gpu_evenly() -> None:
    picks = [auto_device(3, False, j) for j in range(12)]
    assert {d: picks.count(d) for d in set(picks)} == {"cuda:0": 4, "cuda:1": 4, "cuda:2": 4}


def test_resolve_device_uses_the_job_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", job_num=3) == torch.device("cuda:1")
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu", job_num=3) == torch.device("cpu")  # explicit wins
