"""A sweep's pictures, per config (lrrun.sweep.replicates), drawn so the seed noise shows.

- sweep_curves.png: the mean selection metric (val_acc; val_loss for regression and language
  models) per epoch of each config with a band from the lowest to
  the highest seed, and each config's lr per step (the same for every seed, so drawn once,
  unless a schedule reacts to metrics and the seeds' lr differ); configs significantly worse
  than the best are faded.
- heatmap.png: the mean best of that metric per cell with its +- 95% interval, the cells tied with
  the best outlined.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from lrrun.logs.plots import integer_locator, lr_axis, pyplot
from lrrun.sweep.replicates import Config, job_ok


def _curve_jobs(config: Config) -> list[Any]:
    """The jobs behind a config's curves: its ok jobs (as in its statistics); a config with
    none shows what its other jobs logged."""
    return config.ok or [j for j in config.jobs if j.metrics]


def _labels(ranked: list[Config]) -> dict[int, str]:
    """Each config's overrides with short keys (gamma=0.3) where the short names are unique."""
    keys = list(dict.fromkeys(k for c in ranked for k in c.overrides))
    short = [k.rsplit(".", 1)[-1] for k in keys]
    names = dict(zip(keys, short if len(set(short)) == len(short) else keys, strict=True))
    return {
        id(c): " ".join(f"{names[k]}={v}" for k, v in c.overrides.items()) or c.label
        for c in ranked
    }


def _replicated(ranked: list[Config]) -> bool:
    return any(c.stats[c.score].n >= 2 for c in ranked)


def _shown(ranked: list[Config]) -> tuple[str, float, str]:
    """(metric, scale, words) of the sweep's selection metric as the pictures show it:
    accuracy in percent; a loss as it is."""
    select = ranked[0].task.select if ranked else "val_acc"
    if select == "val_acc":
        return select, 100.0, "validation accuracy (%)"
    return select, 1.0, f"validation {select.removeprefix('val_')}"


def plot_sweep(ranked: list[Config], path: Path, title: str) -> Path:
    """sweep_curves.png: the best selection metric per config (every seed a dot, the mean +-
    95% CI), its mean per epoch with a band over seeds, and the lr per step; one colour per config,
    best first, configs significantly worse than the best faded."""
    plt = pyplot()
    shown = [c for c in ranked if _curve_jobs(c)]
    fig, (rank_ax, acc_ax, lr_ax) = plt.subplots(
        1,
        3,
        figsize=(18, max(5.5, 0.36 * len(shown) + 2)),
        layout="constrained",
        gridspec_kw={"width_ratios": [1.1, 1, 1]},
    )
    many = len(shown) > 10
    cmap = plt.get_cmap("viridis" if many else "tab10")
    palette = [cmap(i / max(len(shown) - 1, 1) if many else i) for i in range(len(shown))]
    replicated, labels, all_lrs = _replicated(ranked), _labels(ranked), []
    metric, scale, words = _shown(ranked)
    bands = len(shown) <= 4  # more overlapping bands are unreadable: then only the best's
    for i, (c, colour) in enumerate(zip(shown, palette, strict=True)):
        worse = c.mean is not None and not c.tied_with_best
        style = {
            "color": colour,
            "alpha": 0.45 if worse else 1.0,
            "linewidth": 2.6 if c.rank == 1 else (1.0 if worse else 1.7),
        }
        _rank_row(rank_ax, i, c, colour, worse, scale)
        jobs = _curve_jobs(c)
        epochs = sorted({r["epoch"] for j in jobs for r in j.metrics})
        per_epoch = [
            [r[metric] * scale for j in jobs for r in j.metrics if r["epoch"] == e] for e in epochs
        ]
        mean = [math.fsum(v) / len(v) for v in per_epoch]
        ok = any(job_ok(j) for j in jobs)
        acc_ax.plot(epochs, mean, "o-" if ok else "x--", markersize=3, **style)
        if len(jobs) > 1 and (bands or c.rank == 1):
            acc_ax.fill_between(
                epochs,
                [min(v) for v in per_epoch],
                [max(v) for v in per_epoch],
                color=colour,
                alpha=0.1 if worse else 0.2,
                linewidth=0,
            )
        traces = {tuple(j.lrs) for j in jobs if j.lrs}
        for k, trace in enumerate(sorted(traces)):  # one, unless the lr depends on the metrics
            steps, lrs = zip(*trace, strict=True)
            all_lrs += lrs
            lr_ax.plot(
                steps,
                lrs,
                drawstyle="steps-post",
                **(style | ({"alpha": 0.35, "linewidth": 1.0} if k else {})),
            )
    rank_ax.set_yticks(
        range(len(shown)), [_row_label(c, labels[id(c)], scale) for c in shown], fontsize=8
    )
    for tick, c, colour in zip(rank_ax.get_yticklabels(), shown, palette, strict=True):
        tick.set_color(colour)
        tick.set_fontweight("bold" if c.rank == 1 else "normal")
    rank_ax.set_ylim(len(shown) - 0.4, -0.6)  # best on top
    rank_ax.set_xlabel(f"best {words}")
    paired = any(c.test == "paired" for c in ranked)
    rank_ax.set_title(
        f"best {metric} per config: dots = seeds, bar = mean ± 95% CI\n"
        "faded: worse than ★ (p < 0.05, Holm)"
        + ("; tested per seed, so bars may overlap" if paired else "")
        if replicated
        else f"best {metric} per config (one seed each:\nthe order may be seed noise)",
        fontsize=10,
    )
    acc_ax.set_xlabel("epoch")
    acc_ax.xaxis.set_major_locator(integer_locator())
    acc_ax.set_ylabel(words)
    acc_ax.set_title(
        (
            f"mean {metric} per epoch; band: lowest to highest seed"
            + ("" if bands else "\n(band of the best config only)")
        )
        if replicated
        else f"{words} per epoch",
        fontsize=10,
    )
    lr_axis(lr_ax, all_lrs)
    lr_ax.set_xlabel("optimizer step")
    lr_ax.set_title("learning rate per step (the same for every seed)", fontsize=10)
    for ax in (rank_ax, acc_ax, lr_ax):
        ax.grid(True, alpha=0.3)
    seeds = sorted({len(c.jobs) for c in ranked})
    per = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    heading = f"{len(ranked)} configs x {per} seed{'' if seeds == [1] else 's'}: {title}"
    fig.suptitle("\n".join(textwrap.wrap(heading, 190)))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _rank_row(ax: Any, y: int, c: Config, colour: Any, worse: bool, scale: float) -> None:
    """One config's row: each ok seed a dot, the mean with its 95% CI, the numbers as text."""
    values = [v * scale for _, v in c.values()]
    alpha = 0.45 if worse else 1.0
    ax.scatter(values, [y] * len(values), s=14, color=colour, alpha=0.5 * alpha, zorder=2)
    s = c.stats[c.score]
    if s.mean is None:
        ax.text(0.02, y, "no ok job", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
        return
    ci = s.ci95 * scale if s.ci95 is not None else None
    ax.errorbar(
        s.mean * scale,
        y,
        xerr=ci,
        fmt="D" if c.rank == 1 else "o",
        color=colour,
        alpha=alpha,
        markersize=6,
        capsize=3,
        linewidth=1.6,
        zorder=3,
    )


def _row_label(c: Config, label: str, scale: float) -> str:
    """The config, and under it its numbers: mean +- 95% CI (n), tied or worse."""
    s = c.stats[c.score]
    if s.mean is None:
        return f"{label}\nno ok job"
    digits = 2 if scale == 100 else 4
    text = ("★ " if c.rank == 1 else "") + f"{s.mean * scale:.{digits}f}"
    text += (f" ± {s.ci95 * scale:.{digits}f}" if s.ci95 is not None else "") + f" (n={s.n})"
    return f"{label}\n{text}" + (
        "" if c.rank == 1 or s.n < 2 else ", tied" if c.tied_with_best else ", worse"
    )


def plot_heatmap(
    x_key: str, y_key: str, cells: dict[tuple[float, float], Config], path: Path
) -> Path:
    """heatmap.png: the mean best selection metric (val_acc, or val_loss) over a 2-D grid of
    numeric overrides (blank: no ok job), +- its 95% interval, the cells tied with the best
    outlined."""
    import numpy as np
    from matplotlib.patches import Rectangle

    plt = pyplot()
    metric, scale, words = _shown(list(cells.values()))
    digits = 2 if scale == 100 else 4
    xs = sorted({x for x, _ in cells})
    ys = sorted({y for _, y in cells})
    grid = np.full((len(ys), len(xs)), np.nan)
    for (x, y), c in cells.items():
        if c.mean is not None:
            grid[ys.index(y), xs.index(x)] = c.mean * scale
    replicated = _replicated(list(cells.values()))
    fig, ax = plt.subplots(figsize=(1.5 * len(xs) + 3.2, 0.9 * len(ys) + 2.4), layout="constrained")
    cmap = "viridis" if scale == 100 else "viridis_r"  # the better end bright either way
    image = ax.imshow(grid, cmap=cmap, origin="lower", aspect="auto")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    middle = np.nanmean(grid) if np.isfinite(grid).any() else 0.0
    for (x, y), c in cells.items():
        i, j = ys.index(y), xs.index(x)
        if c.mean is None:
            ax.text(j, i, "no ok job", ha="center", va="center", fontsize=8, color="0.3")
            continue
        s = c.stats[c.score]
        text = ("★ " if c.rank == 1 else "") + f"{s.mean * scale:.{digits}f}"
        text += f"\n± {s.ci95 * scale:.{digits}f}" if s.ci95 is not None else ""
        bright = s.mean * scale > middle if scale == 100 else s.mean * scale < middle
        ax.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=9,
            color="black" if bright else "white",
            fontweight="bold" if c.rank == 1 else "normal",
        )
        if replicated and c.tied_with_best:
            ax.add_patch(
                Rectangle(
                    (j - 0.47, i - 0.47), 0.94, 0.94, fill=False, edgecolor="#e8175d", linewidth=2.5
                )
            )
    n = sorted({c.stats[c.score].n for c in cells.values() if c.mean is not None})
    seeds = f"n = {n[0]}" if len(n) == 1 else f"n = {n[0]}-{n[-1]}" if n else "n = 0"
    label = f"mean best {words}" if replicated else f"best {words}"
    fig.colorbar(image, ax=ax, label=label)
    if replicated:
        ax.set_title(
            f"mean best {metric} ± 95% CI over seeds ({seeds}) by {x_key} x {y_key}\n"
            "outlined: tied with ★ (not significantly worse, p > 0.05, Holm)",
            fontsize=10,
        )
    else:
        ax.set_title(
            f"best {metric} by {x_key} x {y_key}\none seed per config: "
            "differences may be seed noise (add trainer.seed=range(1,4))",
            fontsize=10,
        )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
