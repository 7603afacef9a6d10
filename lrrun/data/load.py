"""``load_data``: the dataset a DataSpec names, its splits in their roles, once per process.

source -> (decode once into memory, when asked or when it fits) -> roles (lrrun.data.splits)
-> eval transforms (once, for splits in memory) -> the train split's normalisation (and, for
regression, its targets' mean and std) -> Data. Token streams (dataset=text, dataset=tokens)
are a language model's: lrrun.data.tokens -> TokenData.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lrrun.config.dataset import TOKEN_SOURCES, DataSpec
from lrrun.data.arrays import load_arrays
from lrrun.data.base import Data, Loaded, Split, dims
from lrrun.data.base import measure as channel_stats
from lrrun.data.folder import FolderItems, check_headers, load_folder
from lrrun.data.idx import load_idx
from lrrun.data.library import load_callable, load_torchvision
from lrrun.data.memory import decode_all, estimate_nbytes, fits_on
from lrrun.data.splits import assign_roles
from lrrun.data.synthetic import load_synthetic
from lrrun.data.tokens import TokenData, load_text, load_tokens
from lrrun.data.transforms import apply, build, sample_seed, seeded
from lrrun.errors import ConfigError, DataError

SOURCES: dict[str, Callable[[DataSpec], Loaded]] = {
    "idx": load_idx,
    "synthetic": load_synthetic,
    "image_folder": load_folder,
    "tensors": load_arrays,
    "torchvision": load_torchvision,
    "callable": load_callable,
}
STATS_SAMPLES = 10_000  # normalisation of per-sample sources: measured on this many, seeded

_CACHE: dict[str, tuple[Loaded | None, dict[bool, Any]]] = {}


def load_data(
    spec: DataSpec, memory: bool | None = True, device: torch.device | None = None
) -> Data | TokenData:
    """The data ``spec`` names. ``memory``: decode per-sample sources (image folders, other
    datasets) into memory once; False keeps them per sample (the DataLoader path); None does
    so when they fit in half of ``device``'s free memory. Sources held in arrays (IDX, .npz,
    synthetic, most torchvision classes) are always in memory.

    Kept once per process: Hydra's basic launcher runs every job of a sweep in one process,
    so a 16-job sweep reads and measures its dataset once. Tensors are never modified in
    place, so sharing them between jobs is safe.
    """
    if spec.source in TOKEN_SOURCES:
        return _token_stream(spec, memory, device)
    loaded, made = _source(spec)
    assert loaded is not None
    if memory is None:
        splits = (loaded.train, loaded.val, loaded.test)
        memory = fits_on(
            device or torch.device("cpu"), sum(estimate_nbytes(s) for s in splits if s)
        )
    if memory not in made:
        made[memory] = _load(spec, loaded, memory)
    return made[memory]


def _source(spec: DataSpec) -> tuple[Loaded | None, dict[bool, Any]]:
    """What the source read, and the Data made of it so far; one dataset kept (sweeps rarely
    alternate between datasets)."""
    if spec.key not in _CACHE:
        _CACHE.clear()
        loaded = None if spec.source in TOKEN_SOURCES else SOURCES[spec.source](spec)
        _CACHE[spec.key] = (loaded, {})
    return _CACHE[spec.key]


# The largest token stream kept in memory (as int32) without being asked: a multi-GB token
# file is read window by window from its memory map, never loaded whole.
RESIDENT_TOKENS_BYTES = 1 << 30


def _token_stream(spec: DataSpec, memory: bool | None, device: torch.device | None) -> TokenData:
    """A language model's token streams: in memory when asked (trainer.data_path=tensor), or
    when they are at most 1 GiB and fit in half the device's free memory (a text file always
    is: it was read whole to find its characters); else memory-mapped."""
    _, made = _source(spec)
    if spec.source == "text":
        memory = True
    elif memory is None:
        root = Path(spec.options["root"]).expanduser()
        size = sum(p.stat().st_size * 2 for p in root.glob("*.bin"))  # uint16 -> int32
        memory = size <= RESIDENT_TOKENS_BYTES and fits_on(device or torch.device("cpu"), size)
    if memory not in made:
        made[memory] = load_text(spec) if spec.source == "text" else load_tokens(spec, memory)
    return made[memory]


def describe(spec: DataSpec) -> Data | TokenData:
    """The data's splits, classes and sample shape without decoding per-sample sources or
    measuring normalisation (lrrun-preview: batches per epoch, the model's facts)."""
    if spec.source in TOKEN_SOURCES:
        return _token_stream(spec, False, None)
    loaded = _source(spec)[0]
    assert loaded is not None
    return _load(spec, loaded, memory=False, measure=False)


def _load(spec: DataSpec, loaded: Loaded, memory: bool, measure: bool = True) -> Data:
    splits = {"train": loaded.train, "val": loaded.val, "test": loaded.test}
    if memory:
        splits = {k: decode_all(s, f"{k} split") if s else None for k, s in splits.items()}
    elif measure:  # the DataLoader path decodes while training: its files are checked now
        for k, s in splits.items():
            if s is not None and isinstance(s.items, FolderItems):
                check_headers(s.items, f"{k} split")
    if spec.image_size is not None:
        splits = {k: _resized(s, spec.image_size) if s else None for k, s in splits.items()}
    if spec.task == "classification":
        _two_classes(splits["train"], loaded.classes)
    train, val, test, selection, how = assign_roles(
        splits["train"], splits["val"], splits["test"], spec.val_split, spec.split_seed
    )
    eval_steps = build(spec.eval_transforms, "eval")
    val, test = (_pre_applied(s, eval_steps) if s else None for s in (val, test))
    mean, std = (), ()
    if spec.normalize and not loaded.normalised and measure:
        sampled = not loaded.train.in_memory  # a per-sample source, whichever path reads it
        mean, std = channel_stats(_stats_sample(train, spec.split_seed, sampled))
    augment = build(spec.train_transforms, "train")
    shape = _input_shape(train, val, augment, eval_steps)
    target_mean, target_std = target_stats(train.labels) if spec.task == "regression" else ((), ())
    return Data(
        name=spec.name,
        train=train,
        val=val,
        test=test,
        source=loaded.source,
        classes=loaded.classes,
        input_shape=shape,
        mean=mean,
        std=std,
        selection=selection,
        val_from=how,
        root=loaded.root,
        augment=tuple(augment),
        eval_steps=tuple(eval_steps),
        target_mean=target_mean,
        target_std=target_std,
    )


def _two_classes(train: Split, classes: tuple[str, ...]) -> None:
    """A classifier's train split must hold at least two classes: with one, every prediction
    is right and "acc 1.0000" says nothing."""
    present = train.labels.unique().tolist()
    if len(present) < 2:
        name = classes[present[0]] if present and present[0] < len(classes) else "?"
        raise DataError(
            f"the train split holds one class ({name}, {len(train)} samples): a classifier "
            "needs at least two to tell apart, and would score accuracy 1.0 on one. Add the "
            "other classes' samples (or, for float targets, use task=regression)."
        )


def target_stats(targets: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each regression target's mean and std on the train split (a constant target: std 1)."""
    values = targets.double()
    mean, std = values.mean(0), values.std(0) if len(values) > 1 else torch.ones(values.shape[1])
    std = torch.where(std > 0, std, torch.ones_like(std))
    return tuple(mean.tolist()), tuple(std.tolist())


def _resized(split: Split, size: tuple[int, int]) -> Split:
    """In-memory images at dataset.image_size (per-sample sources resize as they decode)."""
    if not split.in_memory or split.images.dim() != 4 or tuple(split.images.shape[-2:]) == size:
        return split
    from torchvision.transforms.v2 import functional as TF

    return Split(TF.resize(split.images, list(size), antialias=True).contiguous(), split.labels)


def _pre_applied(split: Split, steps: list) -> Split:
    """Eval transforms (deterministic) applied once to a split in memory; a split read per
    sample gets them as each sample is read (lrrun.data.batches)."""
    if not steps or not split.in_memory:
        return split
    return Split(torch.stack([apply(steps, x) for x in split.images]), split.labels)


def _stats_sample(train: Split, seed: int, sampled: bool) -> torch.Tensor:
    """The train samples normalisation is measured on: all of an array source's; for a
    per-sample source (files, other datasets) a seeded sample of STATS_SAMPLES, the same
    whether the split was decoded into memory or not, so both data paths normalise alike."""
    if not sampled:
        return train.images
    n = len(train)
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:STATS_SAMPLES]
    index = index.sort().values
    if train.in_memory:
        return train.images[index]
    return torch.stack([torch.as_tensor(train.items[i][0]) for i in index.tolist()])


def _input_shape(train: Split, val: Split, train_steps: list, eval_steps: list) -> tuple[int, ...]:
    """One sample as the model gets it; train samples after augmentation must match it."""
    first = val.images[0] if val.in_memory else apply(eval_steps, val.items[0][0])
    if train_steps:
        raw = train.images[0] if train.in_memory else train.items[0][0]
        augmented = seeded(train_steps, raw, sample_seed(0, 1, 0))
        if augmented.shape != first.shape:
            raise ConfigError(
                f"dataset.transforms.train makes samples {dims(augmented.shape)} but val samples are "
                f"{dims(first.shape)}: both must give the model one size. Match the crop sizes "
                "(e.g. RandomCrop size = the image size), or set dataset.transforms.eval."
            )
    return tuple(first.shape)
