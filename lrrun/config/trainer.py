"""The trainer group, each key declared once: its field (name and type), default, rule, meaning,
and whether a resume may change it. From these follow ``TrainerSettings``, the checks
(``RULES``), what a resume may change (``RESUME_FREE``), and what lrrun.config.reference
writes: ``conf/trainer/default.yaml`` (a test holds the shipped file to it) and the docs'
reference page.

Two keys are nodes: ``early_stop`` and ``ema`` declare their own keys in ``EarlyStop`` and
``Ema``; their settings fields hold the checked values (lrrun.config.settings).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lrrun.config.rules import (
    BOOL,
    INT,
    INT_GE0,
    INT_GE1,
    NON_NEGATIVE,
    POSITIVE,
    STRING,
    Rule,
    choice,
)


def key(
    default: Any,
    rule: Rule,
    meaning: str,
    *,
    resume: bool = False,
    section: str = "",
    node: type | None = None,
) -> Any:
    """A declared key. ``resume``: a resumed run may change it (the checkpoint's plan leaves
    it out); ``section``: a heading the YAML and the reference start here; ``node``: the
    dataclass declaring a node's keys (its default is that node's defaults)."""
    meta = {"rule": rule, "meaning": meaning, "resume": resume, "section": section, "node": node}
    return field(default=default, metadata=meta)


def _or_null(rule: Rule, null: str) -> Rule:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null ({null})"


def _node_rule(node: type) -> Rule:
    names = ", ".join(f.name for f in dataclasses.fields(node))
    return (lambda v: isinstance(v, dict)), f"a node: {names}"


_AUTO_OR_BOOL: Rule = (lambda v: v == "auto" or isinstance(v, bool), "auto, true or false")
_PATH_OR_NULL: Rule = (
    lambda v: v is None or (isinstance(v, str) and v != ""),
    "a run dir, a checkpoint file, or null",
)


@dataclass(frozen=True)
class EarlyStop:
    """trainer.early_stop: Lightning's EarlyStopping (status stopped_early)."""

    patience: int | None = key(
        None, _or_null(INT_GE1, "off"), "stop after this many epochs without improvement; null: off"
    )
    min_delta: float = key(0.0, NON_NEGATIVE, "an improvement must beat the best by more than this")
    monitor: str | None = key(
        None,
        (lambda v: v is None or isinstance(v, str), "a metric of metrics.csv, or null"),
        "a metric of metrics.csv; null: the task's selection metric (val_acc, or val_loss)",
    )


@dataclass(frozen=True)
class Ema:
    """trainer.ema: a moving average of the weights, evaluated each epoch."""

    decay: float | None = key(
        None,
        (
            lambda v: v is None or (NON_NEGATIVE[0](v) and 0 < v < 1),
            "a number in (0, 1), or null (off)",
        ),
        "e.g. 0.999; null: off. metrics.csv: every val metric again as *_ema",
    )
    every: int = key(1, INT_GE1, "update after every N optimizer steps")
    warmup: bool = key(
        True, BOOL, "timm's ModelEmaV3 warm-up: decay min(decay, 1 - (1 + t)^(-2/3))"
    )


@dataclass(frozen=True)
class TrainerSettings:
    """The trainer group's values, checked (lrrun.config.settings.read)."""

    epochs: int = key(
        10, INT_GE1, "epochs to train; a resume may raise it", resume=True, section="the run"
    )
    batch_size: int = key(64, INT_GE1, "training batch size (per process under DDP)")
    eval_batch_size: int | str = key(
        "auto",
        (lambda v: v == "auto" or INT_GE1[0](v), "auto or an integer >= 1"),
        "evaluation batch size (results do not change); auto: 128 on CPU (activations stay "
        "in cache), else 1000",
        resume=True,
    )
    device: str = key(
        "auto",
        STRING,
        "auto: cuda, else mps, else cpu (a multirun with several GPUs: "
        "cuda:<job number % GPUs>); or cpu, cuda, cuda:N, mps",
        resume=True,
    )
    devices: int = key(
        1, INT_GE1, "data-parallel processes (DDP): lrrun starts them as torchrun would"
    )
    seed: int = key(42, INT, "model init, dropout, augmentation, the data order, the synthetic set")
    accumulate: int = key(
        1,
        INT_GE1,
        "one optimizer step per N batches; schedules count optimizer steps",
        section="how a step is made",
    )
    clip_grad_norm: float | None = key(
        None, _or_null(POSITIVE, "off"), "clip the gradients' total 2-norm to this"
    )
    clip_grad_value: float | None = key(
        None, _or_null(POSITIVE, "off"), "or each gradient value to [-v, v]"
    )
    log_grad_norm: bool = key(
        False, BOOL, "steps.csv grad_norm (always when clipping): the norm before clipping"
    )
    progress: bool = key(
        True, BOOL, "live progress bar; plain lines when false or without a TTY", resume=True
    )
    plot: bool = key(
        True,
        BOOL,
        "write curves.png (lr per step, loss and metrics per epoch) at the end",
        resume=True,
    )
    data_path: str = key(
        "auto",
        choice("auto", "tensor", "loader"),
        "tensor: splits on the device, batches drawn by index (fast); loader: samples through "
        "a DataLoader; auto: tensor when the data fits in half the device's free memory and "
        "its transforms run batched",
        resume=True,
        section="speed (none of these changes what is computed, except precision)",
    )
    num_workers: int = key(0, INT_GE0, "DataLoader workers (data_path=loader only)", resume=True)
    pin_memory: bool | str = key(
        "auto", _AUTO_OR_BOOL, "DataLoader: page-locked batches (auto: on CUDA)", resume=True
    )
    persistent_workers: bool = key(
        True, BOOL, "DataLoader: keep the workers between epochs", resume=True
    )
    precision: str = key(
        "fp32",
        (
            lambda v: v in ("fp32", "bf16", "fp16"),
            "fp32, bf16 or fp16 (Lightning's 32, bf16-mixed and 16-mixed: fp16 autocast with "
            "torch.amp.GradScaler)",
        ),
        "bf16: autocast forward and loss (weights, optimizer and the logged lr stay fp32); "
        "fp16: float16 autocast and torch.amp.GradScaler (skipped steps are events)",
    )
    compile: bool = key(
        False, BOOL, "torch.compile the model (a compile on start; CUDA mostly)", resume=True
    )
    channels_last: bool | str = key(
        "auto",
        _AUTO_OR_BOOL,
        "NHWC memory layout; auto: on for models with conv layers",
        resume=True,
    )
    resume: str | None = key(
        None,
        _PATH_OR_NULL,
        "a run dir or checkpoint.pt: continue that run, in its run dir",
        resume=True,
        section="runs that survive",
    )
    allow_config_change: bool = key(
        False,
        BOOL,
        "resume even if model, optimizer, scheduler or data settings differ from the checkpoint's",
        resume=True,
    )
    save_best: bool = key(
        True,
        BOOL,
        "also keep best.pt (the epoch with the best selection "
        "metric; the test split is evaluated with it)",
        resume=True,
    )
    test_every_epoch: bool = key(
        False,
        BOOL,
        "test metrics every epoch (reported only); false: once, for the chosen epoch",
        resume=True,
    )
    stop_on_nonfinite: bool = key(
        True, BOOL, "a NaN/inf training loss stops the run (status diverged, exit 3)", resume=True
    )
    early_stop: tuple[str, bool, int, float] | None = key(
        None,
        _node_rule(EarlyStop),
        "Lightning's EarlyStopping (status stopped_early)",
        resume=True,
        node=EarlyStop,
    )
    ema: tuple[float, int, bool] | None = key(
        None,
        _node_rule(Ema),
        "a moving average of the weights, evaluated each epoch (val_*_ema)",
        node=Ema,
    )
    select: str = key(
        "model",
        (
            lambda v: v in ("model", "ema", "swa"),
            "model, ema (trainer.ema.decay) or swa (scheduler=swa): the weights best.pt and the "
            "test use",
        ),
        "the weights best.pt, the test and load_run use: model, ema, or swa (scheduler=swa)",
    )
    deterministic: bool = key(
        False, BOOL, "torch.use_deterministic_algorithms (bit-exact reruns on GPU)"
    )
    trackers: tuple[str, ...] = key(
        (),
        (lambda v: isinstance(v, list), "a list of trackers: tensorboard, mlflow"),
        "tensorboard and/or mlflow, e.g. [tensorboard,mlflow] (optional extras)",
        resume=True,
        section="where else the numbers go (the CSVs are always written)",
    )
    mlflow_uri: str | None = key(
        None,
        (lambda v: v is None or (isinstance(v, str) and v != ""), "a URI or null"),
        "MLflow tracking URI; null: sqlite:///mlruns/mlflow.db next to outputs/",
        resume=True,
    )


def rules(declared: type) -> dict[str, Rule]:
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(declared)}


RULES = rules(TrainerSettings)
EMA_RULES = rules(Ema)
EARLY_STOP_RULES = rules(EarlyStop)
RESUME_FREE = tuple(f.name for f in dataclasses.fields(TrainerSettings) if f.metadata["resume"])


def defaults(declared: type = TrainerSettings) -> dict[str, Any]:
    """The keys' defaults as the YAML writes them (a node: its keys' defaults)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(declared):
        node = f.metadata["node"]
        out[f.name] = (
            defaults(node) if node else (list(f.default) if f.default == () else f.default)
        )
    return out
