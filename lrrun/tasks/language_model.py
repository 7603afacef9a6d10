"""A language model: logits (batch, time, vocab) against the next token at every position.
The loss is cross-entropy per token (in nats), averaged over every token of the epoch or the
evaluated split - never per window; ppl = exp(loss)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from lrrun.config.task import TASKS
from lrrun.errors import ConfigError
from lrrun.tasks.base import Criterion, Sums, Task, output_shape


class LanguageModel(Task):
    spec = TASKS["language_model"]

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def criterion(self, loss: Criterion) -> Criterion:
        def per_token(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return loss(out.flatten(0, 1), targets.flatten())

        return per_token

    def meter(self, train: bool) -> TokenMeter:
        return TokenMeter(train)

    def check_output(self, out: Any, batch: torch.Tensor, where: str) -> None:
        got = output_shape(out)
        n, t = batch.shape
        if not (
            isinstance(got, tuple)
            and len(got) == 3
            and got[:2] == (n, t)
            and got[2] >= self.vocab_size
        ):
            raise ConfigError(
                f"{where} returns {got} for a batch of {n}x{t} token ids; lrrun needs logits of "
                f"shape ({n}, {t}, {self.vocab_size}) (batch, time, vocab). Give the model "
                f"vocab_size={self.vocab_size} (lrrun passes vocab_size and block_size when the "
                "constructor takes them) and return logits at every position."
            )


class TokenMeter:
    def __init__(self, train: bool = False) -> None:
        self.sums, self.train = Sums(), train

    def add(
        self, out: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor | None = None
    ) -> None:
        tokens = targets.numel()
        if loss is None:  # evaluation: summed over every token, so a short window counts less
            summed = F.cross_entropy(out.float().flatten(0, 1), targets.flatten(), reduction="sum")
        else:
            summed = loss * tokens
        self.sums.add(tokens, loss=summed)

    def means(self) -> dict[str, float]:
        sums, tokens = self.sums.read()
        loss = sums["loss"][0] / tokens
        if self.train:
            return {"loss": loss}
        return {"loss": loss, "ppl": math.exp(loss) if loss < 700 else math.inf}
