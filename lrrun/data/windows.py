"""A language model's batches: windows of ``block_size + 1`` tokens, split into inputs (the
first block_size) and targets (the next token at every position), as nanoGPT's get_batch.

- Training (``RandomWindows``): each batch draws its window starts uniformly, as nanoGPT does,
  from a generator seeded by (seed, epoch, batch): a pure function, so a resumed run draws the
  same windows. A data-parallel run draws one global batch of batch_size x processes starts
  and each rank takes its shard of it, so the ranks stream distinct windows and together see
  what one process with the global batch would. An epoch is ``dataset.steps_per_epoch``
  optimizer steps (x trainer.accumulate batches): an evaluation interval.
- Evaluation (``FixedWindows``): ``dataset.eval_windows`` windows spread evenly over the
  split, the same at every evaluation and for every config of a sweep, so curves compare; or
  ``all``: the whole split in order, block after block (the last window may be shorter: the
  loss is summed per token, lrrun.tasks.language_model).

The stream lives on the device when it fits (lrrun.data.tokens): a batch is one gather.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from lrrun.data.tokens import TokenData, TokenSplit
from lrrun.world import SINGLE, World, shard


def window_seed(seed: int, epoch: int, batch: int) -> int:
    """The seed of training batch ``batch`` (0-based, within the epoch) of ``epoch``."""
    return ((seed * 1_000_003 + epoch) * 1_000_037 + batch) % 2**63


def random_starts(n: int, length: int, count: int, seed: int) -> torch.Tensor:
    """``count`` window starts in [0, n - length], uniform, as nanoGPT's torch.randint."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(n - length + 1, (count,), generator=generator)


def even_starts(n: int, length: int, count: int | str) -> list[tuple[int, int]]:
    """(start, length) of the fixed evaluation windows: ``count`` spread evenly, or all."""
    if count == "all":
        block = length - 1
        return [(s, min(length, n - s)) for s in range(0, n - 1, block)]
    last = n - length
    count = min(int(count), last + 1)
    if count == 1:
        return [(0, length)]
    return [(i * last // (count - 1), length) for i in range(count)]


def gather(
    tokens: torch.Tensor | np.ndarray, starts: torch.Tensor, length: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of the windows at ``starts``, int64 on ``device``."""
    if torch.is_tensor(tokens):
        index = starts.to(tokens.device)[:, None] + torch.arange(length, device=tokens.device)
        windows = tokens[index].long()
    else:  # a memory map: read just these windows
        index = starts.numpy()[:, None] + np.arange(length)
        windows = torch.from_numpy(tokens[index].astype(np.int64))
    windows = windows.to(device, non_blocking=device.type == "cuda")
    return windows[:, :-1], windows[:, 1:]


def _on(split: TokenSplit, device: torch.device) -> torch.Tensor | np.ndarray:
    return split.tokens.to(device) if split.in_memory else split.tokens


class RandomWindows:
    """Training batches: ``batches`` per epoch of random windows (see the module docstring)."""

    def __init__(
        self,
        split: TokenSplit,
        block_size: int,
        batch_size: int,
        batches: int,
        device: torch.device,
        seed: int,
        world: World = SINGLE,
    ) -> None:
        self.tokens, self.n = _on(split, device), len(split)
        self.length, self.batch_size, self.batches = block_size + 1, batch_size, batches
        self.device, self.seed, self.world, self.epoch = device, seed, world, 1

    def __len__(self) -> int:
        return self.batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def starts(self, batch: int) -> torch.Tensor:
        """This rank's window starts for ``batch`` of the current epoch."""
        seed = window_seed(self.seed, self.epoch, batch)
        count = self.batch_size * self.world.size
        return shard(random_starts(self.n, self.length, count, seed), self.world)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in range(self.batches):
            yield gather(self.tokens, self.starts(batch), self.length, self.device)


class FixedWindows:
    """Evaluation batches: the split's fixed windows (this rank's share of them, unpadded)."""

    def __init__(
        self,
        split: TokenSplit,
        block_size: int,
        count: int | str,
        batch_size: int,
        device: torch.device,
        world: World = SINGLE,
    ) -> None:
        self.tokens, self.device, self.batch_size = _on(split, device), device, batch_size
        windows = even_starts(len(split), block_size + 1, count)
        mine = shard(torch.arange(len(windows)), world, pad=False).tolist()
        self.windows = [windows[i] for i in mine]
        self.batches = _batched(self.windows, batch_size)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for starts, length in self.batches:
            yield gather(self.tokens, starts, length, self.device)


def _batched(windows: list[tuple[int, int]], size: int) -> list[tuple[torch.Tensor, int]]:
    """(starts, length) batches of up to ``size`` windows of one length (a short last window
    of ``all`` goes alone)."""
    out: list[tuple[torch.Tensor, int]] = []
    run: list[int] = []
    length = 0
    for start, n in windows:
        if run and (len(run) == size or n != length):
            out.append((torch.tensor(run), length))
            run = []
        run.append(start)
        length = n
    if run:
        out.append((torch.tensor(run), length))
    return out


def window_batches(
    data: TokenData,
    device: torch.device,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    accumulate: int = 1,
    world: World = SINGLE,
) -> tuple[RandomWindows, FixedWindows, FixedWindows | None]:
    """Training, validation and test batches of a language model's data."""
    batches = data.steps_per_epoch * accumulate
    train = RandomWindows(data.train, data.block_size, batch_size, batches, device, seed, world)
    val, test = (
        FixedWindows(s, data.block_size, data.eval_windows, eval_batch_size, device, world)
        if s is not None
        else None
        for s in (data.val, data.test)
    )
    assert val is not None
    return train, val, test
