"""A run's parts, assembled from its Settings in the order each needs the one before: the
data (its facts size the model), the model (checked on one batch of the data before epoch
1, as the task needs its output), the optimizer, the batches. lrrun.train.runner and
lrrun-find-lr start the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from lrrun.config.scaling import global_batch
from lrrun.config.settings import Settings
from lrrun.data.base import Data
from lrrun.data.batches import Batches, make_batches, probe_batch
from lrrun.data.load import load_data
from lrrun.data.tokens import TokenData
from lrrun.models.adapt import materialise, probe
from lrrun.tasks import Task, build_task
from lrrun.train.distributed import wrap
from lrrun.train.parts import build_model, build_optimizer, memory_format_for
from lrrun.train.recipe import Recipe, build_recipe
from lrrun.world import SINGLE, World

# trainer.data_path -> load_data's memory: decode per-sample sources into memory or not
MEMORY = {"tensor": True, "loader": False, "auto": None}


@dataclass
class Parts:
    data: Data | TokenData
    task: Task  # what is measured and how the loss sees the output (lrrun.tasks)
    model: nn.Module
    model_args: dict[str, Any]  # the data's facts the model's constructor was given
    memory_format: torch.memory_format
    optimizer: Optimizer
    train: Batches
    val: Batches
    test: Batches | None
    epoch_test: Batches | None  # the test split when trainer.test_every_epoch reports it
    data_path: str  # tensor, loader or memmap
    recipe: Recipe  # how a step is made (accumulation, clipping, loss, mixing)
    wrapped: nn.Module  # what the training step calls: the model, or DDP around it
    global_batch: int  # batch_size x processes x accumulate

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: ceil(batches / trainer.accumulate)."""
        return self.recipe.steps_per_epoch(len(self.train))


def assemble(
    settings: Settings, device: torch.device, world: World = SINGLE, data: Any = None
) -> Parts:
    """``data``: loaded already (the members of one pass share it, lrrun.fused)."""
    trainer = settings.trainer
    if data is None:
        data = load_data(settings.dataset, MEMORY[trainer.data_path], device)
    model, model_args = build_model(settings.model, data.facts)
    model = model.to(device)
    materialise(
        model, probe_batch(data, device, torch.contiguous_format), settings.model["_target_"]
    )  # lazy modules, before anything touches them
    memory_format = memory_format_for(trainer.channels_last, model)
    model = model.to(memory_format=memory_format)
    task = build_task(settings.task, data, device)
    probe(
        model,
        probe_batch(data, device, memory_format),
        settings.model["_target_"],
        task.check_output,
    )
    wrapped = wrap(model, world, device)  # DDP: before the optimizer (rank 0's weights)
    optimizer = build_optimizer(settings.optimizer, settings.param_groups, model, settings.no_decay)
    train, val, test, data_path = make_batches(
        data=data,
        device=device,
        batch_size=trainer.batch_size,
        eval_batch_size=trainer.eval_batch_size,
        seed=trainer.seed,
        path=trainer.data_path,
        num_workers=trainer.num_workers,
        memory_format=memory_format,
        pin_memory=trainer.pin_memory,
        persistent_workers=trainer.persistent_workers,
        world=world,
        accumulate=trainer.accumulate,
    )
    classes = data.num_classes if isinstance(data, Data) else 0
    recipe = build_recipe(settings, classes, device, task)
    return Parts(
        data=data,
        task=task,
        model=model,
        model_args=model_args,
        memory_format=memory_format,
        optimizer=optimizer,
        train=train,
        val=val,
        test=test,
        epoch_test=test if trainer.test_every_epoch else None,
        data_path=data_path,
        recipe=recipe,
        wrapped=wrapped,
        global_batch=global_batch(trainer.batch_size, world.size, trainer.accumulate),
    )
