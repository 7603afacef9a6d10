"""Build everything a run needs from the composed config, then hand over to ``loop.fit``."""

from __future__ import annotations

import functools
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
from lrrun.data import IMAGE_SHAPE, NUM_CLASSES, load_data, make_batches
from lrrun.errors import ConfigError, root_cause
from lrrun.loggers import CSVLog, StepRecorder, metrics_columns, steps_columns
from lrrun.loop import Autocast, fit, no_autocast
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

    autocast = precision_context(trainer["precision"], device)

    data = load_data(resolved(cfg.dataset, "dataset"))
    model = build_model(cfg.model).to(device)
    memory_format = _memory_format(trainer["channels_last"], model)
    model = model.to(memory_format=memory_format)
    optimizer = build_optimizer(cfg.optimizer, model)
    train_batches, val_batches, data_path = make_batches(
        data, device, trainer["batch_size"], trainer["eval_batch_size"], trainer["seed"],
        trainer["data_path"], trainer["num_workers"], memory_format,
    )  # fmt: skip
    epochs, steps_per_epoch = trainer["epochs"], len(train_batches)
    stepping = build_scheduler(cfg.scheduler, optimizer, epochs, steps_per_epoch)
    forward = torch.compile(model) if trainer["compile"] else model

    groups = len(optimizer.param_groups)
    console = RunConsole(metrics_columns(groups), epochs, steps_per_epoch, trainer["progress"])
    speed = _speed(data_path, trainer, memory_format)
    console.header(
        _header(cfg, choices, model, optimizer, stepping, data, steps_per_epoch)
        | {"device": f"{device} ({speed})", "run dir": _short(run_dir)}
    )
    metrics = CSVLog(run_dir / "metrics.csv", metrics_columns(groups))
    steps = CSVLog(run_dir / "steps.csv", steps_columns(groups))
    recorder = StepRecorder(steps)

    def on_epoch(row: dict[str, Any]) -> None:
        metrics.write(row)
        console.epoch_end(row)

    try:
        history = fit(
            forward, train_batches, val_batches, optimizer, stepping, epochs,
            recorder, on_epoch, console.epoch_start, console.step_update, autocast,
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


def precision_context(precision: str, device: torch.device) -> Autocast:
    """fp32: no autocast. bf16: autocast to bfloat16 (forward and loss; weights stay fp32)."""
    if precision == "fp32":
        return no_autocast
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"trainer.precision={precision} is not supported by {torch.cuda.get_device_name()}. "
            "Use trainer.precision=fp32."
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(
            f"trainer.precision={precision} is supported on cpu and cuda, not {device.type}. "
            "Use trainer.precision=fp32."
        )
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


def _memory_format(setting: str | bool, model: nn.Module) -> torch.memory_format:
    """channels_last=auto: NHWC for models with 2-D convolutions (the CNN trains ~25% faster
    per step on CPU, benchmarks/peer.py), the default layout for others."""
    if setting == "auto":
        setting = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return torch.channels_last if setting else torch.contiguous_format


def _speed(data_path: str, trainer: dict[str, Any], memory_format: torch.memory_format) -> str:
    parts = [f"data_path={data_path}", f"precision={trainer['precision']}"]
    if memory_format == torch.channels_last:
        parts.append("channels_last")
    if trainer["compile"]:
        parts.append("compile")
    return ", ".join(parts)


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
    steps_per_epoch: int,
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
    }


def _short(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel
