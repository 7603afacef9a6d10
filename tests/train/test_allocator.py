"""On CPU, lrrun keeps freed memory in the process: training steps stop page-faulting."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from lrrun.train import allocator

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter per case: mallopt is process-wide and cannot be undone.
STEPS = """
import json, resource, sys
import torch, torch.nn.functional as F
from lrrun.train.allocator import keep_freed_memory
from lrrun.models import FashionMNISTNet

tuned = keep_freed_memory("cpu") if sys.argv[1] == "tune" else False
torch.manual_seed(0)
model = FashionMNISTNet()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))

def step():
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def step_faults(mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", STEPS, mode], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_cnn_steps_stop_page_faulting() -> None:
    default, tuned = step_faults("default"), step_faults("tune")
    assert tuned["tuned"] is True
    # default: 3,500-9,000 faults per step (large blocks freshly mapped); tuned: a few
    # hundred in all, now and then (seen: 0-1,700 over 5 steps), hence 20 steps
    assert default["faults"] > 20 * 500
    assert tuned["faults"] < default["faults"] / 10


@pytest.mark.parametrize(
    "env",
    [
        {"MALLOC_TRIM_THRESHOLD_": "0"},
        {"MALLOC_MMAP_THRESHOLD_": "131072"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
        {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"},
    ],
)
def test_a_users_own_allocator_settings_are_left_alone(monkeypatch, env: dict) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert allocator.user_tuned()
    assert allocator.keep_freed_memory("cpu") is False


def test_gpu_runs_are_left_alone() -> None:
    assert allocator.keep_freed_memory("cuda") is False
