"""``lrrun-find-lr``: the LR range test (Smith 2017, "Cyclical Learning Rates").

From a freshly built model and optimizer (the configured ones, with the configured recipe:
accumulation, clipping, loss, mixing), the lr grows from ``min_lr`` to ``max_lr`` over
``steps`` optimizer steps (of trainer.accumulate batches each), geometrically (``mode=exp``)
or linearly (with optimizer.param_groups: group 0's lr; the others keep their ratio to it).
The recorded lr is read from the optimizer before each step, as in training. The loss is
smoothed by a bias-corrected EMA; the test stops early once it exceeds ``diverge`` x its
minimum (or is not finite).

Suggestions: ``steepest`` (where the smoothed loss falls fastest per log-lr), ``min_loss/10``
(the lr of the lowest smoothed loss, divided by 10); for one_cycle_lr max_lr = min_loss/10,
and for cyclic_lr max_lr = min_loss/10, base_lr = max_lr/4 (Smith's rule of thumb).
Nothing is saved but find_lr.csv and find_lr.png in its own run dir.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lrrun.config.checks import check_known, check_node
from lrrun.config.location import config_dir
from lrrun.config.rules import BOOL, INT_GE1, POSITIVE, choice
from lrrun.config.settings import Settings, read
from lrrun.errors import ConfigError, LrrunError
from lrrun.files import write_rows

FIND_LR_RULES = {
    "min_lr": POSITIVE,
    "max_lr": POSITIVE,
    "steps": INT_GE1,
    "mode": choice("exp", "linear"),
    "smooth": (lambda v: isinstance(v, int | float) and 0 <= v < 1, "a number in [0, 1)"),
    "diverge": (lambda v: isinstance(v, int | float) and v > 1, "a number > 1"),
    "plot": BOOL,
}


def lr_at(i: int, n: int, lo: float, hi: float, mode: str) -> float:
    """The i-th (0-based) of n lrs from lo to hi."""
    if n == 1:
        return lo
    t = i / (n - 1)
    return lo * (hi / lo) ** t if mode == "exp" else lo + (hi - lo) * t


def options(settings: Settings) -> dict[str, Any]:
    """The checked find_lr node."""
    opts = settings.resolved["find_lr"]
    check_known("find_lr", opts, FIND_LR_RULES)
    check_node("find_lr", opts, FIND_LR_RULES)
    if opts["min_lr"] >= opts["max_lr"]:
        raise ConfigError(
            f"find_lr.min_lr={opts['min_lr']} must be below find_lr.max_lr={opts['max_lr']}."
        )
    return opts


def range_test(settings: Settings, opts: dict[str, Any]) -> list[dict[str, float]]:
    """Rows of step, lr, loss, smoothed loss, until max_lr or divergence."""
    import torch

    from lrrun.schedule.build import current_lrs
    from lrrun.train.allocator import keep_freed_memory
    from lrrun.train.assembly import assemble
    from lrrun.train.devices import resolve_device
    from lrrun.train.loop import optimizer_step, step_group
    from lrrun.train.parts import precision_context
    from lrrun.train.recipe import groups, set_mode, used_lrs

    trainer = settings.trainer
    torch.manual_seed(trainer.seed)
    device = resolve_device(trainer.device)
    keep_freed_memory(device.type)
    autocast = precision_context(trainer.precision, device)
    parts = assemble(settings, device)  # as training starts: fresh model, same data path
    model, optimizer, batches, recipe = parts.model, parts.optimizer, parts.train, parts.recipe

    def endless():
        epoch = 0
        while True:
            epoch += 1
            batches.set_epoch(epoch)
            yield from batches

    rows: list[dict[str, float]] = []
    avg, best = 0.0, math.inf
    model.train()
    set_mode(optimizer, train=True)
    # optimizer.param_groups: the test sweeps group 0's lr; the others keep their ratio to it
    ratios = [g["lr"] / optimizer.param_groups[0]["lr"] for g in optimizer.param_groups]
    # one step per group of trainer.accumulate batches, made as training makes it
    steps = groups(endless(), recipe.accumulate)
    for i, group in zip(range(opts["steps"]), steps, strict=False):
        lr = lr_at(i, opts["steps"], opts["min_lr"], opts["max_lr"], opts["mode"])
        for param_group, ratio in zip(optimizer.param_groups, ratios, strict=True):
            param_group["lr"] = lr * ratio
        read = current_lrs(optimizer)  # what this step uses, read as training reads it
        loss, _ = step_group(model, group, optimizer, recipe, autocast, epoch=1)
        optimizer_step(optimizer, recipe.scaler)  # fp16: the gradient scaler's step
        used = used_lrs(optimizer, read)[0]
        value = loss.item()  # a range test stops on the loss: it must read it every step
        avg = opts["smooth"] * avg + (1 - opts["smooth"]) * value
        smoothed = avg / (1 - opts["smooth"] ** (i + 1))
        rows.append({"step": i + 1, "lr": used, "loss": value, "smoothed_loss": smoothed})
        if not math.isfinite(smoothed) or (i > 0 and smoothed > opts["diverge"] * best):
            break
        best = min(best, smoothed)
    return rows


def suggest(rows: list[dict[str, float]]) -> dict[str, float]:
    """steepest and min_loss/10 (see the module docstring)."""
    finite = [r for r in rows if math.isfinite(r["smoothed_loss"])]
    if len(finite) < 3:
        raise ConfigError(
            "find_lr: the loss diverged within 3 steps. Lower find_lr.min_lr or find_lr.max_lr."
        )
    low = min(range(len(finite)), key=lambda i: finite[i]["smoothed_loss"])
    head = finite[: low + 1] if low >= 2 else finite
    slopes = [
        (head[i + 1]["smoothed_loss"] - head[i]["smoothed_loss"])
        / (math.log(head[i + 1]["lr"]) - math.log(head[i]["lr"]))
        for i in range(len(head) - 1)
    ]
    steep = min(range(len(slopes)), key=slopes.__getitem__)
    min_loss_lr = finite[low]["lr"]
    return {
        "steepest": head[steep]["lr"],
        "min_loss/10": min_loss_lr / 10,
        "min_loss_lr": min_loss_lr,
    }


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="find_lr")
def _hydra_main(cfg: DictConfig) -> float | None:

    from lrrun.logs.console import print_items
    from lrrun.logs.csv_log import write_status
    from lrrun.tools.common import config_flags, fail_job

    out = Path(HydraConfig.get().runtime.output_dir)
    try:
        settings = read(cfg, HydraConfig.get().runtime.choices)
        opts = options(settings)
        rows = range_test(settings, opts)
        tips = suggest(rows)
    except LrrunError as exc:
        fail_job(exc, out)
        return None
    write_rows(out / "find_lr.csv", list(rows[0]), rows)
    if opts["plot"]:
        from lrrun.logs.plots import plot_find_lr

        plot_find_lr(rows, tips, out / "find_lr.png")
    write_status(out, "ok", step=len(rows))
    stopped = len(rows) < opts["steps"]
    base = (config_flags(sys.argv[1:]), list(HydraConfig.get().overrides.task))
    lr0, lr1 = tips["min_loss/10"], tips["min_loss/10"] / 4
    items = {
        "range": f"{rows[0]['lr']:.2e} -> {rows[-1]['lr']:.2e} in {len(rows)} steps"
        + (" (stopped: the loss diverged)" if stopped else ""),
        "min loss": f"{min(r['smoothed_loss'] for r in rows):.4f} (smoothed) at lr {tips['min_loss_lr']:.2e}",
        "steepest": f"lr {tips['steepest']:.2e}   "
        + train_command(*base, f"optimizer.lr={tips['steepest']:.2e}"),
        "min_loss/10": f"lr {lr0:.2e}   " + train_command(*base, f"optimizer.lr={lr0:.2e}"),
        "one_cycle_lr": train_command(
            *base, "scheduler=one_cycle_lr", f"scheduler.max_lr={lr0:.2e}"
        ),
        "cyclic_lr": train_command(
            *base,
            "scheduler=cyclic_lr",
            f"scheduler.base_lr={lr1:.2e}",
            f"scheduler.max_lr={lr0:.2e}",
        ),
        "wrote": f"{out}/find_lr.csv" + (", find_lr.png" if opts["plot"] else ""),
    }
    print_items(items)
    return tips["steepest"]


def train_command(flags: list[str], overrides: list[str], *given: str) -> str:
    """``lrrun`` with the user's config flags and overrides (their model, data, ...) and
    ``given``, to paste: find_lr.* dropped, and what ``given`` sets replaced (a new
    scheduler drops the old one's keys)."""
    import shlex

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    setting = {key(g) for g in given}
    new_scheduler = "scheduler" in setting
    kept = [
        o
        for o in overrides
        if key(o) not in setting
        and not key(o).startswith("find_lr")
        and not (new_scheduler and key(o).startswith("scheduler"))
    ]
    return shlex.join(["lrrun", *flags, *kept, *given])


def main() -> None:
    from lrrun.tools.common import precheck

    precheck(sys.argv[1:], extra_roots=("find_lr",))
    _hydra_main()
