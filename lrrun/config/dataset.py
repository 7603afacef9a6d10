"""The dataset node, read into a ``DataSpec``: which source (and its own keys), how the
validation split is made, and the transforms.

Sources (``dataset.source``): ``idx`` (FashionMNIST / MNIST IDX files), ``synthetic``,
``image_folder`` (class folders, with train/ val/ test/ or split), ``tensors`` (an .npz
file), ``torchvision`` (a torchvision dataset class, files already on disk) and
``callable`` (a user's ``_target_`` returning the splits), and the token streams of a
language model: ``text`` (a UTF-8 file, characters as tokens) and ``tokens`` (nanoGPT's
train.bin / val.bin layout). Everything not lrrun's own is the
source's: its ``options`` (for ``callable``, the function's keyword arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lrrun.config.checks import check_node, check_value, show
from lrrun.config.rules import DATASET_RULES, SOURCES
from lrrun.errors import ConfigError

# Keys lrrun reads itself; the rest of the node belongs to the source.
OWN_KEYS = (
    "source",
    "name",
    "val_split",
    "split_seed",
    "normalize",
    "image_size",
    "channels",
    "transforms",
)
REQUIRED = {
    "idx": ("name", "root"),
    "synthetic": ("train_size", "val_size", "test_size", "seed"),
    "image_folder": ("root",),
    "tensors": ("path",),
    "torchvision": ("name", "root"),
    "callable": ("_target_",),
    "text": ("path", "block_size", "steps_per_epoch", "eval_windows"),
    "tokens": ("root", "block_size", "steps_per_epoch", "eval_windows"),
}
TOKEN_SOURCES = ("text", "tokens")
IDX_NAMES = ("fashion_mnist", "mnist")


@dataclass(frozen=True)
class DataSpec:
    """A checked dataset node. ``val_split``: samples (int >= 1) or a share (0 < x < 1) of
    train held out for validation when the source has no val split; 0: none (the test
    split is then the selection split, as before lrrun had a val split)."""

    source: str
    name: str
    options: dict[str, Any]
    task: str = "classification"  # lrrun.config.task: how the targets must look
    val_split: int | float = 0
    split_seed: int = 0
    normalize: bool = True
    image_size: tuple[int, int] | None = None
    channels: int | None = None
    train_transforms: tuple[dict[str, Any], ...] = ()
    eval_transforms: tuple[dict[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """What identifies the data a spec loads (the in-process cache's key)."""
        import json

        return json.dumps(self.__dict__, sort_keys=True, default=str)


def read_dataset(node: dict[str, Any], task: str = "classification") -> DataSpec:
    """The resolved dataset node, checked, as a DataSpec for ``task``."""
    source = _source(node)
    check_node("dataset", node, DATASET_RULES)
    _check_task(source, task)
    for key in REQUIRED[source]:
        if node.get(key) is None or node.get(key) == "???":
            raise ConfigError(
                f"dataset.{key} is missing: dataset.source={source} needs it "
                f"(e.g. dataset.{key}={_EXAMPLE.get((source, key), _EXAMPLE.get(key, '...'))})."
            )
    if source == "idx" and node["name"] not in IDX_NAMES:
        raise ConfigError(
            f"dataset.name={show(node['name'])} is not an IDX dataset lrrun knows: use "
            f"{' or '.join(IDX_NAMES)}, or dataset=torchvision for torchvision's classes."
        )
    size = node.get("image_size")
    transforms = node.get("transforms") or {}
    return DataSpec(
        source=source,
        name=str(node.get("name") or source),
        options={k: v for k, v in node.items() if k not in OWN_KEYS},
        task=task,
        val_split=node.get("val_split", 0) or 0,
        split_seed=int(node.get("split_seed", 0)),
        normalize=bool(node.get("normalize", True)),
        image_size=None
        if size is None
        else ((size, size) if isinstance(size, int) else tuple(size)),
        channels=node.get("channels"),
        train_transforms=_pipeline(transforms, "train"),
        eval_transforms=_pipeline(transforms, "eval"),
    )


_EXAMPLE: dict[Any, Any] = {
    "root": "DIR",
    "path": "FILE.npz",
    "_target_": "mypkg.data.build",
    "name": "CIFAR10",
    "block_size": 64,
    "steps_per_epoch": 250,
    "eval_windows": 200,
    ("text", "path"): "input.txt",
    ("tokens", "root"): "data/shakespeare_char",
}
# Sources whose labels are classes: they cannot hold regression targets.
CLASS_SOURCES = ("idx", "synthetic", "image_folder", "torchvision")


def _check_task(source: str, task: str) -> None:
    """The data source against the task: token streams are a language model's, and only a
    language model's; class-labelled sources are not regression data."""
    if (source in TOKEN_SOURCES) != (task == "language_model"):
        if source in TOKEN_SOURCES:
            raise ConfigError(
                f"dataset={source} holds a token stream, the data of a language model, but "
                f"task={task}. Use task=language_model (dataset={source} sets it unless "
                "the command line says otherwise)."
            )
        raise ConfigError(
            f"task=language_model trains on token streams, and dataset.source={source} holds "
            "samples. Use dataset=text (a UTF-8 file) or dataset=tokens (nanoGPT's layout)."
        )
    if task == "regression" and source in CLASS_SOURCES:
        raise ConfigError(
            f"task=regression needs float targets, and dataset.source={source} holds class "
            "labels. Use dataset=tensors (x_*, float y_* in an .npz) or dataset=custom."
        )


def _source(node: dict[str, Any]) -> str:
    """dataset.source, or for older configs without it: callable with a _target_, else the
    built-in named by dataset.name."""
    source = node.get("source")
    if source is None:
        if "_target_" in node:
            return "callable"
        if node.get("name") == "synthetic":
            return "synthetic"
        if node.get("name") in IDX_NAMES:
            return "idx"
        raise ConfigError(
            "dataset.source is missing: it must be one of " + ", ".join(SOURCES) + "."
        )
    check_value("dataset.source", source, DATASET_RULES["source"])
    return str(source)


def _pipeline(transforms: Any, role: str) -> tuple[dict[str, Any], ...]:
    """dataset.transforms.<role>: a list of ``_target_`` nodes (torchvision transforms.v2 or
    any callable on a CxHxW tensor), checked for shape here, imported when data loads."""
    if not isinstance(transforms, dict):
        raise ConfigError(
            f"dataset.transforms={show(transforms)} must be a mapping with train and eval "
            "lists, e.g. augment=crop_flip, or dataset.transforms.train=[...]."
        )
    steps = transforms.get(role) or []
    where = f"dataset.transforms.{role}"
    if not isinstance(steps, list):
        raise ConfigError(f"{where}={show(steps)} must be a list of transforms ([] for none).")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("_target_"), str):
            raise ConfigError(
                f"{where}[{i}]={show(step)} must be a node with a _target_, e.g. "
                "{_target_:torchvision.transforms.v2.RandomHorizontalFlip}."
            )
    return tuple(steps)
