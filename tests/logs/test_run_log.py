"""lrrun.log holds what the console printed, without colour: a run's header, rows, events,
test result and choice in its run dir; a sweep's table and verdict in its sweep dir."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TINY, assert_ok, read_csv, run_cli


def test_the_run_log_holds_what_the_console_printed(tmp_path: Path) -> None:
    proc = run_cli([*TINY, "trainer.epochs=2", "hydra.run.dir=run"], tmp_path)
    assert_ok(proc)
    log = (tmp_path / "run" / "lrrun.log").read_text()
    assert "\x1b[" not in log
    lines = [line.split("] - ", 1)[1] for line in log.splitlines() if "[lrrun.run]" in line]
    printed = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines == printed, "every console line, in order, nothing else"
    assert any(line.startswith("dataset ") for line in lines)
    assert any(line.startswith("best val_acc ") for line in lines)
    assert len([line for line in lines if line.split()[0] in ("1", "2")]) == 2  # the rows


def test_the_sweep_log_holds_the_table_and_the_verdict(tmp_path: Path) -> None:
    proc = run_cli(
        ["-m", *TINY, "trainer.epochs=1", "optimizer.lr=0.01,0.05", "hydra.sweep.dir=sweep"],
        tmp_path,
    )
    assert_ok(proc)
    log = (tmp_path / "sweep" / "lrrun.log").read_text()
    assert "\x1b[" not in log
    assert "2 job(s), best val_acc first" in log and "best: optimizer.lr=" in log
    assert len(read_csv(tmp_path / "sweep" / "summary.csv")) == 2
    for job in ("0", "1"):
        assert "best val_acc" in (tmp_path / "sweep" / job / "lrrun.log").read_text()
