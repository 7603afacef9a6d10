"""A trained run, ready to use: ``lrrun.load_run(RUN_DIR)``.

The checkpoint holds everything needed (lrrun.train.logbook): the model node and the data's
facts it was built with, the task, the class names, the regression targets' statistics, the
dataset node (decoding: channels, ``image_size``; the eval transforms) and the inputs'
normalisation. ``prepare`` turns raw samples - as the dataset gives them: image files, PIL
images, uint8 or float arrays and tensors, one sample or a batch - into the model's input
exactly as training's evaluation did; ``predict`` runs the model on them.

    run = lrrun.load_run("outputs/2026-12-05/10-00-00-ab12cd")
    run.predict(["cat.png", "dog.png"]).names      # ['cat', 'dog']
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lrrun.config.dataset import read_dataset
from lrrun.data.base import normalise
from lrrun.data.folder import decode
from lrrun.data.items import as_tensor
from lrrun.data.transforms import apply, build
from lrrun.errors import ConfigError
from lrrun.train import checkpoint
from lrrun.train.parts import build_model

BATCH = 256
LANGUAGE_MODEL = "language_model"


@dataclass
class Predictions:
    """What the model says of each sample: classification ``index``, ``names`` and
    ``probs`` (softmax, samples x classes); regression ``values`` (in the targets' units)."""

    index: torch.Tensor | None = None
    names: list[str] = field(default_factory=list)
    probs: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def top(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k most probable classes of each sample: (probabilities, indices)."""
        assert self.probs is not None, "regression has no classes"
        return self.probs.topk(min(k, self.probs.shape[1]), dim=1)


@dataclass
class TrainedRun:
    model: nn.Module  # the chosen epoch's weights (best.pt, else checkpoint.pt), eval mode
    task: str
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    epoch: int  # the epoch whose weights these are
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    target_mean: tuple[float, ...] = ()
    target_std: tuple[float, ...] = ()
    image_size: tuple[int, int] | None = None
    wide: bool = False  # 16-bit images, decoded to float32 in [0, 1]
    eval_steps: tuple[Any, ...] = ()
    source: Path = Path()

    @property
    def block_size(self) -> int:
        """A language model's context: the tokens it sees at most."""
        return self.input_shape[0]

    def prepare(self, samples: Any) -> torch.Tensor:
        """Raw samples as one float32 batch in the model's units (a language model's text:
        its token ids, the last block_size of them)."""
        if self.task == LANGUAGE_MODEL:
            return self._tokens(samples)
        one = self._one_sample(samples)
        items = [samples] if one else list(samples)
        if not items:
            raise ConfigError("no samples to prepare")
        with ThreadPoolExecutor(4) as pool:  # PIL decodes outside Python's lock
            batch = torch.stack(
                list(pool.map(lambda x: apply(self.eval_steps, self._tensor(x)), items))
            )
        if tuple(batch.shape[1:]) != self.input_shape:
            raise ConfigError(
                f"samples of shape {tuple(batch.shape[1:])} do not fit this run's model, "
                f"trained on {self.input_shape}"
            )
        return normalise(batch, self.mean, self.std)

    @torch.inference_mode()
    def predict(self, samples: Any) -> Predictions:
        """Classes (and their probabilities), regression values, or a language model's next
        token after each text."""
        if self.task == LANGUAGE_MODEL:
            return self._next_tokens([samples] if isinstance(samples, str) else list(samples))
        x = self.prepare(samples)
        device = next(self.model.parameters(), torch.empty(0)).device
        out = torch.cat(
            [self.model(x[i : i + BATCH].to(device)).float().cpu() for i in range(0, len(x), BATCH)]
        )
        if self.task == "regression":
            mean, std = torch.tensor(self.target_mean), torch.tensor(self.target_std)
            return Predictions(values=out.reshape(len(x), len(mean)) * std + mean)
        if self.task != "classification":
            raise ConfigError(
                f"predict is for classification and regression; this run is a "
                f"{self.task} (lrrun-sample writes text from it)"
            )
        probs = out.softmax(dim=1)
        index = probs.argmax(dim=1)
        return Predictions(index=index, names=[self.classes[i] for i in index], probs=probs)

    def _tokens(self, text: Any) -> torch.Tensor:
        if not isinstance(text, str):
            return torch.as_tensor(text, dtype=torch.long)[..., -self.block_size :]
        if not self.classes:
            raise ConfigError(
                "this run's tokens have no vocabulary (a tokens folder without "
                "meta.pkl's itos): give token ids, not text"
            )
        stoi = {t: i for i, t in enumerate(self.classes)}
        unknown = sorted({c for c in text if c not in stoi})
        if unknown or not text:
            raise ConfigError(
                f"the text has characters the model never saw: {''.join(unknown)!r}. Its "
                f"vocabulary: {''.join(self.classes)!r}."
                if unknown
                else "no text to prepare"
            )
        return torch.tensor([stoi[c] for c in text[-self.block_size :]])

    def _next_tokens(self, texts: list[Any]) -> Predictions:
        device = next(self.model.parameters(), torch.empty(0)).device
        logits = [self.model(self._tokens(t)[None].to(device))[0, -1].float().cpu() for t in texts]
        probs = torch.stack(logits).softmax(dim=1)
        index = probs.argmax(dim=1)
        names = [self.classes[i] for i in index] if self.classes else [str(int(i)) for i in index]
        return Predictions(index=index, names=names, probs=probs)

    def _one_sample(self, samples: Any) -> bool:
        if isinstance(samples, str | Path) or _is_pil(samples):
            return True
        if torch.is_tensor(samples) or hasattr(samples, "__array__"):
            return len(getattr(samples, "shape", ())) <= len(self.input_shape)
        return False

    def _tensor(self, sample: Any) -> torch.Tensor:
        """One raw sample as training's data gave it, before the eval transforms."""
        if isinstance(sample, str | Path):
            channels = self.input_shape[0] if len(self.input_shape) == 3 else 3
            return decode(str(sample), channels, self.image_size, self.wide)
        if len(self.input_shape) != 3:
            return torch.as_tensor(sample)  # features
        if not (torch.is_tensor(sample) or _is_pil(sample)):
            sample = np.asarray(sample)  # H x W x C arrays are turned as the sources turn them
        return as_tensor(sample, self.input_shape[0], self.image_size)


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.")


def load_run(run_dir: str | Path, weights: str = "best", device: str = "cpu") -> TrainedRun:
    """The run in ``run_dir`` (or a checkpoint file), ready to use. ``weights``: "best"
    (best.pt, the epoch the val split chose; checkpoint.pt when there is none) or "last".
    The weights are those the run selected (trainer.select: the model's, or an average's);
    a language model's classes are its vocabulary."""
    path = Path(run_dir).expanduser()
    if path.is_dir():
        best = path / checkpoint.BEST
        path = best if weights == "best" and best.is_file() else path / checkpoint.NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no checkpoint there (a run dir holds checkpoint.pt)")
    saved = checkpoint.read(path, where=f"lrrun.load_run({str(run_dir)!r})")
    plan = saved.plan
    data = plan["data"]
    model, _ = build_model(plan["model"], data.get("model_args") or {})
    model.load_state_dict(saved.weights())
    if data.get("task") == LANGUAGE_MODEL:  # its classes: the vocabulary
        return TrainedRun(
            model=model.to(device).eval(),
            task=LANGUAGE_MODEL,
            classes=tuple(data.get("vocab") or ()),
            input_shape=(int(data["block_size"]),),
            epoch=saved.epoch,
            source=path,
        )
    inputs = saved.inputs
    if inputs is None:
        raise ConfigError(
            f"{path} was written by an lrrun that did not record its inputs' normalisation; "
            "train the run again (or resume it for one epoch) to use it"
        )
    spec = read_dataset(plan["dataset"], data.get("task", "classification"))
    targets = data.get("targets") or {}
    return TrainedRun(
        model=model.to(device).eval(),
        task=data.get("task", "classification"),
        classes=tuple(data["classes"]),
        input_shape=tuple(data["input_shape"]),
        epoch=saved.epoch,
        mean=tuple(inputs["mean"]),
        std=tuple(inputs["std"]),
        target_mean=tuple(targets.get("mean", ())),
        target_std=tuple(targets.get("std", ())),
        image_size=spec.image_size,
        wide=inputs.get("wide", False),
        eval_steps=tuple(build(list(spec.eval_transforms), "eval")),
        source=path,
    )


def files_in(inputs: Sequence[str]) -> list[tuple[str, str | None]]:
    """(file, label) of every image an INPUT names: files, or folders searched recursively
    (the label is the folder a file lies in, for ImageFolder layouts)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    out: list[tuple[str, str | None]] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
            out += [(str(p), p.parent.name if p.parent != path else None) for p in found]
        elif path.is_file():
            out.append((str(path), None))
        else:
            raise ConfigError(f"{given}: no such file or folder")
    return out
