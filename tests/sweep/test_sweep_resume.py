"""A sweep is finished, never redone: the same ``lrrun -m`` command into the same sweep dir
keeps the ended jobs untouched, resumes the stopped one bit-exact, runs the missing ones and
reports over all; another sweep into that dir is refused before anything is written."""

from __future__ import annotations

import hashlib
import shlex
import signal
from pathlib import Path

import pytest

from lrrun.config.run_dirs import hydra_value
from tests.conftest import assert_ok, interrupt_after_first_epoch, read_csv, run_cli
from tests.train.test_failures import LONG, status

LRS = "optimizer.lr=0.05,0.1,0.2"
SWEEP = [*LONG, LRS]  # 12 epochs: a signal after job 2's first lands well inside it


def files(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` but the lock: its content's hash and its mtime (ns)."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lrrun.lock"
    }


def without_time(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_sweep_is_finished_by_the_same_command(tmp_path: Path, sig: int) -> None:
    name = "ü run, 2 [x]=(y)#"  # the printed command must read back through Hydra's parser
    sweep = tmp_path / name
    args = ["-m", *SWEEP, f"hydra.sweep.dir={hydra_value(name)}"]
    proc = interrupt_after_first_epoch(args, tmp_path, sweep / "1", sig)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), proc.stderr
    assert "Traceback" not in proc.stderr
    assert status(sweep / "0")["status"] == "ok"
    assert status(sweep / "1")["status"] == ("interrupted" if sig == signal.SIGINT else "running")
    assert not (sweep / "2").exists() and not (sweep / "summary.csv").exists()
    if sig == signal.SIGINT:  # the printed command is the one to use; after SIGKILL, the same
        line = next(x for x in proc.stderr.splitlines() if "Finish the sweep with: " in x)
        command = shlex.split(line.split("Finish the sweep with: ", 1)[1])
        assert command[:2] == ["lrrun", "-m"], command
        args = command[1:]
    first = files(sweep / "0")

    finished = run_cli(args, tmp_path)
    assert_ok(finished)
    assert "job 0 ended before (status ok): kept as it is" in finished.stdout
    assert "job 1 stopped before: resuming it" in finished.stdout
    assert files(sweep / "0") == first, "an ended job's files (and .hydra/) must be untouched"
    assert [status(sweep / str(j))["status"] for j in range(3)] == ["ok"] * 3
    summary = read_csv(sweep / "summary.csv")
    assert sorted(r["optimizer.lr"] for r in summary) == ["0.05", "0.1", "0.2"]

    # job 1, resumed, equals the same config trained without a stop
    assert_ok(run_cli([*SWEEP[:-1], "optimizer.lr=0.1", "hydra.run.dir=whole"], tmp_path))
    assert read_csv(sweep / "1" / "steps.csv") == read_csv(tmp_path / "whole" / "steps.csv")
    assert without_time(read_csv(sweep / "1" / "metrics.csv")) == without_time(
        read_csv(tmp_path / "whole" / "metrics.csv")
    )

    # another sweep into that dir: refused with the difference named, nothing written
    before = files(sweep)
    other = run_cli(
        ["-m", *SWEEP[:-1], "optimizer.lr=0.05,0.3", f"hydra.sweep.dir={hydra_value(name)}"],
        tmp_path,
    )
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "holds another sweep (optimizer.lr: 0.05,0.1,0.2 there, 0.05,0.3 here)" in other.stderr
    assert "Finish that sweep with: lrrun -m" in other.stderr
    assert files(sweep) == before


def test_a_sweep_dir_takes_no_other_runs(tmp_path: Path) -> None:
    """A dir holding a single run, or runs without Hydra's record of a sweep, takes no
    sweep; a sweep that ran to its end, run again, trains nothing."""
    tiny = [*SWEEP[:-1], "trainer.epochs=1", "dataset.train_size=256"]
    assert_ok(run_cli([*tiny, "hydra.run.dir=single"], tmp_path))
    proc = run_cli(["-m", *tiny, "optimizer.lr=0.1,0.2", "hydra.sweep.dir=single"], tmp_path)
    assert proc.returncode == 2 and "hydra.sweep.dir=single holds a single run" in proc.stderr

    assert_ok(run_cli([*tiny, "hydra.run.dir=loose/0"], tmp_path))
    proc = run_cli(["-m", *tiny, "optimizer.lr=0.1,0.2", "hydra.sweep.dir=loose"], tmp_path)
    assert proc.returncode == 2 and "holds runs but no multirun.yaml" in proc.stderr

    sweep = ["-m", *tiny, "optimizer.lr=0.1,0.2", "hydra.sweep.dir=done"]
    assert_ok(run_cli(sweep, tmp_path))
    jobs = lambda: {k: v for k, v in files(tmp_path / "done").items() if "/" in k}  # noqa: E731
    before = jobs()
    again = run_cli(sweep, tmp_path)
    assert_ok(again)
    assert "2 job(s) ended and are kept as they are" in again.stdout
    assert jobs() == before
    assert len(read_csv(tmp_path / "done" / "summary.csv")) == 2
