"""Pictures of one run, a schedule and an LR range test: headless matplotlib (Agg), imported
only when a picture is drawn. A sweep's pictures: lrrun.sweep.plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lrrun.config.task import TaskSpec, spec

LOSS_WORDS = {
    "classification": "cross-entropy loss",
    "regression": "mean squared error",
    "language_model": "cross-entropy per token (nats)",
}
METRIC_WORDS = {"acc": "accuracy", "r2": "R^2", "ppl": "perplexity"}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def log_scale(values: Sequence[float]) -> bool:
    """Learning rates spanning more than 20x read better on a log axis (plots, sparklines)."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return bool(positive) and max(positive) / min(positive) > 20


def lr_axis(ax: Any, lrs: Sequence[float]) -> None:
    log = log_scale(lrs)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel("learning rate" + (" (log scale)" if log else ""))


def integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _epoch_axis(ax: Any, steps_per_epoch: int) -> None:
    """A secondary x axis in epochs above the optimizer-step axis."""
    if steps_per_epoch > 1:
        top = ax.secondary_xaxis(
            "top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch)
        )
        top.set_xlabel("epoch")
        top.xaxis.set_major_locator(integer_locator())


def plot_lr(
    traces: dict[str, tuple[Sequence[int], Sequence[float]]],
    steps_per_epoch: int,
    path: Path,
    title: str,
    legend: str = "job",
) -> Path:
    """lr per optimizer step, one line per trace (a legend titled ``legend`` when there
    are several)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for label, (steps, lrs) in traces.items():
        ax.plot(steps, lrs, label=label, linewidth=1.6, drawstyle="steps-post")
    lr_axis(ax, [v for _, lrs in traces.values() for v in lrs])
    ax.set_xlabel("optimizer step")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    _epoch_axis(ax, steps_per_epoch)
    if len(traces) > 1:
        ax.legend(fontsize=8, loc="best", title=legend)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_run(
    metrics: list[dict[str, float]],
    lrs_by_group: dict[str, Sequence[tuple[int, float]]],
    steps_per_epoch: int,
    path: Path,
    title: str,
    events: Sequence[tuple[int, str]] = (),
    momentum: Sequence[tuple[int, float]] = (),
    task: TaskSpec | None = None,
) -> Path:
    """curves.png: lr per step of each param group (schedule events marked; the cycled
    momentum on a second axis), loss per epoch, and the task's other metric per epoch:
    accuracy (classification), R^2 (regression) or perplexity (a language model); the
    epoch the run chose marked where its selection metric is drawn."""
    task = task or spec(None)
    plt = pyplot()
    # A fixed layout: constrained layout would double the drawing time, and this runs at the
    # end of every run of a sweep.
    fig, (lr_ax, loss_ax, acc_ax) = plt.subplots(1, 3, figsize=(15, 4.6))
    fig.subplots_adjust(
        left=0.055, right=0.99, top=0.80, bottom=0.12, wspace=0.34 if momentum else 0.24
    )
    several = len(lrs_by_group) > 1
    colours = ["tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    for i, (name, trace) in enumerate(lrs_by_group.items()):
        lr_ax.plot(
            [s for s, _ in trace],
            [lr for _, lr in trace],
            linewidth=1.5,
            drawstyle="steps-post",
            color=colours[i % len(colours)],
            label=f"lr {name}" if several else "lr",
        )
    lr_axis(lr_ax, [lr for trace in lrs_by_group.values() for _, lr in trace])
    lr_ax.set_xlabel("optimizer step")
    lr_ax.set_title("learning rate (per step)" + (" and momentum" if momentum else ""))
    _epoch_axis(lr_ax, steps_per_epoch)
    _mark_events(lr_ax, events)
    if momentum:
        m_ax = lr_ax.twinx()
        m_ax.plot(
            [s for s, _ in momentum],
            [m for _, m in momentum],
            color="tab:orange",
            linewidth=1.2,
            linestyle="--",
            drawstyle="steps-post",
            label="momentum",
        )
        m_ax.set_ylabel("momentum (or beta1)", color="tab:orange")
        m_ax.tick_params(axis="y", colors="tab:orange")
        handles = lr_ax.get_legend_handles_labels()[0] + m_ax.get_legend_handles_labels()[0]
        lr_ax.legend(handles=handles, fontsize=8, loc="lower left")
    elif several:
        lr_ax.legend(fontsize=8, loc="best", title="param group")
    epochs = [r["epoch"] for r in metrics]
    other = "acc" if task.name == "classification" else task.other.removeprefix("val_")
    panels = ((loss_ax, "loss", LOSS_WORDS[task.name]), (acc_ax, other, METRIC_WORDS[other]))
    for ax, key, label in panels:
        scale = 100 if key == "acc" else 1
        if f"train_{key}" in (metrics[0] if metrics else {}):
            ax.plot(epochs, [r[f"train_{key}"] * scale for r in metrics], "o-", label="train")
        ax.plot(epochs, [r[f"val_{key}"] * scale for r in metrics], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(integer_locator())
        ax.set_ylabel(label + (" (%)" if key == "acc" else ""))
        ax.set_title(label + " per epoch")
        ax.legend()
    best = task.best(metrics)
    if best is not None:
        scale = 100 if task.select == "val_acc" else 1
        value = best[task.select] * scale
        (acc_ax if task.select == "val_acc" else loss_ax).annotate(
            (f"best {value:.2f}%" if scale == 100 else f"best {value:.4f}")
            + f" (epoch {best['epoch']})",
            (best["epoch"], value),
            textcoords="offset points",
            xytext=(0, -18),
            fontsize=9,
            ha="right" if best["epoch"] == epochs[-1] and len(epochs) > 1 else "center",
        )
    for ax in (lr_ax, loss_ax, acc_ax):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run_dir(path: Path) -> list[Path]:
    """curves.png of the run in ``path``, from what it wrote (none before its first epoch)."""
    from lrrun.logs.runs import load_job

    job = load_job(path)
    if not job.metrics:
        return []
    return [
        plot_run(
            metrics=job.metrics,
            lrs_by_group=job.group_lrs,
            steps_per_epoch=job.steps_per_epoch,
            path=path / "curves.png",
            title=str(path),
            events=job.events,
            momentum=job.momentum,
            task=job.task,
        )
    ]


def _mark_events(ax: Any, events: Sequence[tuple[int, str]]) -> None:
    """A dotted line at each event's step, labelled with the event (lrrun.schedule.events); labels
    only while there are few enough to read (a long cyclic run peaks hundreds of times)."""
    for step, name in events[:300]:
        ax.axvline(step, color="0.45", linestyle=":", linewidth=1)
        if len(events) > 30:
            continue
        ax.annotate(
            name,
            (step, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -4),
            textcoords="offset points",
            rotation=90,
            va="top",
            fontsize=7,
            color="0.3",
        )


def plot_find_lr(rows: list[dict[str, float]], tips: dict[str, float], path: Path) -> Path:
    """find_lr.png: loss vs lr (log x), the suggestions marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    lrs = [r["lr"] for r in rows]
    ax.plot(lrs, [r["loss"] for r in rows], color="0.75", linewidth=1, label="loss (per step)")
    ax.plot(
        lrs,
        [r["smoothed_loss"] for r in rows],
        color="tab:blue",
        linewidth=2,
        label="smoothed loss",
    )
    ax.set_xscale("log")
    finite = [r["smoothed_loss"] for r in rows if math.isfinite(r["smoothed_loss"])]
    raw = [r["loss"] for r in rows if math.isfinite(r["loss"])]
    if finite:
        lo = min(finite + raw)
        ax.set_ylim(lo - 0.05 * abs(lo), max(finite[0], min(finite)) * 1.6 + 0.05)
    for (name, lr), colour in zip(
        [(k, v) for k, v in tips.items() if k != "min_loss_lr"],
        ("tab:red", "tab:green"),
        strict=True,
    ):
        ax.axvline(lr, color=colour, linestyle="--", label=f"{name}: {lr:.2e}")
    ax.axvline(
        tips["min_loss_lr"],
        color="0.4",
        linestyle=":",
        label=f"min loss: {tips['min_loss_lr']:.2e}",
    )
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training cross-entropy loss")
    ax.set_title(f"LR range test: {len(rows)} steps")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
