"""Which jobs of a sweep can share a pass, and why the others cannot.

Members of one pass share what the pass computes once for all of them: the architecture and
its sizes (the ``model`` node), the data and its split (``dataset``, augmentation included),
the task, and the trainer keys that shape a step or an epoch (``SHARED_TRAINER``: batch
sizes, epochs, accumulation, precision, device, the data path). They may differ in
everything a member computes for itself: the seed (init, data order, augmentation, mixing
streams), the optimizer and every hyper-parameter, the scheduler (plateau and composites
included), warm-up, param groups, no_decay, clipping, the loss, mixing, early stopping,
averaged weights and what writes the logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lrrun.train.resume import diff

SHARED_TRAINER = (
    "batch_size",
    "eval_batch_size",
    "epochs",
    "accumulate",
    "precision",
    "device",
    "devices",
    "data_path",
    "num_workers",
    "pin_memory",
    "persistent_workers",
    "channels_last",
    "compile",
    "deterministic",
    "test_every_epoch",
)


def shared(config: dict[str, Any]) -> dict[str, Any]:
    """What every member of a pass must have alike, from a job's resolved config."""
    trainer = config.get("trainer") or {}
    return {
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "task": config.get("task"),
        "trainer": {k: trainer.get(k) for k in SHARED_TRAINER},
    }


@dataclass
class Plan:
    passes: list[list[int]] = field(default_factory=list)  # job numbers, two or more each
    alone: dict[int, str] = field(default_factory=dict)  # job number -> why it runs alone


def plan(
    jobs: Sequence[dict[str, Any]],
    max_members: int | Callable[[int], int],
    limits: Callable[[dict[str, Any]], str | None] = lambda config: None,
) -> Plan:
    """The passes of a sweep's resolved job configs (job number = index), each of at most
    ``max_members`` (or ``max_members(n)`` for the jobs that can share a pass with job n);
    ``limits(config)`` says why a job cannot be fused at all (None: it can)."""
    out, groups = Plan(), {}
    for number, config in enumerate(jobs):
        reason = limits(config)
        if reason is not None:
            out.alone[number] = reason
            continue
        key = json.dumps(shared(config), sort_keys=True, default=repr)
        groups.setdefault(key, []).append(number)
    largest = max(groups, key=lambda k: len(groups[k]), default=None)
    for numbers in groups.values():
        if len(numbers) == 1:
            out.alone[numbers[0]] = _why_alone(jobs, numbers[0], groups.get(largest, []))
            continue
        most = max_members(numbers[0]) if callable(max_members) else max_members
        for start in range(0, len(numbers), most):
            chunk = numbers[start : start + most]
            if len(chunk) > 1:
                out.passes.append(chunk)
            else:
                out.alone[chunk[0]] = f"the last of its kind past max_members={most}"
    return out


def _why_alone(jobs: Sequence[dict[str, Any]], number: int, largest: list[int]) -> str:
    if not largest or largest == [number]:
        return "no other job shares its model, data and step shape"
    other = largest[0]
    changes = diff(shared(jobs[other]), shared(jobs[number]))
    shown = "; ".join(changes[:3]) + (f"; {len(changes) - 3} more" if len(changes) > 3 else "")
    return f"differs from job {other} in what a pass shares: {shown}"
