"""A sweep's ranked table on the console: one row per config (mean +- 95% CI over its seeds,
n, p vs the best, tied or worse) when seeds are replicated, one row per job otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrrun.config.run_dirs import OK_STATUSES
from lrrun.config.task import TaskSpec
from lrrun.sweep.replicates import Config, metrics


def wide_console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 140)  # logs: never squash the numbers
    return console


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]  # scheduler.gamma -> gamma


# --- one job per config: the per-job table --------------------------------------------------
_HEADERS = {"best_epoch": "at epoch", "final_lr": "final lr", "wall_time_s": "time (s)"}
_METRIC = ("best_", "final_val", "test_")  # summary columns holding a metric


def _header(column: str) -> str:
    """best_val_acc -> "best val_acc"; the metric columns read as words."""
    if column in _HEADERS:
        return _HEADERS[column]
    kind, _, metric = column.partition("_")
    return f"{kind} {metric}" if kind in ("best", "final") and metric else _short(column)


def print_jobs(rows: list[dict[str, Any]], sweep_dir: Path, task: TaskSpec) -> None:
    """summary.csv ranked by the task's best val metric, the winner starred; failed jobs in
    red, last."""
    from rich.table import Table

    score, sign = f"best_{task.select}", -1 if task.higher else 1
    ranked = sorted(rows, key=lambda r: sign * r[score] if r[score] != "" else float("inf"))
    table = Table(title=f"{sweep_dir}: {len(rows)} job(s), best {task.select} first")
    columns = [c for c in rows[0] if c != "epochs"] if rows else []
    for c in columns:
        table.add_column(
            _header(c), no_wrap=True, justify="left" if c in ("job", "status") else "right"
        )
    for i, r in enumerate(ranked):
        cells = [_cell(c, r[c]) for c in columns]
        winner = i == 0 and r[score] != ""
        if winner:
            cells[0] = f"★ {cells[0]}"
        failed = r["status"] not in (*OK_STATUSES, "running")
        table.add_row(*cells, style="bold green" if winner else ("red" if failed else None))
    wide_console().print(table)


def _cell(column: str, value: Any) -> str:
    if value == "" or value is None:
        return "-"
    if isinstance(value, str) and len(value) > 8:  # an override such as 0.0289770526671783
        try:
            return f"{float(value):.4g}"
        except ValueError:
            return value
    if column.startswith(_METRIC) and column != "best_epoch":
        return f"{value:.4f}"
    if column == "final_lr":
        return f"{value:.3e}"
    if column == "wall_time_s":
        return f"{value:.1f}"
    return str(value)


# --- seeds as replicates: the per-config table ----------------------------------------------
def print_configs(ranked: list[Config], axes: list[str], sweep_dir: Path) -> None:
    """configs.csv as a table: mean +- ci95 over seeds, n, p vs best, tied marked."""
    from rich.table import Table

    jobs = sum(len(c.jobs) for c in ranked)
    select = ranked[0].task.select if ranked else "val_acc"
    table = Table(
        title=f"{sweep_dir}: {len(ranked)} configs, {jobs} jobs; best mean {select} first",
        caption="+- : 95% t-interval of the mean over seeds; p: vs the best, Holm-adjusted "
        "(paired by seed where both have the same seeds, else Welch)",
    )
    table.add_column("#", justify="right")
    for k in axes:
        table.add_column(_short(k), justify="right", no_wrap=True)
    summarised = metrics(ranked[0].task) if ranked else ()
    for name in (*map(_header, summarised), "n", "failed", "vs best", "p vs best", "verdict"):
        table.add_column(name, justify="left" if name == "verdict" else "right", no_wrap=True)
    for c in ranked:
        s = c.stats
        best, final, other = (s[m] for m in summarised)
        verdict = "★ best" if c.rank == 1 else "tied" if c.tied_with_best else "worse"
        verdict = verdict if c.mean is not None else "no ok job"
        table.add_row(
            str(c.rank),
            *(_cell(k, c.overrides.get(k, "")) for k in axes),
            pm(best.mean, best.ci95),
            pm(final.mean, final.ci95),
            pm(other.mean, None),
            str(len(c.ok)),
            str(len(c.failed)) if c.failed else "",
            "" if c.diff_vs_best is None or c.rank == 1 else f"{c.diff_vs_best:+.4f}",
            _p(c.p_vs_best) + (f" {c.test}" if c.test == "welch" else ""),
            verdict,
            style="bold green"
            if c.rank == 1 and c.mean is not None
            else "green"
            if c.tied_with_best
            else "red"
            if c.mean is None
            else None,
        )
    wide_console().print(table)


def pm(mean: float | None, ci95: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" + (f" +- {ci95:.4f}" if ci95 is not None else "")


def _p(p: float | None) -> str:
    return "" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}")
