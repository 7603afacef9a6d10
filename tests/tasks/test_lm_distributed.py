"""A language model's data-parallel run on CPU (gloo, 2 processes, as torchrun starts it):
each rank streams its half of one global draw of windows, so two processes with batch 8 train
as one process with batch 16 - the same lr at every step, the same losses to float rounding -
and the fixed val windows are split between the ranks and counted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_text
from tests.tasks.test_language_model import TINY_GPT
from tests.train.test_distributed import ENV, torchrun, weights

ARGS = [
    "dataset=text",
    "dataset.path=t.txt",
    *TINY_GPT,
    "dataset.steps_per_epoch=6",
    "trainer.epochs=2",
    "scheduler=one_cycle_lr",
    "trainer.device=cpu",
    "trainer.progress=false",
    "trainer.plot=false",
]


@pytest.mark.slow
def test_two_ranks_stream_halves_of_one_process_batch(tmp_path: Path) -> None:
    write_text(tmp_path / "t.txt", 8_000)
    args = [a for a in ARGS if not a.startswith("trainer.batch_size")]
    one = run_cli([*args, "trainer.batch_size=16", "hydra.run.dir=one"], tmp_path, env=ENV)
    assert_ok(one)
    two = torchrun([*args, "trainer.batch_size=8", "hydra.run.dir=two"], tmp_path)
    assert two.returncode == 0, two.stderr
    a, b = (read_csv(tmp_path / d / "steps.csv") for d in ("one", "two"))
    assert len(a) == len(b) == 12 and [r["lr"] for r in a] == [r["lr"] for r in b]
    assert [float(r["loss"]) for r in b] == pytest.approx([float(r["loss"]) for r in a], rel=1e-5)
    ma, mb = (read_csv(tmp_path / d / "metrics.csv") for d in ("one", "two"))
    for key in ("train_loss", "val_loss", "val_ppl", "test_loss"):
        got = [float(r[key] or "nan") for r in mb]
        assert got == pytest.approx([float(r[key] or "nan") for r in ma], rel=1e-5, nan_ok=True)
    wa, wb = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5
