"""Schedule events (lrrun.schedule.events): events.csv against the run's own steps.csv, the console
lines, and the preview's events for the same plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY, TINY_STEPS_PER_EPOCH, assert_ok, read_csv, run_cli

N = 6 * TINY_STEPS_PER_EPOCH
PLATEAU = [
    "scheduler=reduce_lr_on_plateau",
    "scheduler.patience=0",
    "scheduler.factor=0.5",
    "optimizer.lr=0.05",
]
RUNS = {
    "step_lr": ["scheduler=step_lr", "scheduler.step_size=2"],
    "step_lr_per_step": ["scheduler=step_lr", "scheduler.step_size=5", "scheduler.interval=step"],
    "multi_step_lr": ["scheduler=multi_step_lr", "scheduler.milestones=[2,3,5]"],
    # threshold 0.5 (relative): most epochs count as "not better", so the lr is cut often
    "plateau_max": [*PLATEAU, "scheduler.monitor=val_acc", "scheduler.threshold=0.5"],
    "plateau_min": [*PLATEAU, "scheduler.monitor=val_loss", "scheduler.threshold=0.2"],
    "restarts": ["scheduler=cosine_annealing_warm_restarts", "scheduler.T_0=2"],
    "sequential": ["scheduler=sequential_lr"],
    "warmup": ["scheduler=step_lr", "scheduler.step_size=2", "scheduler.warmup.steps=6"],
    "one_cycle": ["scheduler=one_cycle_lr"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    cwd = tmp_path_factory.mktemp("events")
    out = {}
    for name, args in RUNS.items():
        proc = run_cli([*TINY, *args, f"hydra.run.dir={name}"], cwd)
        assert_ok(proc)
        out[name] = (cwd / name, proc.stdout)
    return out


def events(job: Path) -> list[dict[str, str]]:
    return read_csv(job / "events.csv")


def assert_consistent(job: Path) -> list[dict[str, str]]:
    """lr_after = steps.csv's lr at step, lr_before = its lr at step - 1; an event after the
    last epoch points one step past the run (a longer, resumed run takes it)."""
    lrs = {int(r["step"]): r["lr"] for r in read_csv(job / "steps.csv")}
    rows = events(job)
    for e in rows:
        step = int(e["step"])
        assert 1 < step <= N + 1, e
        assert float(e["lr_before"]) == float(lrs[step - 1]), e
        if step <= N:
            assert float(e["lr_after"]) == float(lrs[step]), e
        else:
            assert e["epoch"] == "6", e
    return [e for e in rows if int(e["step"]) <= N]


def changes(job: Path) -> list[int]:
    lrs = [r["lr"] for r in read_csv(job / "steps.csv")]
    return [k for k in range(2, len(lrs) + 1) if lrs[k - 1] != lrs[k - 2]]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("step_lr", "decay"),
        ("step_lr_per_step", "decay"),
        ("multi_step_lr", "decay"),
        ("plateau_max", "plateau"),
        ("plateau_min", "plateau"),
    ],
)
def test_every_change_has_exactly_one_event(runs, name: str, kind: str) -> None:
    job, _ = runs[name]
    rows = assert_consistent(job)
    assert [r["event"] for r in rows] == [kind] * len(rows)
    assert [int(r["step"]) for r in rows] == changes(job)  # one per change, none without
    assert len(rows) >= 2, "the schedule must change for this test to mean anything"


def test_event_epochs_and_messages(runs) -> None:
    rows = events(runs["step_lr"][0])
    # decided after epochs 2, 4 and 6 (that one's step is the one a longer run would take)
    assert [(r["epoch"], r["step"]) for r in rows] == [("2", "9"), ("4", "17"), ("6", "25")]
    assert rows[0]["message"] == "StepLR every 2 epochs: x0.7"
    plateau = events(runs["plateau_max"][0])[0]
    assert plateau["message"].startswith("val_acc ") and "(patience 0)" in plateau["message"]
    assert "not better than" in plateau["message"] and "for 1 epochs" in plateau["message"]
    multi = events(runs["multi_step_lr"][0])
    assert multi[0]["message"] == "MultiStepLR milestone 2: x0.1"


def test_restarts_switches_peaks_and_warmup_end(runs) -> None:
    restarts = assert_consistent(runs["restarts"][0])
    assert [(r["event"], int(r["step"])) for r in restarts] == [
        ("restart", 1 + 2 * TINY_STEPS_PER_EPOCH),
        ("restart", 1 + 4 * TINY_STEPS_PER_EPOCH),
    ]
    sequential = assert_consistent(runs["sequential"][0])  # LinearLR for 2 epochs, then cosine
    assert [(r["event"], r["epoch"]) for r in sequential] == [("switch", "2")]
    assert "switches to child 2 of 2 (CosineAnnealingLR)" in sequential[0]["message"]
    warm = assert_consistent(runs["warmup"][0])
    assert [(r["event"], int(r["step"])) for r in warm] == [
        ("warmup_end", 7),
        ("decay", 9),
        ("decay", 17),
    ]
    peak = assert_consistent(runs["one_cycle"][0])
    assert [r["event"] for r in peak] == ["peak"]
    lrs = [float(r["lr"]) for r in read_csv(runs["one_cycle"][0] / "steps.csv")]
    assert float(peak[0]["lr_after"]) == max(lrs)  # the step with the highest lr


def test_console_prints_events_under_their_epoch_row(runs) -> None:
    job, out = runs["plateau_max"]
    first = events(job)[0]
    line = (
        f"  epoch {first['epoch']}: plateau - {first['message']}: "
        f"lr {float(first['lr_before']):.4e} -> {float(first['lr_after']):.4e}"
    )
    lines = out.splitlines()
    assert line in lines
    row = next(i for i, x in enumerate(lines) if x.split()[:1] == [first["epoch"]])
    assert lines.index(line) > row


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name",
    [
        "step_lr",
        "one_cycle",
        *(pytest.param(n, marks=SLOW) for n in ("warmup", "restarts", "sequential")),
    ],
)
def test_preview_prints_the_same_events(runs, tmp_path: Path, name: str) -> None:
    _, trained = runs[name]
    proc = run_cli([*TINY, *RUNS[name], "hydra.run.dir=p"], tmp_path, prog="lrrun-preview")
    assert_ok(proc)
    previewed = [x for x in proc.stdout.splitlines() if x.startswith("  epoch ")]
    assert previewed and previewed == [x for x in trained.splitlines() if x.startswith("  epoch ")]


@pytest.mark.slow
def test_smooth_schedules_have_no_events(tmp_path: Path) -> None:
    proc = run_cli(
        [
            "-m",
            *TINY,
            "scheduler=exponential_lr,cosine_annealing_lr,polynomial_lr",
            "hydra.sweep.dir=sw",
        ],
        tmp_path,
    )
    assert_ok(proc)
    for job in "012":
        assert events(tmp_path / "sw" / job) == []
