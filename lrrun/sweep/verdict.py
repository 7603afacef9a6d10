"""What a sweep's results say, in a few plain sentences under its table (lrrun.sweep.tables).

The verdict never claims more than the data supports: it names the configs tied with the best,
the seed-to-seed noise and the smallest difference the sweep could detect, and with one seed
per config it says that the ranking cannot tell noise from effect and prints the command that
adds seeds.
"""

from __future__ import annotations

import math
import shlex
from typing import TYPE_CHECKING

from lrrun.logs.runs import SEED, is_seed
from lrrun.sweep.replicates import NOT_ENDED, Config, Noise
from lrrun.sweep.tables import pm, wide_console

if TYPE_CHECKING:
    from lrrun.logs.runs import Job

SEEDS_TO_ADD = "range(1,4)"  # Hydra's sweep syntax: seeds 1, 2, 3


# --- the verdict in words -------------------------------------------------------------------
def verdict(ranked: list[Config], noise: Noise, jobs: list[Job], axes: list[str]) -> list[str]:
    """A few plain sentences: who won, who is tied, how noisy, what it would take."""
    scored = [c for c in ranked if c.mean is not None]
    lines = []
    if not scored:
        lines.append("no job ended ok: nothing to rank.")
    elif noise.std is None:  # no config has two ok seeds
        best = scored[0]
        if len(scored) == 1:
            lines.append(
                f"one run: {best.label}, best {best.task.select} {best.mean:.4f}; nothing to "
                "compare."
            )
        else:
            lines.append(
                f"best: {best.label}, {best.mean:.4f} (one seed). With one seed per config this "
                "ranking cannot tell noise from effect: runs that differ only in their seed "
                "differ too, by an amount this sweep cannot measure."
            )
        lines.append("Add seeds to find out:")
        lines += [f"  {command}" for command in seeded_commands(ranked, jobs, axes)]
    else:
        lines.append(_winner(scored, ranked))
        lines += _lost_every_seed(scored)
        lines.append(_noise(noise, scored[0].task.select))
        lines.append(_power(noise, scored))
    lines += _selection(scored, jobs)
    lines += _stopped_early(ranked)
    lines += _not_ok(ranked)
    return lines


def _selection(scored: list[Config], jobs: list[Job]) -> list[str]:
    """Which split ranked the configs, and the winner's test result (reported only)."""
    on_test = [j for j in jobs if j.selection == "test"]
    if on_test:
        return [
            f"selected on the test split: {_n(len(on_test), 'job')} ran with "
            "dataset.val_split=0, so this ranking chose on the split meant for the final "
            "report; the winner's numbers are optimistic and no untouched test result is "
            "left. Hold out a val split (e.g. dataset.val_split=5000) to choose on."
        ]
    tested = [j.test_value for j in scored[0].ok if j.test_value is not None] if scored else []
    if not tested:
        return []
    from lrrun.sweep.stats import describe

    s = describe(tested)
    metric = scored[0].task.select.removeprefix("val_")
    what = "accuracy" if metric == "acc" else metric
    return [
        f"test: the best config's test {what} is {pm(s.mean, s.ci95)} (n={s.n}); it is "
        "reported only: every choice above was made on the val split."
    ]


def _winner(scored: list[Config], ranked: list[Config]) -> str:
    best = scored[0]
    s, task = best.stats[best.score], best.task
    text = f"best: {best.label}, {pm(s.mean, s.ci95)} (n={s.n})"
    if not task.higher:  # say which way is better where it is not the usual accuracy
        text = f"best: {best.label}, {task.select} {pm(s.mean, s.ci95)} (n={s.n}; lower is better)"
    if len(scored) == 1:
        text += "; the only config with results, nothing to compare it with"
    else:
        tied = [c for c in scored[1:] if c.tied_with_best]
        untested = sum(c.p_vs_best is None for c in tied)
        worse = len(scored) - 1 - len(tied)
        text += "; " + (
            f"{_n(len(tied), 'config')} {_is(len(tied))} tied with it (p > 0.05"
            + (f"; {untested} untested: fewer than 2 ok seeds)" if untested else ")")
            if tied
            else "no config is tied with it"
        )
        text += f"; {worse} {_is(worse)} worse (p < 0.05)" if worse else "; none is worse"
    if len(ranked) > len(scored):
        text += f"; {len(ranked) - len(scored)} without an ok job, ranked last"
    return text + "."


def _lost_every_seed(scored: list[Config]) -> list[str]:
    """Tied configs that were behind the best in every seed: "tied" must not read as "as
    good" when each run says otherwise (with the same seeds: seed by seed; else every run
    behind every one of the best's)."""
    best = scored[0]
    mine = dict(best.values())
    lines = []
    for c in scored[1:]:
        theirs = dict(c.values())
        if not c.tied_with_best or len(theirs) < 2:
            continue
        behind = best.task.better  # better(a, b): a beats b
        if set(theirs) == set(mine):
            lost = all(behind(mine[seed], theirs[seed]) for seed in theirs)
            how = f"behind the best in each of its {len(theirs)} seeds, seed by seed"
        else:
            lost = all(behind(m, t) for m in mine.values() for t in theirs.values())
            how = f"behind every run of the best in all {len(theirs)} of its runs"
        if lost:
            lines.append(
                f"{c.label}: {how}, yet not significantly worse with {len(theirs)} seeds "
                f"(p={c.p_vs_best:.3f}): tied means not shown worse, not shown as good. "
                "Add seeds to settle it."
            )
    return lines


def _is(k: int) -> str:
    return "is" if k == 1 else "are"


def _noise(noise: Noise, select: str) -> str:
    text = (
        f"noise: best {select} varies between seeds of one config with std {noise.std:.4f} "
        f"(pooled over {_n(noise.configs, 'config')})"
    )
    if noise.paired and noise.test_std is not None:
        text += (
            f"; configs run with the same seeds are compared seed by seed, and those "
            f"differences vary with std {noise.test_std:.4f}"
        )
    return text + "."


def _power(noise: Noise, scored: list[Config]) -> str:
    how = "paired by seed" if noise.paired else "Welch"
    text = (
        f"power: with {noise.n} seeds per config, a true difference of "
        f"{noise.detectable:.4f} or more is found significant 4 times in 5 (80% power at "
        f"p < 0.05, {how}); a smaller one mostly goes unseen, and so does a larger one 1 time "
        "in 5."
    )
    if noise.gap is None:
        return text
    runner = scored[1]
    text += f" The runner-up ({runner.label}) is {noise.gap:.4f} behind"
    if not runner.tied_with_best:
        return text + ", and this sweep already tells them apart."
    if noise.gap == 0:
        return text + ": the same mean, so no number of seeds would separate the two."
    if noise.detectable is not None and noise.gap >= noise.detectable:
        return text + (
            ": as large as that, yet not significant in this draw - the 1 time in 5. Add "
            "seeds to settle it."
        )
    if noise.seeds_for_gap is None:
        return text + ": more than 10,000 seeds per config would be needed to detect that."
    return text + f": about {noise.seeds_for_gap} seeds per config would detect that."


def _stopped_early(ranked: list[Config]) -> list[str]:
    """Configs whose runs stopped before their schedule ended (trainer.early_stop): their
    schedule was not run to its end, so they compare as schedules cut short."""
    lines = []
    for c in ranked:
        stopped = [j for j in c.ok if j.status == "stopped_early"]
        if stopped:
            epochs = ", ".join(str(len(j.metrics)) for j in stopped)
            lines.append(
                f"{c.label}: {len(stopped)} of {len(c.ok)} run(s) stopped early (trainer."
                f"early_stop, after epoch {epochs}): its schedule did not run to its end."
            )
    return lines


def _not_ok(ranked: list[Config]) -> list[str]:
    """The jobs the statistics leave out: failed ones, and any still running (a report taken
    during the sweep)."""
    lines = []
    bad = [(c, j) for c in ranked for j in c.failed]
    if bad:
        listed = "; ".join(f"job {j.name} ({c.label}{_seed(j)}): {j.status}" for c, j in bad)
        lines.append(f"not ok: {_n(len(bad), 'job')} left out of the statistics - {listed}.")
    running = [(c, j) for c in ranked for j in c.jobs if j.status in NOT_ENDED]
    if running:
        listed = "; ".join(f"job {j.name} ({c.label}{_seed(j)})" for c, j in running)
        lines.append(f"running: {_n(len(running), 'job')} not in the statistics yet - {listed}.")
    return lines


def _seed(job: Job) -> str:
    seed = next((v for k, v in job.overrides.items() if is_seed(k)), job.seed)
    return "" if seed is None else f", seed {seed}"


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def seeded_commands(ranked: list[Config], jobs: list[Job], axes: list[str]) -> list[str]:
    """The sweep again with seeds 1-3: one command for a grid (every combination of the
    varying values ran), else one per best config (up to 3), e.g. for Optuna's trials."""
    shared = [f"{k}={v}" for k, v in _common(jobs).items()]
    keys = [k for k in axes if not is_seed(k)]
    values = {
        k: list(dict.fromkeys(j.overrides[k] for j in jobs if k in j.overrides)) for k in keys
    }
    seeds = f"{SEED}={SEEDS_TO_ADD}"
    if math.prod(len(v) for v in values.values()) == len(ranked):
        grid = [f"{k}={','.join(v)}" for k, v in values.items()]
        return [shlex.join(["lrrun", "-m", *shared, *grid, seeds])]
    top = [c for c in ranked if c.mean is not None][:3]
    return [
        shlex.join(["lrrun", "-m", *shared, *(f"{k}={v}" for k, v in c.overrides.items()), seeds])
        for c in top
    ]


def _common(jobs: list[Job]) -> dict[str, str]:
    """Overrides every job has with the same value, the seed left out."""
    first = jobs[0].overrides if jobs else {}
    return {
        k: v
        for k, v in first.items()
        if not is_seed(k) and all(j.overrides.get(k) == v for j in jobs)
    }


def print_verdict(lines: list[str]) -> None:
    from rich.text import Text

    console = wide_console()
    for line in lines:
        label, colon, rest = line.partition(": ")
        if line.startswith(" ") or not colon:  # a command to copy, or a plain sentence
            console.print(line, markup=False, soft_wrap=True)
        else:
            console.print(Text.assemble((f"{label}: ", "bold"), rest))
