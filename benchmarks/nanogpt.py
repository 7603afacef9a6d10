"""lrrun's nanoGPT CPU run against a loop in nanoGPT's style, on the same char-level corpus.

The corpus: Debian's ``fortunes`` package (about 2.5 MB of plain English; ``apt-get install
fortunes``), prepared as nanoGPT's data/shakespeare_char/prepare.py prepares its text: the
sorted characters as the vocabulary, the first 90% as train.bin, the rest as val.bin
(uint16), meta.pkl with vocab_size, itos and stoi. Both sides then train nanoGPT's README CPU
configuration for 2000 iterations - a 4-layer, 4-head, 128-wide GPT (lrrun.models.gpt, the
same module and the same seed in both), block 64, batch 12, AdamW (lr 1e-3, betas 0.9/0.99,
weight decay 0.1 on >= 2-D weights), clip 1.0, nanoGPT's get_lr (warm-up 100, cosine to 1e-4)
- and evaluate every 250 iterations on the same 240 fixed val windows (lrrun.data.windows'
even_starts).

- hand: nanoGPT's train.py loop written out: get_batch (random windows from the memory map,
  the global torch RNG), the lr set from get_lr each iteration, forward, cross-entropy,
  backward, clip, step, zero_grad, an evaluation every 250 iterations;
- lrrun: ``lrrun experiment=nanogpt_char_cpu dataset.root=DIR`` in its own process.

Time per iteration: each side's training and evaluation time over the 2000 iterations (lrrun:
metrics.csv's epoch_time_s; start-up, data preparation and checkpoints left out of both),
measured in this one run, so the ratio holds on any machine. Both val losses are on the same
windows; they differ by the two sides' own random windows (lrrun seeds them per batch).

    python benchmarks/nanogpt.py [--iters 2000] [--root data/fortunes_char]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FORTUNES = Path("/usr/share/games/fortunes")
CONFIG = {
    "n_layer": 4,
    "n_head": 4,
    "n_embd": 128,
    "block_size": 64,
    "batch_size": 12,
    "lr": 1e-3,
    "min_lr": 1e-4,
    "warmup": 100,
    "eval_interval": 250,
    "eval_windows": 240,
    "weight_decay": 0.1,
    "betas": (0.9, 0.99),
    "grad_clip": 1.0,
    "seed": 42,
}


def prepare(root: Path) -> Path:
    """The fortunes corpus in nanoGPT's char layout (as its shakespeare_char/prepare.py)."""
    if (root / "meta.pkl").is_file():
        return root
    files = sorted(p for p in FORTUNES.iterdir() if p.is_file() and p.suffix not in (".dat", ".u8"))
    if not files:
        sys.exit(f"no corpus: install Debian's fortunes (apt-get install fortunes) for {FORTUNES}")
    data = "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    chars = sorted(set(data))
    stoi = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([stoi[c] for c in data], dtype=np.uint16)
    n = int(0.9 * len(ids))
    root.mkdir(parents=True, exist_ok=True)
    ids[:n].tofile(root / "train.bin")
    ids[n:].tofile(root / "val.bin")
    with (root / "meta.pkl").open("wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)
    print(
        f"prepared {root}: {len(data):,} characters, vocabulary {len(chars)}, "
        f"{n:,} train / {len(ids) - n:,} val tokens"
    )
    return root


def get_lr(it: int, iters: int) -> float:
    """nanoGPT's get_lr (lr_decay_iters = max_iters)."""
    c = CONFIG
    if it < c["warmup"]:
        return c["lr"] * (it + 1) / (c["warmup"] + 1)
    if it > iters:
        return c["min_lr"]
    coeff = 0.5 * (1.0 + math.cos(math.pi * (it - c["warmup"]) / (iters - c["warmup"])))
    return c["min_lr"] + coeff * (c["lr"] - c["min_lr"])


def hand_loop(root: Path, iters: int) -> tuple[list[float], float]:
    """nanoGPT's train.py loop; (val loss at each evaluation, training + evaluation seconds)."""
    import torch
    import torch.nn.functional as F

    from lrrun.data.windows import even_starts
    from lrrun.models.gpt import GPT

    c = CONFIG
    train = np.memmap(root / "train.bin", dtype=np.uint16, mode="r")
    val = np.memmap(root / "val.bin", dtype=np.uint16, mode="r")
    with (root / "meta.pkl").open("rb") as f:
        vocab = pickle.load(f)["vocab_size"]
    block, batch = c["block_size"], c["batch_size"]
    starts = [s for s, _ in even_starts(len(val), block + 1, c["eval_windows"])]
    torch.manual_seed(c["seed"])
    model = GPT(vocab, block, c["n_layer"], c["n_head"], c["n_embd"], 0.0, False)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": c["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=c["lr"],
        betas=c["betas"],
    )

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(train) - block, (batch,))
        x = torch.stack([torch.from_numpy(train[i : i + block].astype(np.int64)) for i in ix])
        y = torch.stack(
            [torch.from_numpy(train[i + 1 : i + 1 + block].astype(np.int64)) for i in ix]
        )
        return x, y

    @torch.no_grad()
    def estimate_loss() -> float:
        model.eval()
        losses = []
        for i in range(0, len(starts), 128):
            part = starts[i : i + 128]
            w = torch.stack(
                [torch.from_numpy(val[s : s + block + 1].astype(np.int64)) for s in part]
            )
            logits = model(w[:, :-1])
            losses.append(
                F.cross_entropy(logits.flatten(0, 1), w[:, 1:].flatten(), reduction="sum")
            )
        model.train()
        return (sum(losses) / (len(starts) * block)).item()

    evals = []
    start = time.perf_counter()
    for it in range(iters):
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it, iters)
        x, y = get_batch()
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (it + 1) % c["eval_interval"] == 0:
            evals.append(estimate_loss())
            print(f"  hand  iter {it + 1}: val loss {evals[-1]:.4f}", flush=True)
    return evals, time.perf_counter() - start


def lrrun_run(root: Path, iters: int, out: Path) -> tuple[list[float], float, float]:
    """(val losses, training + evaluation seconds, wall seconds of the whole command)."""
    epochs = iters // CONFIG["eval_interval"]
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lrrun",
            "experiment=nanogpt_char_cpu",
            f"dataset.root={root}",
            f"trainer.epochs={epochs}",
            "trainer.progress=false",
            "trainer.plot=false",
            f"hydra.run.dir={out}",
        ],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(r["val_loss"]) for r in rows], sum(float(r["epoch_time_s"]) for r in rows), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "fortunes_char")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    root = prepare(args.root)
    import shutil
    import tempfile

    import torch

    out = Path(tempfile.mkdtemp(prefix="lrrun-nanogpt-")) / "run"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.iters} iterations")
    hand, hand_s = hand_loop(root, args.iters)
    ours, ours_s, wall = lrrun_run(root, args.iters, out)
    shutil.rmtree(out.parent, ignore_errors=True)
    print("\nval loss every 250 iterations (the same 240 windows)")
    print("  hand  " + " ".join(f"{v:.4f}" for v in hand))
    print("  lrrun " + " ".join(f"{v:.4f}" for v in ours))
    print("\n| loop | final val loss | s / iteration | vs hand |\n|---|---|---|---|")
    print(f"| nanoGPT-style hand loop | {hand[-1]:.4f} | {hand_s / args.iters:.4f} | 1.00x |")
    print(
        f"| lrrun experiment=nanogpt_char_cpu | {ours[-1]:.4f} | {ours_s / args.iters:.4f} | "
        f"{ours_s / hand_s:.2f}x |"
    )
    print(
        f"\nval loss difference (lrrun - hand): {ours[-1] - hand[-1]:+.4f}; lrrun's whole "
        f"command {wall:.1f} s (start-up, checkpoints and test included)"
    )


if __name__ == "__main__":
    main()
