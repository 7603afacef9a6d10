"""The one entry from a composed Hydra config to the values a run uses: ``read(cfg)`` checks
every group once and returns ``Settings``, plain typed values (no DictConfig). Everything
below the entry points (the runner, lrrun-preview, lrrun-find-lr) takes these and never
resolves or checks the config again.

Checks run before any data is loaded or torch is imported, so a typo fails in a second with
a message that names the key, the value and what is allowed. What needs the built objects
is checked where they are built: param-group patterns against the model (lrrun.train.parts),
derived scheduler lengths and torch's own ValueErrors (lrrun.schedule.build).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrrun.config import param_groups
from lrrun.config.checks import check_known, check_node
from lrrun.config.dataset import DataSpec, read_dataset
from lrrun.config.rules import (
    LOSS_RULES,
    MIX_RULES,
    MODEL_RULES,
    OPTIMIZER_RULES,
    SCALING_RULES,
)
from lrrun.config.scaling import LrScaling, global_batch
from lrrun.config.scheduler import check_scheduler, fights_schedule_free
from lrrun.config.task import TaskSpec, check_fit, higher_is_better, read_task
from lrrun.config.trainer import EARLY_STOP_RULES, EMA_RULES, TrainerSettings
from lrrun.config.trainer import RULES as TRAINER_RULES
from lrrun.errors import ConfigError

TRACKERS = ("tensorboard", "mlflow")
TRACKER_INSTALL = {
    "tensorboard": "pip install 'lrrun[tensorboard]'",
    "mlflow": "pip install 'lrrun[mlflow]'",
}
TRACKER_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # what must be importable


@dataclass(frozen=True)
class Settings:
    """A checked config as plain values. ``optimizer`` and ``scheduler`` are the resolved
    ``_partial_`` nodes (lrrun.schedule.build and lrrun.train.parts finish them with the
    run-time arguments); ``param_groups`` are optimizer.param_groups, checked, and left out
    of ``optimizer``."""

    trainer: TrainerSettings
    task: TaskSpec  # what a batch holds, what is measured, what selects (lrrun.config.task)
    dataset: DataSpec
    model: dict[str, Any]
    optimizer: dict[str, Any]
    param_groups: list[dict[str, Any]]
    scheduler: dict[str, Any]
    loss: dict[str, Any]  # the training loss node (conf/loss)
    mix: dict[str, Any]  # MixUp / CutMix node ({} for none; conf/mix)
    resolved: dict[str, Any]  # the whole resolved config: the checkpoint's plan, the trackers
    no_decay: tuple[str, ...] = ()  # optimizer.no_decay's rules (param groups without decay)
    lr_scaling: LrScaling = field(default_factory=lambda: LrScaling())
    choices: dict[str, str] = field(default_factory=dict)  # Hydra's group choices (header)

    def resuming(self, run_dir: str) -> Settings:
        """These settings continuing the run saved in ``run_dir`` (a sweep's stopped job)."""
        return dataclasses.replace(self, trainer=dataclasses.replace(self.trainer, resume=run_dir))

    def scaled(self, processes: int) -> tuple[Settings, str]:
        """These settings with optimizer.lr_scaling applied for ``processes`` data-parallel
        processes (the whole schedule: lrrun.config.scaling), and the header's account of it
        ("" for none). ``plain`` stays the config as written (the checkpoint's plan)."""
        t = self.trainer
        nodes, said = self.lr_scaling.apply(
            (self.optimizer, self.param_groups, self.scheduler),
            global_batch(t.batch_size, processes, t.accumulate),
        )
        optimizer, groups, scheduler = nodes
        changed = dataclasses.replace(
            self, optimizer=optimizer, param_groups=groups, scheduler=scheduler
        )
        return (changed, said) if said else (self, "")


# optimizer keys lrrun reads itself; the rest of the node is the optimizer class's arguments
OWN_OPTIMIZER_KEYS = (param_groups.KEY, param_groups.NO_DECAY, "lr_scaling", "reference_batch")


def read(cfg: DictConfig, choices: dict[str, Any] | None = None) -> Settings:
    """Check every group of a composed config once; its plain values."""
    resolved = _resolve_roots(cfg)
    trainer = dict(resolved["trainer"])
    check_known("trainer", trainer, TRAINER_RULES)
    check_node("trainer", trainer, TRAINER_RULES)
    trainer["trackers"] = tuple(check_trackers(trainer.get("trackers")))
    task = read_task(resolved.get("task"))
    trainer["ema"] = _ema(trainer.get("ema") or {})
    select = trainer.get("select", "model")
    task = task.selecting(select, _averages(trainer["ema"], resolved["scheduler"], select))
    trainer["early_stop"] = _early_stop(trainer.get("early_stop") or {}, task)
    dataset = read_dataset(resolved["dataset"], task.name)
    check_node("model", resolved["model"], MODEL_RULES)
    if resolved["model"].get("_target_") in (None, "???"):
        raise ConfigError(
            "model._target_ is missing: name the class or function that builds your "
            "nn.Module, e.g. model=custom model._target_=mypkg.net.Net."
        )
    optimizer = dict(resolved["optimizer"])
    check_node("optimizer", optimizer, OPTIMIZER_RULES)
    groups = param_groups.check(optimizer.pop(param_groups.KEY, None))
    no_decay = param_groups.check_no_decay(optimizer.pop(param_groups.NO_DECAY, None))
    scaling = LrScaling(optimizer.pop("lr_scaling", "none"), optimizer.pop("reference_batch", 256))
    check_node("optimizer", scaling.__dict__ | {"lr_scaling": scaling.rule}, SCALING_RULES)
    if str(optimizer.get("_target_", "")).startswith("schedulefree."):
        import importlib.util

        if importlib.util.find_spec("schedulefree") is None:
            raise ConfigError(
                f"optimizer._target_={optimizer['_target_']} needs the schedulefree package. "
                "Install it with: pip install 'lrrun[schedulefree]'"
            )
    check_scheduler(resolved["scheduler"])
    _check_schedule_free(optimizer, resolved["scheduler"])
    loss = resolved.get("loss") or {"_target_": "torch.nn.CrossEntropyLoss"}
    check_node("loss", loss, LOSS_RULES)
    mix = resolved.get("mix") or {}
    check_node("mix", mix, MIX_RULES)
    check_fit(task, resolved["scheduler"], loss, mix)
    if trainer.get("clip_grad_norm") is not None and trainer.get("clip_grad_value") is not None:
        raise ConfigError(
            f"trainer.clip_grad_norm={trainer['clip_grad_norm']} and trainer.clip_grad_value="
            f"{trainer['clip_grad_value']} are both set: clip one way. Set the other to null."
        )
    return Settings(
        trainer=dataclasses.replace(TrainerSettings(), **trainer),
        task=task,
        dataset=dataset,
        model=resolved["model"],
        optimizer=optimizer,
        param_groups=groups,
        scheduler=resolved["scheduler"],
        loss=loss,
        mix=mix,
        resolved=resolved,
        no_decay=no_decay,
        lr_scaling=scaling,
        choices={str(k): str(v) for k, v in (choices or {}).items() if v is not None},
    )


def _check_schedule_free(optimizer: dict[str, Any], scheduler: dict[str, Any]) -> None:
    """A schedule-free optimizer named by its config replaces the schedule: refused with a
    scheduler before torch is imported (lrrun.schedule.build refuses others, found once built,
    with the same words)."""
    target = str(optimizer.get("_target_", ""))
    if target.startswith("schedulefree.") and "_target_" in scheduler:
        raise fights_schedule_free(target.rsplit(".", 1)[-1], scheduler["_target_"])


def _ema(node: dict[str, Any]) -> tuple[float, int, bool] | None:
    """trainer.ema as (decay, every, warmup), or None when decay is null."""
    check_known("trainer.ema", node, EMA_RULES)
    check_node("trainer.ema", node, EMA_RULES)
    if node.get("decay") is None:
        return None
    return float(node["decay"]), int(node.get("every", 1)), bool(node.get("warmup", True))


def _averages(ema: Any, scheduler: dict[str, Any], select: str) -> tuple[str, ...]:
    """The averaged weights a run keeps and evaluates (lrrun.train.averaging): ema with
    trainer.ema, swa with scheduler=swa; trainer.select must name the model or one of them."""
    swa = str(scheduler.get("_target_", "")).endswith("SWALR")
    averages = (*(("ema",) if ema else ()), *(("swa",) if swa else ()))
    if select != "model" and select not in averages:
        fix = "set trainer.ema.decay (e.g. 0.999)" if select == "ema" else "use scheduler=swa"
        raise ConfigError(
            f"trainer.select={select}: this run keeps no {select} weights. To select them, "
            f"{fix}; or use trainer.select=model."
        )
    return averages


def _early_stop(node: dict[str, Any], task: TaskSpec) -> tuple[str, bool, int, float] | None:
    """trainer.early_stop as (monitor, higher is better, patience, min_delta): the task's
    selection metric by default (val_acc, or val_loss); None when patience is null."""
    check_known("trainer.early_stop", node, EARLY_STOP_RULES)
    check_node("trainer.early_stop", node, EARLY_STOP_RULES)
    if node.get("patience") is None:
        return None
    monitor = node.get("monitor") or task.select
    metrics = [
        c
        for c in task.columns([], top5=True, averages=task.averages)
        if c.startswith(("train_", "val_"))
    ]
    if monitor not in metrics:
        raise ConfigError(
            f"trainer.early_stop.monitor={monitor} is not a metric this task logs each epoch: "
            f"one of {', '.join(metrics)}."
        )
    higher = higher_is_better(monitor)
    return monitor, higher, int(node["patience"]), float(node.get("min_delta") or 0.0)


def _resolve_roots(cfg: DictConfig) -> dict[str, Any]:
    """Each top-level node resolved on its own, so an interpolation error names its group."""
    out: dict[str, Any] = {}
    for key in map(str, cfg):
        try:
            node = cfg[key]
            out[key] = (
                OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            )
        except Exception as exc:  # omegaconf raises many types; all mean "bad config"
            raise ConfigError(f"{key}: {exc}".splitlines()[0]) from None
    for group in ("trainer", "dataset", "model", "optimizer", "scheduler"):
        if not isinstance(out.get(group), dict):
            raise ConfigError(f"{group}: the config has no {group} group. Choose one: {group}=...")
    return out


def check_trackers(value: Any) -> list[str]:
    """trainer.trackers: a list of known names whose packages are installed (de-duplicated)."""
    import importlib.util

    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"trainer.trackers={value!r} must be a list, e.g. trainer.trackers=[tensorboard] "
            "or [tensorboard,mlflow] ([] for none)."
        )
    for name in value:
        if name not in TRACKERS:
            raise ConfigError(
                f"trainer.trackers: {name!r} is not a tracker lrrun knows. Use "
                + " or ".join(TRACKERS)
                + "."
            )
        if importlib.util.find_spec(TRACKER_MODULES[name]) is None:
            raise ConfigError(
                f"trainer.trackers: {name} is not installed. Install it with: "
                f"{TRACKER_INSTALL[name]}"
            )
    return list(dict.fromkeys(value))
