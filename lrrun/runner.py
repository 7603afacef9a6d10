"""Build everything a run needs from the composed config, then hand over to ``loop.fit``."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import hydra.utils
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim import Optimizer

from lrrun import checkpoint
from lrrun.allocator import keep_freed_memory
from lrrun.config import check_signature, resolved, validate
from lrrun.console import RunConsole, print_warning
from lrrun.data import IMAGE_SHAPE, NUM_CLASSES, load_data, make_batches
from lrrun.devices import resolve_device
from lrrun.errors import ConfigError, Diverged, root_cause
from lrrun.events import COLUMNS as EVENT_COLUMNS
from lrrun.events import EventWatcher
from lrrun.lint import lint
from lrrun.loggers import (
    CSVLog,
    StepRecorder,
    metrics_columns,
    parse_row,
    steps_columns,
    write_status,
)
from lrrun.loop import Autocast, Hooks, fit, no_autocast
from lrrun.models import parameter_count
from lrrun.schedulers import Stepping, build_scheduler, current_lrs, format_args


def run(
    cfg: DictConfig,
    run_dir: Path,
    choices: dict[str, Any] | None = None,
    job_num: int | None = None,
) -> list[dict[str, Any]]:
    """Train as ``cfg`` says, writing metrics.csv, steps.csv, checkpoint.pt and status.json
    into ``run_dir`` (with ``trainer.resume``: into the checkpoint's run dir). ``job_num``:
    this job's number in a multirun (trainer.device=auto spreads jobs over GPUs by it)."""
    choices = choices or {}
    validate(cfg)
    trainer = resolved(cfg.trainer, "trainer")
    saved = None
    if trainer["resume"]:
        path = checkpoint.locate(str(trainer["resume"]))
        saved, run_dir = checkpoint.load(path), path.parent
    torch.manual_seed(trainer["seed"])
    device = resolve_device(trainer["device"], job_num)
    set_deterministic(trainer["deterministic"])
    kept = keep_freed_memory(device.type)
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
    plan = _plan(cfg, stepping, steps_per_epoch)
    start_epoch, step, best = 1, 0, None
    if saved is not None:
        start_epoch, step, best = restore(saved, plan, model, optimizer, stepping, trainer)
    check_output_dir(run_dir, model, epochs * steps_per_epoch)
    forward = torch.compile(model) if trainer["compile"] else model

    groups = len(optimizer.param_groups)
    console = RunConsole(metrics_columns(groups), epochs, steps_per_epoch, trainer["progress"])
    speed = _speed(data_path, trainer, memory_format, kept)
    console.header(
        _header(cfg, choices, model, optimizer, stepping, data, steps_per_epoch)
        | {"device": f"{device} ({speed})", "run dir": _short(run_dir)}
        | ({"resumed": f"after epoch {start_epoch - 1} (step {step})"} if saved else {})
    )
    for warning in lint(stepping, epochs, steps_per_epoch):
        print_warning(warning)
    keep = start_epoch - 1 if saved else None
    metrics = CSVLog(run_dir / "metrics.csv", metrics_columns(groups), keep)
    steps = CSVLog(run_dir / "steps.csv", steps_columns(groups), keep)
    events = CSVLog(run_dir / "events.csv", EVENT_COLUMNS, keep)
    recorder = StepRecorder(steps)
    stepping.watch = EventWatcher(stepping, optimizer)

    def log_events() -> None:  # under the epoch's row, and on disk with its rows
        happened = stepping.watch.drain()
        events.write_many([e.row() for e in happened])
        for event in happened:
            console.event(event.line())

    previous: list[dict[str, Any]] = [parse_row(r) for r in metrics.kept]
    for row in previous:
        console.epoch_end(row)

    def epoch_end(row: dict[str, Any]) -> None:
        nonlocal best
        metrics.write(row)
        console.epoch_end(row)
        if best is None or row["val_acc"] > best[0]:
            best = (row["val_acc"], row["epoch"])

    def epoch_done(epoch: int, step: int) -> None:
        log_events()
        state = {
            "format": checkpoint.FORMAT,
            "epoch": epoch,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": stepping.scheduler.state_dict() if stepping.scheduler else None,
            "rng": checkpoint.rng_state(),
            "best": best,
            "plan": plan,
        }
        checkpoint.save_atomic(state, run_dir / checkpoint.NAME)
        if trainer["save_best"] and best is not None and best[1] == epoch:
            checkpoint.save_atomic(state, run_dir / checkpoint.BEST)
        write_status(run_dir, "running", epoch=epoch, step=step)

    def epoch_start(epoch: int) -> None:
        if epoch == start_epoch:  # set-up is done: the next thing is the first step
            write_status(run_dir, "running", startup_s=round(process_age(), 3),
                         device=str(device), torch_threads=torch.get_num_threads())  # fmt: skip
        console.epoch_start(epoch)

    hooks = Hooks(epoch_start, console.step_update, epoch_end, epoch_done)
    write_status(run_dir, "running", epoch=start_epoch - 1, step=step)
    history: list[dict[str, Any]] = []
    try:
        history = fit(
            forward, train_batches, val_batches, optimizer, stepping, recorder, epochs,
            start_epoch=start_epoch, step=step, autocast=autocast, hooks=hooks,
            stop_on_nonfinite=trainer["stop_on_nonfinite"],
        )  # fmt: skip
    except BaseException as exc:
        write_status(run_dir, _failure(exc), message=str(exc) or type(exc).__name__)
        if isinstance(exc, Diverged):
            _plot(run_dir, trainer)
        raise
    finally:  # whatever happens, every step taken is on disk
        recorder.flush()
        log_events()
        metrics.close()
        steps.close()
        events.close()
        console.close()
    write_status(run_dir, "ok")  # epoch and step: from the last epoch_done
    _plot(run_dir, trainer)
    history = previous + history
    console.finish(history, _short(run_dir))
    return history


def process_age() -> float:
    """Seconds since this process started (Linux /proc; else since lrrun was imported)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def _plot(run_dir: Path, trainer: dict[str, Any]) -> None:
    """curves.png (lr per step, loss and accuracy per epoch); a failure here only warns."""
    if not trainer["plot"]:
        return
    try:
        from lrrun.report import report

        report(run_dir)
    except Exception as exc:
        print_warning(f"curves.png was not written ({root_cause(exc)}); try lrrun-report {run_dir}")


def _failure(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "failed"


def _plan(cfg: DictConfig, stepping: Stepping, steps_per_epoch: int) -> dict[str, Any]:
    """What a resume must not change: the config, minus keys that only affect speed or
    display, plus the scheduler's derived arguments and the batches per epoch."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    trainer = {k: v for k, v in plain["trainer"].items() if k not in RESUME_FREE_KEYS}
    return {
        **{k: plain[k] for k in ("dataset", "model", "optimizer", "scheduler")},
        "trainer": trainer,
        "scheduler (derived)": _plain({"name": stepping.name, **stepping.args}),
        "steps_per_epoch": steps_per_epoch,
    }


def _plain(value: Any) -> Any:
    """Plain values only (a checkpoint is loaded weights_only): objects such as an
    lr_lambda's EpochExpression are kept as their repr."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


# Keys a resumed run may change freely: how fast and where it runs, and how long.
RESUME_FREE_KEYS = (
    "epochs", "plot", "device", "progress", "data_path", "num_workers", "compile", "channels_last",
    "eval_batch_size", "resume", "allow_config_change", "save_best", "stop_on_nonfinite",
)  # fmt: skip


def restore(
    saved: dict[str, Any],
    plan: dict[str, Any],
    model: nn.Module,
    optimizer: Optimizer,
    stepping: Stepping,
    trainer: dict[str, Any],
) -> tuple[int, int, tuple[float, int] | None]:
    """Load a checkpoint into the freshly built objects; return (start epoch, step, best).

    The optimizer's state is loaded after the scheduler was constructed: constructing a
    scheduler resets the optimizer's lr to the schedule's start, and the checkpoint's
    param_groups put the lr of the saved epoch back.
    """
    if saved["epoch"] >= trainer["epochs"]:
        raise ConfigError(
            f"trainer.resume: the checkpoint is at epoch {saved['epoch']}, and "
            f"trainer.epochs={trainer['epochs']}: nothing left to train. Raise trainer.epochs "
            "to train longer."
        )
    changes = diff(saved["plan"], plan)
    if changes and not trainer["allow_config_change"]:
        raise ConfigError(
            "trainer.resume: this config differs from the checkpoint's: "
            + "; ".join(changes)
            + ". Resume with the checkpoint's values, or set trainer.allow_config_change=true "
            "to continue with the new ones (a changed scheduler starts from its beginning)."
        )
    fresh_lrs = current_lrs(optimizer)  # where the just-built schedule starts
    try:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"trainer.resume: the checkpoint's model/optimizer do not fit this config "
            f"({root_cause(exc)})."
        ) from None
    same_scheduler = saved["plan"]["scheduler (derived)"] == plan["scheduler (derived)"]
    if same_scheduler and stepping.scheduler is not None and saved["scheduler"] is not None:
        stepping.scheduler.load_state_dict(saved["scheduler"])
    else:  # another schedule (allowed): it starts from its beginning
        for group, lr in zip(optimizer.param_groups, fresh_lrs, strict=True):
            group["lr"] = lr
    checkpoint.set_rng_state(saved["rng"])
    return saved["epoch"] + 1, saved["step"], saved["best"]


def diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``key: old -> new`` for every leaf that differs."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += diff(old.get(key, "<unset>"), new.get(key, "<unset>"), name)
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def check_output_dir(run_dir: Path, model: nn.Module, total_steps: int) -> None:
    """Fail at start, not at epoch 37, if the run dir cannot take the run's files."""
    hint = "Choose another with hydra.run.dir=... (sweeps: hydra.sweep.dir=...)."
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test."):
            pass
        free = shutil.disk_usage(run_dir).free
    except OSError as exc:
        raise ConfigError(
            f"run dir {run_dir} is not writable ({exc.strerror or exc}). {hint}"
        ) from None
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    need = 4 * params + 100 * total_steps + (1 << 20)  # 2 checkpoints (+ momenta), steps.csv
    if free < need:
        raise ConfigError(
            f"run dir {run_dir} has {free / 2**20:.1f} MiB free; this run needs about "
            f"{need / 2**20:.1f} MiB (checkpoints and CSVs). Free some space. {hint}"
        )


def set_deterministic(on: bool) -> None:
    """Deterministic kernels (bit-exact reruns on GPU too, somewhat slower); CPU runs of
    these models are deterministic either way."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
    if torch.are_deterministic_algorithms_enabled() != on:  # the call costs ~2 s of imports
        torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.benchmark = False


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


def _speed(
    data_path: str, trainer: dict[str, Any], memory_format: torch.memory_format, kept: bool
) -> str:
    parts = [f"data_path={data_path}", f"precision={trainer['precision']}"]
    if memory_format == torch.channels_last:
        parts.append("channels_last")
    if trainer["compile"]:
        parts.append("compile")
    if kept:
        parts.append("malloc keeps freed memory")
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
        f"{len(data.test)} test, from {data.source}"
        + (f", normalised (mean {data.mean:.4f}, std {data.std:.4f})" if data.std != 1 else ""),
        "model": f"{choices.get('model', '')} ({type(model).__name__}, "
        f"{parameter_count(model):,} parameters)",
        "optimizer": f"{choices.get('optimizer', '')} ({type(optimizer).__name__} "
        + format_args(opt_args)
        + ")",
        "scheduler": f"{choices.get('scheduler', '')} ({stepping.name}"
        + (f" {sched_args}" if sched_args else "")
        + f"), interval={stepping.interval}{monitor}",
        **stepping.warmup.header(),
        "trainer": f"{trainer.epochs} epoch(s) x {steps_per_epoch} steps, batch {trainer.batch_size}, "
        f"seed {trainer.seed}",
    }


def _short(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel
