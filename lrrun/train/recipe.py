"""How one optimizer step is made, beyond forward/backward: the recipe features that change
what a schedule does or what a step uses (lrrun.train.loop applies them).

- ``trainer.accumulate=N``: one optimizer step per N batches; each batch's loss is divided by
  the number of batches in its group, so a group's gradient is the mean of its batches'. The
  epoch's last group may be shorter (its batches are averaged and stepped). Schedules, warm-up
  and every derived length count optimizer steps: ceil(batches / N) per epoch.
- ``trainer.clip_grad_norm`` / ``trainer.clip_grad_value``: torch's clip_grad_norm_ /
  clip_grad_value_ over the optimizer's parameters, after the group's backward passes;
  ``grad_norm`` (the total 2-norm before clipping) goes into steps.csv when clipping or with
  ``trainer.log_grad_norm``, as a device tensor read with the epoch's losses: no host sync.
- The loss node (``loss=cross_entropy``: torch's CrossEntropyLoss, ``label_smoothing``;
  ``loss=mse|l1|huber`` for regression) for training, handed what it expects by the task
  (lrrun.tasks: per token, standardised targets); evaluation is always the task's plain loss,
  comparable across recipes.
- Mixing (``mix=mixup|cutmix|mixup_cutmix``: torchvision's MixUp / CutMix on the device batch)
  in epochs before ``mix.off_epoch``; accuracy is on the hard labels. Random draws come from
  torch's global generator, which checkpoints hold, so a resume mixes the same.
- ``trainer.precision=fp16``: the forward and loss under fp16 autocast, the loss scaled by
  ``torch.amp.GradScaler`` for backward, the gradients unscaled before clipping, and the
  scaler's step: when it finds inf/NaN gradients it skips ``optimizer.step()`` and lowers
  its scale; the step still counts (the scheduler steps after it as after any other, so the
  lr stays a function of the step number) and is an event in events.csv (``skipped_step``).
  The scaler's state is in every checkpoint. (The scaler reads its inf check on the host:
  one sync per step, fp16's own cost; bf16 needs no scaler.)
- Schedule-free optimizers (``optimizer=sgd_schedule_free|adamw_schedule_free``): switched to
  train mode for training and to eval mode for evaluation and checkpoints; the lr logged is
  the one their step used (``scheduled_lr``: lr x their own warm-up).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.optim import Optimizer

from lrrun.schedule.build import schedule_free

Batch = tuple[torch.Tensor, torch.Tensor]
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Autocast = Callable[[], contextlib.AbstractContextManager[Any]]


def no_autocast() -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


@dataclass(frozen=True)
class Recipe:
    accumulate: int = 1
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    log_grad_norm: bool = False
    criterion: Criterion = F.cross_entropy
    mix: Callable[..., Any] | None = None  # (images, labels) -> (images, soft labels)
    mix_off_epoch: int | None = None  # mixing in epochs before this one (1-based)
    scaler: torch.amp.GradScaler | None = None  # trainer.precision=fp16's loss scaling

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss backward() starts from: scaled by fp16's gradient scaler, if any."""
        return loss if self.scaler is None else self.scaler.scale(loss)

    @property
    def grad_norm(self) -> bool:
        """Whether steps.csv logs grad_norm."""
        return (
            self.log_grad_norm
            or self.clip_grad_norm is not None
            or self.clip_grad_value is not None
        )

    def steps_per_epoch(self, batches: int) -> int:
        return math.ceil(batches / self.accumulate)

    def mixed(
        self, images: torch.Tensor, labels: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch as the model trains on it: mixed (soft labels) while mixing is on."""
        return self.mix(images, labels) if self.mixes(epoch) else (images, labels)

    def mixes(self, epoch: int) -> bool:
        """Whether ``epoch``'s batches are mixed (random draws from the global generator)."""
        return self.mix is not None and (self.mix_off_epoch is None or epoch < self.mix_off_epoch)

    def clip(self, optimizer: Optimizer) -> torch.Tensor | None:
        """Clip the gradients as configured; the total norm before clipping (a device
        tensor), or None when nothing asks for it."""
        if not self.grad_norm:  # no clipping, no logging: no per-step walk over the params
            return None
        if self.scaler is not None:  # clip and log the true gradients
            self.scaler.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not params:
            return None
        if self.clip_grad_norm is not None:
            return torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        if self.clip_grad_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.clip_grad_value)
        return norm


def set_mode(optimizer: Optimizer, train: bool) -> None:
    """A schedule-free optimizer's weights for training (y) or for evaluation and checkpoints
    (x); nothing for others."""
    if schedule_free(optimizer):
        optimizer.train() if train else optimizer.eval()  # type: ignore[attr-defined]


def used_lrs(optimizer: Optimizer, read_before: list[float]) -> list[float]:
    """The lrs the step just taken used: read before the step (lrrun.train.loop), except for
    schedule-free optimizers, whose step scales its lr by its own warm-up (scheduled_lr)."""
    if schedule_free(optimizer):
        return [float(g["scheduled_lr"]) for g in optimizer.param_groups]
    return read_before


def build_recipe(settings: Any, num_classes: int, device: torch.device, task: Any) -> Recipe:
    """The Recipe of a run's Settings: the trainer's step keys, the loss node (as ``task``,
    an lrrun.tasks.Task, hands it the output and targets) and the mixing node (its
    num_classes: null anywhere filled from the data)."""
    import hydra.utils

    from lrrun.errors import ConfigError, root_cause

    trainer = settings.trainer

    def build(node: dict[str, Any], where: str) -> Any:
        try:
            return hydra.utils.instantiate(node, _convert_="all")
        except Exception as exc:
            raise ConfigError(
                f"{where} could not be built from {node.get('_target_')!r}: {root_cause(exc)}"
            ) from None

    criterion = build(settings.loss, "loss")
    if isinstance(criterion, torch.nn.Module):
        criterion = criterion.to(device)
    criterion = task.criterion(criterion)
    mix = None
    if settings.mix.get("_target_"):
        node = _with_classes(
            {k: v for k, v in settings.mix.items() if k != "off_epoch"}, num_classes
        )
        mix = build(node, "mix")
    scaler = torch.amp.GradScaler(device.type) if trainer.precision == "fp16" else None
    return Recipe(
        accumulate=trainer.accumulate,
        clip_grad_norm=trainer.clip_grad_norm,
        clip_grad_value=trainer.clip_grad_value,
        log_grad_norm=trainer.log_grad_norm,
        criterion=criterion,
        mix=mix,
        mix_off_epoch=settings.mix.get("off_epoch"),
        scaler=scaler,
    )


def _with_classes(node: Any, num_classes: int) -> Any:
    """``num_classes: null`` at any depth of a node, set to the data's."""
    if isinstance(node, dict):
        return {
            k: (num_classes if k == "num_classes" and v is None else _with_classes(v, num_classes))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_with_classes(v, num_classes) for v in node]
    return node


def groups(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    """Consecutive groups of ``size`` batches (trainer.accumulate); the last may be shorter."""
    group: list[Batch] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


@contextlib.contextmanager
def after_a_skip() -> Iterator[None]:
    """A scheduler stepped after a skipped first optimizer step: torch's warning about the
    order is wrong there (the loop's order holds; the scaler skipped the update)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        yield
