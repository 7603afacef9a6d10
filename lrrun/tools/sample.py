"""``lrrun-sample RUN_DIR``: text from a trained character-level language model.

The model is rebuilt from the checkpoint alone - its plan records the model node, what the
data gave the model (vocab_size, block_size) and the vocabulary (dataset=text's characters,
or a tokens folder's meta itos) - and best.pt's weights (checkpoint.pt with --last, or when
the run kept no best.pt) are loaded without running code from the file. The prompt is
encoded with that vocabulary, and each next token is sampled from the model's last position
(the context cropped to block_size), as nanoGPT's sample.py does: softmax(logits /
temperature), optionally of the top-k; temperature 0 takes the most likely token.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lrrun.errors import ConfigError, LrrunError

DEFAULTS = {"tokens": 200, "temperature": 0.8, "top_k": 200, "seed": 1337}  # nanoGPT's


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lrrun-sample", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument(
        "--prompt", default=None, help="text to continue (default: a newline, or the first token)"
    )
    parser.add_argument("--tokens", type=int, default=DEFAULTS["tokens"], help="tokens to add")
    parser.add_argument("--temperature", type=float, default=DEFAULTS["temperature"])
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULTS["top_k"],
        help="sample among the k most likely (0: all)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--samples", type=int, default=1, help="independent samples")
    parser.add_argument("--last", action="store_true", help="checkpoint.pt, not best.pt")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    for name in ("tokens", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.temperature < 0 or args.top_k < 0:
        parser.error("--temperature and --top-k must be >= 0")
    return args


def load_model(
    run_dir: Path, last: bool = False, device: str = "cpu"
) -> tuple[Any, list[str], int]:
    """(model in eval mode, vocabulary, block_size) of the run in ``run_dir``
    (lrrun.load_run)."""
    from lrrun.tools.use import load_run
    from lrrun.train import checkpoint

    where = f"lrrun-sample {run_dir}"
    names = [checkpoint.NAME] if last else [checkpoint.BEST, checkpoint.NAME]
    if not any((run_dir / n).is_file() for n in names):
        raise ConfigError(
            f"{where}: no {' or '.join(names)} there. Give the run dir of a language-model run "
            "that finished at least one epoch."
        )
    run = load_run(run_dir, "last" if last else "best", device)
    if run.task != "language_model":
        raise ConfigError(
            f"{where}: this run is a {run.task} run; lrrun-sample continues text with a "
            "language model (task=language_model)."
        )
    if not run.classes:
        raise ConfigError(
            f"{where}: the run's data has no decoder (a tokens folder without meta's itos), "
            "so its token ids cannot be turned into text."
        )
    return run.model, list(run.classes), run.block_size


def sample(args: argparse.Namespace) -> list[str]:
    import torch

    from lrrun.models.gpt import generate

    model, vocab, block = load_model(args.run_dir, args.last, args.device)
    stoi = {t: i for i, t in enumerate(vocab)}
    if args.prompt is None:  # nanoGPT's sample.py starts from a newline
        args.prompt = "\n" if "\n" in stoi else vocab[0]
    unknown = sorted({c for c in args.prompt if c not in stoi})
    if unknown:
        raise ConfigError(
            f"--prompt has characters the model never saw: {''.join(unknown)!r}. Its "
            f"vocabulary: {''.join(vocab)!r}."
        )
    prompt = args.prompt or vocab[0]
    idx = torch.tensor([[stoi[c] for c in prompt]] * args.samples, device=args.device)
    generator = torch.Generator(device=idx.device).manual_seed(args.seed)
    out = generate(model, idx, args.tokens, block, args.temperature, args.top_k or None, generator)
    return ["".join(vocab[i] for i in row) for row in out.tolist()]


def main() -> None:
    from lrrun.logs.console import print_error
    from lrrun.tools.common import user_code_importable

    args = parse(sys.argv[1:])
    user_code_importable()  # a model of the user's own package, as training found it
    try:
        texts = sample(args)
    except LrrunError as exc:
        print_error(str(exc))
        sys.exit(2)
    print("\n---------------\n".join(texts))
