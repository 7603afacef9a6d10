"""Build everything a run needs from the composed config, then hand over to ``loop.fit``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra.utils
import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim import Optimizer

from lrrun.config import check_signature, resolved, validate
from lrrun.console import RunConsole
from lrrun.data import IMAGE_SHAPE, NUM_CLASSES, load_data, make_loader
from lrrun.errors import ConfigError, root_cause
from lrrun.loggers import CSVLog, StepRecorder, metrics_columns, steps_columns
from lrrun.loop import fit
from lrrun.models import parameter_count
from lrrun.schedulers import Stepping, build_scheduler, format_args


def run(
    cfg: DictConfig, run_dir: Path, choices: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Train as ``cfg`` says, writing metrics.csv and steps.csv into ``run_dir``."""
    choices = choices or {}
    validate(cfg)
    trainer = resolved(cfg.trainer, "trainer")
    torch.manual_seed(trainer["seed"])
    device = resolve_device(trainer["device"])

    data = load_data(resolved(cfg.dataset, "dataset"))
    model = build_model(cfg.model).to(device)
    optimizer = build_optimizer(cfg.optimizer, model)
    cuda = device.type == "cuda"
    train_loader = make_loader(
        data.train, trainer["batch_size"], True, trainer["seed"], trainer["num_workers"], cuda
    )
    val_loader = make_loader(
        data.test, trainer["eval_batch_size"], False, trainer["seed"], trainer["num_workers"], cuda
    )
    epochs, steps_per_epoch = trainer["epochs"], len(train_loader)
    stepping = build_scheduler(cfg.scheduler, optimizer, epochs, steps_per_epoch)

    groups = len(optimizer.param_groups)
    console = RunConsole(metrics_columns(groups), epochs, steps_per_epoch, trainer["progress"])
    console.header(
        _header(cfg, choices, model, optimizer, stepping, data, device, steps_per_epoch, run_dir)
    )
    metrics = CSVLog(run_dir / "metrics.csv", metrics_columns(groups))
    steps = CSVLog(run_dir / "steps.csv", steps_columns(groups))
    recorder = StepRecorder(steps, on_flush=console.step_update)

    def on_epoch(row: dict[str, Any]) -> None:
        metrics.write(row)
        console.epoch_end(row)

    try:
        history = fit(
            model, train_loader, val_loader, optimizer, stepping, epochs, device,
            recorder, on_epoch, console.epoch_start,
        )  # fmt: skip
    finally:  # whatever happens, every step taken is on disk
        recorder.flush()
        metrics.close()
        steps.close()
        console.close()
    console.finish(history, _short(run_dir))
    return history


def resolve_device(spec: str) -> torch.device:
    """``auto`` = cuda, else mps, else cpu; an explicit device must exist on this machine."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"trainer.device={spec!r} is not a device: use auto, cpu, cuda, cuda:N or mps."
        )
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"trainer.device={spec!r} is not available: this machine has no usable CUDA "
                "GPU. Use trainer.device=auto (picks the best there is) or trainer.device=cpu."
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"trainer.device={spec!r} is not available: this machine has {count} CUDA "
                f"device(s), cuda:0 to cuda:{count - 1}."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"trainer.device={spec!r} is not available: MPS needs Apple silicon. "
            "Use trainer.device=auto or cpu."
        )
    return device


def build_model(node: DictConfig) -> nn.Module:
    plain = resolved(node, "model")
    try:
        model = hydra.utils.instantiate(node)
    except Exception as exc:
        raise ConfigError(
            f"model could not be built from {plain.get('_target_')!r}: {root_cause(exc)}"
        ) from None
    features = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
    if getattr(model, "input_dim", features) != features:
        raise ConfigError(
            f"model.input_dim={model.input_dim} does not fit the data: its images have "
            f"{features} pixels. Use model.input_dim={features}."
        )
    if getattr(model, "output_dim", NUM_CLASSES) != NUM_CLASSES:
        raise ConfigError(
            f"model.output_dim={model.output_dim} does not fit the data: it has {NUM_CLASSES} "
            f"classes. Use model.output_dim={NUM_CLASSES}."
        )
    return model


def build_optimizer(node: DictConfig, model: nn.Module) -> Optimizer:
    """Finish the optimizer's ``_partial_`` node with the model's parameters."""
    plain = resolved(node, "optimizer")
    try:
        cls = hydra.utils.get_class(plain["_target_"])
    except Exception:
        raise ConfigError(
            f"optimizer._target_={plain.get('_target_')!r} cannot be imported. "
            "Use a torch.optim class, e.g. torch.optim.SGD."
        ) from None
    check_signature(cls, {k: v for k, v in plain.items() if not k.startswith("_")}, "optimizer")
    try:
        partial = hydra.utils.instantiate(node, _convert_="all")
        return partial(model.parameters())
    except Exception as exc:
        raise ConfigError(
            f"optimizer ({cls.__name__}) rejected its arguments: {root_cause(exc)}"
        ) from None


def _header(
    cfg: DictConfig,
    choices: dict[str, Any],
    model: nn.Module,
    optimizer: Optimizer,
    stepping: Stepping,
    data: Any,
    device: torch.device,
    steps_per_epoch: int,
    run_dir: Path,
) -> dict[str, str]:
    opt_args = {
        k: v for k, v in optimizer.defaults.items() if k in resolved(cfg.optimizer, "optimizer")
    }
    trainer = cfg.trainer
    sched_args = format_args(stepping.args)
    monitor = f", monitor={stepping.monitor}" if stepping.monitor else ""
    return {
        "dataset": f"{choices.get('dataset', cfg.dataset.name)}: {len(data.train)} train / "
        f"{len(data.test)} test, from {data.source}",
        "model": f"{choices.get('model', '')} ({type(model).__name__}, "
        f"{parameter_count(model):,} parameters)",
        "optimizer": f"{choices.get('optimizer', '')} ({type(optimizer).__name__} "
        + format_args(opt_args)
        + ")",
        "scheduler": f"{choices.get('scheduler', '')} ({stepping.name}"
        + (f" {sched_args}" if sched_args else "")
        + f"), interval={stepping.interval}{monitor}",
        "trainer": f"{trainer.epochs} epoch(s) x {steps_per_epoch} steps, batch {trainer.batch_size}, "
        f"seed {trainer.seed}",
        "device": str(device),
        "run dir": _short(run_dir),
    }


def _short(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel
