"""Seeds as replicates (lrrun.sweep.replicates, lrrun.sweep.verdict) on hand-made jobs: grouping, the
statistics in configs.csv against scipy.stats, failed jobs, and the verdict's sentences."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from lrrun.logs.runs import Job
from lrrun.sweep import replicates, stats, verdict
from tests.conftest import read_csv


def job(num: int, lr: str, seed: int, accs: list[float], status: str = "ok") -> Job:
    metrics = [{"epoch": e, "val_acc": a, "val_loss": 1 - a} for e, a in enumerate(accs, 1)]
    return Job(
        str(num),
        Path(str(num)),
        {"optimizer.lr": lr, "trainer.seed": str(seed)},
        status,
        metrics,
        seed=seed,
    )


# best val_acc per seed 1..3 for four configs
VALUES = {
    "0.1": [0.870, 0.875, 0.872],  # best
    "0.05": [0.869, 0.874, 0.870],  # a little worse on every seed (paired: noticeable)
    "0.01": [0.800, 0.790, 0.805],  # much worse
    "0.3": [0.871, 0.873, 0.870],
}


def sweep(values: dict[str, list[float]] = VALUES) -> list[Job]:
    jobs, num = [], 0
    for lr, accs in values.items():
        for seed, acc in enumerate(accs, start=1):
            jobs.append(job(num, lr, seed, [acc - 0.1, acc, acc - 0.001]))
            num += 1
    return jobs


def ranked(jobs: list[Job]) -> list[replicates.Config]:
    return replicates.rank(replicates.group(jobs, ["optimizer.lr", "trainer.seed"]))


def test_jobs_that_differ_only_in_seed_form_one_config() -> None:
    configs = replicates.group(sweep(), ["optimizer.lr", "trainer.seed"])
    assert [c.label for c in configs] == [f"optimizer.lr={lr}" for lr in VALUES]
    assert all([j.seed for j in c.jobs] == [1, 2, 3] for c in configs)


def test_statistics_rank_and_holm_match_scipy() -> None:
    configs = ranked(sweep())
    assert [c.overrides["optimizer.lr"] for c in configs] == ["0.1", "0.3", "0.05", "0.01"]
    assert [c.rank for c in configs] == [1, 2, 3, 4]
    best = configs[0]
    s = best.stats["best_val_acc"]
    assert s.mean == pytest.approx(np.mean(VALUES["0.1"]))
    assert s.std == pytest.approx(np.std(VALUES["0.1"], ddof=1))
    final = best.stats["final_val_acc"]  # the last epoch: acc - 0.001
    assert final.mean == pytest.approx(np.mean(VALUES["0.1"]) - 0.001)
    raw = [
        sps.ttest_rel(VALUES["0.1"], VALUES[c.overrides["optimizer.lr"]]).pvalue
        for c in configs[1:]
    ]
    m = len(raw)
    order = np.argsort(raw)
    holm = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * raw[i]))
        holm[i] = running
    assert [c.p_vs_best for c in configs[1:]] == pytest.approx(holm, rel=1e-12)
    assert {c.test for c in configs[1:]} == {"paired"}
    assert [c.tied_with_best for c in configs] == [True] + [p >= 0.05 for p in holm]
    assert configs[3].tied_with_best is False  # lr=0.01 is plainly worse
    assert configs[1].diff_vs_best == pytest.approx(np.mean(VALUES["0.3"]) - np.mean(VALUES["0.1"]))
    assert best.p_vs_best is None and best.diff_vs_best == 0.0


def test_failed_jobs_are_counted_and_left_out() -> None:
    jobs = sweep()
    jobs[10] = job(10, "0.3", 2, [0.1], status="diverged")  # seed 2 of lr=0.3
    configs = {c.overrides["optimizer.lr"]: c for c in ranked(jobs)}
    c = configs["0.3"]
    assert (len(c.ok), len(c.failed)) == (2, 1)
    assert c.stats["best_val_acc"].mean == pytest.approx(np.mean([0.871, 0.870]))
    assert c.test == "welch"  # seeds {1, 3} vs the best's {1, 2, 3}: not the same seeds
    lines = verdict.verdict(list(configs.values()), replicates.noise(ranked(jobs)), jobs, [])
    assert "job 10 (optimizer.lr=0.3, seed 2): diverged" in lines[-1]
    jobs[0] = job(0, "0.1", 1, [0.5], status="running")  # a report taken during the sweep
    configs = {c.overrides["optimizer.lr"]: c for c in ranked(jobs)}
    assert (len(configs["0.1"].ok), len(configs["0.1"].failed)) == (2, 0)
    lines = verdict.verdict(list(configs.values()), replicates.noise(ranked(jobs)), jobs, [])
    assert (
        lines[-1] == "running: 1 job not in the statistics yet - job 0 (optimizer.lr=0.1, seed 1)."
    )


def test_a_config_whose_every_job_failed_ranks_last_with_no_mean(tmp_path: Path) -> None:
    jobs = sweep()
    for i in (6, 7, 8):  # every seed of lr=0.01
        jobs[i] = job(i, "0.01", i - 5, [], status="failed")
    configs = ranked(jobs)
    last = configs[-1]
    assert last.overrides["optimizer.lr"] == "0.01" and last.rank == 4
    assert last.mean is None and last.p_vs_best is None and not last.tied_with_best
    replicates.write_configs(tmp_path / "configs.csv", configs, ["optimizer.lr", "trainer.seed"])
    rows = read_csv(tmp_path / "configs.csv")
    assert rows[-1]["mean_best_val_acc"] == "" and rows[-1]["n"] == "0"
    assert rows[-1]["failed"] == "3" and rows[-1]["tied_with_best"] == "false"
    text = " ".join(verdict.verdict(configs, replicates.noise(configs), jobs, ["optimizer.lr"]))
    assert "1 without an ok job, ranked last" in text
    assert "nan" not in text.lower()


def test_configs_csv_columns_are_the_contract(tmp_path: Path) -> None:
    configs = ranked(sweep())
    replicates.write_configs(tmp_path / "configs.csv", configs, ["optimizer.lr", "trainer.seed"])
    rows = read_csv(tmp_path / "configs.csv")
    assert list(rows[0]) == [
        "optimizer.lr",
        "n",
        "seeds",
        "failed",
        "mean_best_val_acc",
        "std_best_val_acc",
        "ci95_best_val_acc",
        "mean_final_val_acc",
        "std_final_val_acc",
        "ci95_final_val_acc",
        "mean_final_val_loss",
        "std_final_val_loss",
        "ci95_final_val_loss",
        "rank",
        "diff_vs_best",
        "p_vs_best",
        "test",
        "tied_with_best",
    ]
    assert rows[0]["seeds"] == "1 2 3" and rows[0]["p_vs_best"] == ""
    assert float(rows[0]["mean_best_val_acc"]) == configs[0].mean  # full precision


def test_identical_configs_are_tied_not_nan() -> None:
    same = [0.86, 0.87, 0.865]
    configs = ranked(sweep({"0.1": same, "0.2": same}))
    assert [c.tied_with_best for c in configs] == [True, True]
    assert configs[1].p_vs_best == 1.0 and configs[1].diff_vs_best == 0.0
    noise = replicates.noise(configs)
    assert noise.gap == 0.0 and noise.test_std == 0.0
    text = " ".join(verdict.verdict(configs, noise, [], ["optimizer.lr"]))
    assert "1 config is tied with it" in text and "no number of seeds" in text


def test_the_verdict_names_noise_power_and_the_seeds_a_gap_needs() -> None:
    configs = ranked(sweep())
    noise = replicates.noise(configs)
    assert noise.paired and noise.n == 3
    groups = [[v for _, v in c.values()] for c in configs]
    assert noise.std == pytest.approx(stats.pooled_std(groups)[0])
    best = np.array(VALUES["0.1"])
    diffs = [best - np.array(VALUES[lr]) for lr in ("0.3", "0.05", "0.01")]
    pooled = np.sqrt(sum(np.var(d, ddof=1) * 2 for d in diffs) / 6)
    assert noise.test_std == pytest.approx(pooled)
    assert noise.detectable == pytest.approx(stats.detectable_difference(3, pooled, True))
    assert noise.seeds_for_gap == stats.seeds_needed(noise.gap, pooled, True)
    lines = verdict.verdict(configs, noise, sweep(), ["optimizer.lr"])
    tied = sum(c.tied_with_best for c in configs[1:])
    assert lines[0].startswith(f"best: optimizer.lr=0.1, {configs[0].mean:.4f} +- ")
    assert f"{tied} config" in lines[0] and "(n=3)" in lines[0]
    assert lines[1].startswith("optimizer.lr=0.05: behind the best in each of its 3 seeds")
    said = {line.split(":", 1)[0]: line for line in lines}
    assert f"{noise.std:.4f}" in said["noise"]
    assert (
        said["power"].startswith("power: with 3 seeds")
        and f"{noise.detectable:.4f}" in said["power"]
    )
    assert "found significant 4 times in 5" in said["power"]
    assert f"about {noise.seeds_for_gap} seeds per config" in said["power"]


def test_a_config_behind_in_every_seed_is_not_called_as_good() -> None:
    """Tied (p >= 0.05) although each of its seeds lost: the verdict says so, and a gap at
    least the detectable difference is explained, not left to read as a contradiction."""
    values = {"0.1": [0.90, 0.80, 0.85], "0.2": [0.895, 0.70, 0.845]}
    configs = ranked(sweep(values))
    noise = replicates.noise(configs)
    runner = configs[1]
    assert runner.tied_with_best and runner.p_vs_best is not None
    lines = verdict.verdict(configs, noise, sweep(values), ["optimizer.lr"])
    said = [line for line in lines if line.startswith("optimizer.lr=0.2: ")]
    assert len(said) == 1 and "behind the best in each of its 3 seeds" in said[0]
    assert f"p={runner.p_vs_best:.3f}" in said[0] and "Add seeds" in said[0]
    even = ranked(sweep({"0.1": [0.90, 0.80, 0.85], "0.2": [0.905, 0.70, 0.84]}))
    assert not any(
        ": behind the best" in line
        for line in verdict.verdict(even, replicates.noise(even), [], ["optimizer.lr"])
    )
    wide = dataclasses.replace(noise, detectable=0.01, gap=0.05)
    assert "as large as that, yet not significant in this draw" in verdict._power(wide, configs)


def test_one_seed_per_config_cannot_tell_and_says_how_to_add_seeds() -> None:
    jobs = [
        Job(
            str(i),
            Path(str(i)),
            {"trainer.epochs": "4", "scheduler.gamma": g, "scheduler.step_size": s},
            "ok",
            [{"epoch": 1, "val_acc": 0.8 + i / 100, "val_loss": 0.5}],
            seed=42,
        )
        for i, (g, s) in enumerate((g, s) for g in ("0.3", "0.6") for s in ("1", "2"))
    ]
    axes = ["scheduler.gamma", "scheduler.step_size"]
    configs = replicates.rank(replicates.group(jobs, axes))
    assert all(c.tied_with_best and c.p_vs_best is None for c in configs)
    lines = verdict.verdict(configs, replicates.noise(configs), jobs, axes)
    assert "cannot tell noise from effect" in lines[0]
    assert lines[-1] == (
        "  lrrun -m trainer.epochs=4 scheduler.gamma=0.3,0.6 scheduler.step_size=1,2 "
        "'trainer.seed=range(1,4)'"
    )


def test_configs_that_are_no_grid_get_one_command_each() -> None:
    """Optuna's trials: re-check the best three, each with seeds."""
    jobs = [
        Job(
            str(i),
            Path(str(i)),
            {"optimizer.lr": lr, "scheduler.gamma": g},
            "ok",
            [{"epoch": 1, "val_acc": acc, "val_loss": 0.5}],
            seed=42,
        )
        for i, (lr, g, acc) in enumerate(
            [
                ("0.01", "0.5", 0.8),
                ("0.02", "0.7", 0.9),
                ("0.03", "0.9", 0.85),
                ("0.04", "0.1", 0.7),
            ]
        )
    ]
    axes = ["optimizer.lr", "scheduler.gamma"]
    configs = replicates.rank(replicates.group(jobs, axes))
    assert verdict.seeded_commands(configs, jobs, axes) == [
        f"lrrun -m optimizer.lr={lr} scheduler.gamma={g} 'trainer.seed=range(1,4)'"
        for lr, g in (("0.02", "0.7"), ("0.03", "0.9"), ("0.01", "0.5"))
    ]
