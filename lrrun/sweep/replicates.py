"""Seeds are replicates: jobs of a sweep that differ only in ``trainer.seed`` form one config.

Each config gets the mean, std and 95% interval of its ok jobs' best_<select>, final_<select>
and final_<other> - the task's (lrrun.config.task): best_val_acc, final_val_acc and
final_val_loss for classification; best_val_loss, final_val_loss and final_val_r2 (regression)
or final_val_ppl (a language model) - a rank by mean best_<select>, the better direction first
(higher accuracy, lower loss), and a test against the best config
(lrrun.sweep.stats.compare: paired by seed when both have the same seeds, Welch otherwise; Holm's
correction across the comparisons). ``tied_with_best`` means "not significantly worse at
0.05": the best itself, and every config the data cannot tell from it (also when no test can
be computed, e.g. one seed). Jobs that did not end ok are counted in ``failed`` and left out
of the statistics; a config without an ok job ranks last, with no mean.

configs.csv has one row per config, best first; its column names are a contract.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lrrun.config.run_dirs import OK_STATUSES
from lrrun.config.task import TaskSpec
from lrrun.files import write_rows
from lrrun.logs.runs import Job, is_seed, sweep_task
from lrrun.sweep import stats

# Jobs in neither n nor failed: still running (a report taken during the sweep).
NOT_ENDED = ("running",)


def metrics(task: TaskSpec) -> tuple[str, str, str]:
    """What each config is summarised by: (best_<select>, final_<select>, final_<other>)."""
    return f"best_{task.select}", f"final_{task.select}", f"final_{task.other}"


def job_values(job: Job, task: TaskSpec) -> dict[str, float]:
    m, best = job.metrics, task.best(job.metrics)
    assert best is not None
    return {
        f"best_{task.select}": best[task.select],
        f"final_{task.select}": m[-1][task.select],
        f"final_{task.other}": m[-1][task.other],
    }


def job_ok(job: Job) -> bool:
    return job.status in OK_STATUSES and bool(job.metrics)


@dataclass
class Config:
    overrides: dict[str, str]  # this config's overrides, the seed left out
    label: str
    jobs: list[Job]
    task: TaskSpec  # the sweep's: what ranks it
    stats: dict[str, stats.Summary] = field(default_factory=dict)
    rank: int = 0
    diff_vs_best: float | None = None
    p_vs_best: float | None = None
    test: str = ""
    tied_with_best: bool = False

    @property
    def ok(self) -> list[Job]:
        return [j for j in self.jobs if job_ok(j) and j.task == self.task]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if not job_ok(j) and j.status not in NOT_ENDED]

    @property
    def score(self) -> str:
        """The statistic configs are ranked by: best_val_acc, or best_val_loss."""
        return f"best_{self.task.select}"

    @property
    def mean(self) -> float | None:
        return self.stats[self.score].mean

    def values(self, metric: str | None = None) -> list[tuple[int, float]]:
        """(seed, value) of each ok job (by default of the ranking statistic)."""
        return [(j.seed, job_values(j, self.task)[metric or self.score]) for j in self.ok]


def group(jobs: list[Job], axes: list[str]) -> list[Config]:
    """Configs in the order their first job ran; ``axes`` are the sweep's varying keys."""
    keys = [k for k in axes if not is_seed(k)]
    task = sweep_task(jobs)
    configs: dict[tuple[str, ...], Config] = {}
    for job in jobs:
        key = tuple(job.overrides.get(k, "") for k in keys)
        if key not in configs:
            overrides = {k: job.overrides[k] for k in keys if k in job.overrides}
            label = " ".join(f"{k}={v}" for k, v in overrides.items())
            configs[key] = Config(overrides, label or "all jobs", [], task)
        configs[key].jobs.append(job)
    return list(configs.values())


def rank(configs: list[Config]) -> list[Config]:
    """Fill in every config's statistics, rank and test against the best; best first."""
    for c in configs:
        c.stats = {m: stats.describe([v for _, v in c.values(m)]) for m in metrics(c.task)}
    sign = -1.0 if configs and configs[0].task.higher else 1.0  # the better mean first
    order = sorted(
        range(len(configs)),
        key=lambda i: (configs[i].mean is None, sign * (configs[i].mean or 0.0), i),
    )
    ranked = [configs[i] for i in order]
    for i, c in enumerate(ranked, start=1):
        c.rank = i
    best = ranked[0] if ranked and ranked[0].mean is not None else None
    if best is None:
        return ranked
    others = [c for c in ranked[1:] if c.mean is not None]
    comparisons = [stats.compare(best.values(), c.values()) for c in others]
    adjusted = stats.holm([cmp.p for cmp in comparisons])
    best.tied_with_best, best.diff_vs_best = True, 0.0
    for c, cmp, p in zip(others, comparisons, adjusted, strict=True):
        c.p_vs_best, c.test = p, cmp.test
        c.diff_vs_best = c.mean - best.mean  # type: ignore[operator]
        c.tied_with_best = p is None or p >= stats.ALPHA
    return ranked


def columns(axes: list[str], task: TaskSpec) -> list[str]:
    per_metric = [f"{s}_{m}" for m in metrics(task) for s in ("mean", "std", "ci95")]
    return [
        *(k for k in axes if not is_seed(k)),
        "n",
        "seeds",
        "failed",
        *per_metric,
        "rank",
        "diff_vs_best",
        "p_vs_best",
        "test",
        "tied_with_best",
    ]


def row(c: Config, axes: list[str]) -> dict[str, Any]:
    def num(v: float | None) -> float | str:
        return "" if v is None else v

    out: dict[str, Any] = {k: c.overrides.get(k, "") for k in axes if not is_seed(k)}
    out |= {
        "n": len(c.ok),
        "seeds": " ".join(str(s) for s, _ in c.values()),
        "failed": len(c.failed),
    }
    for m in metrics(c.task):
        s = c.stats[m]
        out |= {f"mean_{m}": num(s.mean), f"std_{m}": num(s.std), f"ci95_{m}": num(s.ci95)}
    return out | {
        "rank": c.rank,
        "diff_vs_best": num(c.diff_vs_best),
        "p_vs_best": num(c.p_vs_best),
        "test": c.test,
        "tied_with_best": "true" if c.tied_with_best else "false",
    }


def write_configs(path: Path, configs: list[Config], axes: list[str]) -> None:
    task = configs[0].task if configs else sweep_task([])
    write_rows(path, columns(axes, task), (row(c, axes) for c in configs))


@dataclass(frozen=True)
class Noise:
    """What the sweep can tell apart, from the spread between its seeds."""

    std: float | None  # within-config std of the ranking statistic, pooled (configs, n >= 2)
    configs: int  # how many configs that std pools
    paired: bool  # comparisons were paired by seed
    test_std: float | None  # the std the test works with: of paired differences, or ``std``
    n: int  # seeds per config (the most common n among configs with n >= 2)
    detectable: float | None  # smallest difference found with 80% power at p < 0.05 with n
    gap: float | None  # how far the runner-up is behind the best (>= 0)
    seeds_for_gap: int | None  # seeds per config that would find the gap (80%, p < 0.05)


def noise(ranked: list[Config]) -> Noise:
    scored = [c for c in ranked if c.mean is not None]
    groups = [[v for _, v in c.values()] for c in scored]
    std, _ = stats.pooled_std(groups)
    paired = [c for c in scored if c.test == "paired"]
    if paired:
        best = dict(scored[0].values())
        diffs = [[best[s] - v for s, v in c.values()] for c in paired]
        test_std, _ = stats.pooled_std(diffs)
    else:
        test_std = std
    ns = Counter(len(g) for g in groups if len(g) >= 2)
    n = min(ns, key=lambda k: (-ns[k], k)) if ns else 1
    detectable = None
    if test_std is not None and n >= 2:
        detectable = stats.detectable_difference(n, test_std, bool(paired))
    gap = abs(scored[0].mean - scored[1].mean) if len(scored) >= 2 else None  # type: ignore[operator]
    seeds = None
    if gap is not None and test_std is not None:
        seeds = stats.seeds_needed(gap, test_std, bool(paired))
    return Noise(
        std=std,
        configs=sum(len(g) >= 2 for g in groups),
        paired=bool(paired),
        test_std=test_std,
        n=n,
        detectable=detectable,
        gap=gap,
        seeds_for_gap=seeds,
    )
