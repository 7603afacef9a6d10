"""task=language_model through the CLI as a user runs it: a character-level text file and
nanoGPT's prepared folder, the GPT learning, its lr against torch, random windows that resume
bit-exact, fixed evaluation windows measured per token, meta.pkl read without running code,
lrrun-sample, and every bad input refused in one line."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import lrrun
from lrrun.data.tokens import TokenSplit
from lrrun.data.windows import FixedWindows, RandomWindows, even_starts
from lrrun.tasks.language_model import LanguageModel
from lrrun.world import World
from tests.conftest import assert_ok, read_csv, run_cli
from tests.sources import write_text, write_tokens
from tests.train.test_recipes import one_cycle

FAST = ["trainer.device=cpu", "trainer.progress=false", "trainer.plot=false"]
TINY_GPT = [
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=32",
    "dataset.block_size=16",
    "dataset.eval_windows=32",
    "trainer.batch_size=16",
    "optimizer=adamw",
]


def lm(text: str = "t.txt", epochs: int = 3, per_epoch: int = 50) -> list[str]:
    return [
        "dataset=text",
        f"dataset.path={text}",
        *TINY_GPT,
        f"trainer.epochs={epochs}",
        f"dataset.steps_per_epoch={per_epoch}",
        *FAST,
    ]


def test_a_char_model_learns_text_and_samples_it(tmp_path: Path) -> None:
    """150 optimizer steps take the per-token loss far below ln(vocabulary) (a uniform
    guess); the lr of every step is torch's OneCycleLR over those 150 steps; lrrun-sample
    continues a prompt from best.pt."""
    write_text(tmp_path / "t.txt", 20_000)
    args = [*lm(), "scheduler=one_cycle_lr", "optimizer.lr=0.01", "hydra.run.dir=run"]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    run = tmp_path / "run"
    steps = read_csv(run / "steps.csv")
    assert [float(r["lr"]) for r in steps] == pytest.approx(one_cycle(150), rel=1e-12, abs=0)
    metrics = read_csv(run / "metrics.csv")
    assert list(metrics[0]) == [
        "epoch",
        "lr",
        "train_loss",
        "val_loss",
        "val_ppl",
        "test_loss",
        "test_ppl",
        "epoch_time_s",
    ]
    status = json.loads((run / "status.json").read_text())
    vocab = status["data"]["vocab"]
    assert status["data"]["task"] == "language_model" and len(vocab) == 28
    assert status["data"]["model_args"] == {"vocab_size": 28, "block_size": 16}
    final = float(metrics[-1]["val_loss"])
    assert final < 0.4 * math.log(len(vocab))  # ln(28) = 3.33: far better than a guess
    assert float(metrics[-1]["val_ppl"]) == pytest.approx(math.exp(final), rel=1e-9)
    assert float(steps[0]["loss"]) == pytest.approx(math.log(len(vocab)), abs=0.3)
    out = " ".join(proc.stdout.split())
    assert "selects on val_loss (lower is better)" in out
    assert "an epoch is 50 optimizer steps of random windows (seeded)" in out
    assert "from the data: vocab_size=28, block_size=16" in out

    sample = ["run", "--prompt", "the q", "--tokens", "40", "--seed", "3"]
    one, two = (run_cli(sample, tmp_path, prog="lrrun-sample") for _ in range(2))
    assert_ok(one)
    text = one.stdout.rstrip("\n")
    assert one.stdout == two.stdout and text.startswith("the q") and len(text) == 45
    assert set(text) <= set(vocab)
    greedy = run_cli([*sample, "--temperature", "0"], tmp_path, prog="lrrun-sample")
    assert greedy.stdout.startswith("the quick")  # it learnt the text it read
    # the same model through the public API: its classes are the vocabulary, and predict
    # gives the next token after each text (greedy sampling's first choice)
    used = lrrun.load_run(tmp_path / "run")
    assert used.task == "language_model" and "".join(used.classes) == "".join(vocab)
    said = used.predict(["the q", "the quick brown"])
    assert said.names[0] == greedy.stdout[5] and said.probs.shape == (2, len(vocab))
    assert torch.allclose(said.probs.sum(dim=1), torch.ones(2))


@pytest.mark.slow
def test_random_windows_resume_bit_exact(tmp_path: Path) -> None:
    write_text(tmp_path / "t.txt", 8_000)
    args = [*lm(per_epoch=6), "scheduler=exponential_lr", "scheduler.interval=step"]
    assert_ok(run_cli([*args, "trainer.epochs=4", "hydra.run.dir=full"], tmp_path))
    assert_ok(run_cli([*args, "trainer.epochs=2", "hydra.run.dir=part"], tmp_path))
    assert_ok(run_cli([*args, "trainer.epochs=4", "trainer.resume=part"], tmp_path))
    for name in ("steps.csv", "metrics.csv"):
        full, part = read_csv(tmp_path / "full" / name), read_csv(tmp_path / "part" / name)
        drop = "epoch_time_s"
        assert [{k: v for k, v in r.items() if k != drop} for r in part] == [
            {k: v for k, v in r.items() if k != drop} for r in full
        ]


def test_windows_are_seeded_and_sharded() -> None:
    """A batch's windows are a pure function of (seed, epoch, batch); two ranks take the two
    halves of one global draw: distinct windows, together one process's batch of twice the
    size."""
    split = TokenSplit(torch.arange(10_000, dtype=torch.int32))
    cpu = torch.device("cpu")

    def starts(batch: int, world: World, epoch: int = 1, size: int = 8) -> list[int]:
        windows = RandomWindows(split, 16, size, 3, cpu, seed=7, world=world)
        windows.set_epoch(epoch)
        return windows.starts(batch).tolist()

    one = World()
    assert starts(0, one) == starts(0, one) and starts(0, one) != starts(1, one)
    assert starts(0, one) != starts(0, one, epoch=2)
    rank0, rank1 = starts(2, World(0, 2)), starts(2, World(1, 2))
    assert not set(rank0) & set(rank1)
    assert sorted(rank0 + rank1) == sorted(starts(2, one, size=16))
    x, y = next(iter(RandomWindows(split, 16, 8, 3, cpu, seed=7)))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets: the next token at every position


def test_evaluation_windows_are_fixed_and_measured_per_token() -> None:
    assert even_starts(100, 11, 4) == [(0, 11), (29, 11), (59, 11), (89, 11)]
    every = even_starts(25, 11, "all")  # 10 tokens of context: blocks of 10, the last short
    assert every == [(0, 11), (10, 11), (20, 5)]
    tokens = torch.arange(25, dtype=torch.int32) % 7
    batches = list(FixedWindows(TokenSplit(tokens), 10, "all", 2, torch.device("cpu")))
    assert [x.shape for x, _ in batches] == [(2, 10), (1, 4)]  # one length per batch
    assert torch.equal(torch.cat([y.flatten() for _, y in batches]), tokens[1:].long())
    # per token: the short window counts for its 4 tokens, not as a whole window
    logits = [torch.randn(*x.shape, 7) for x, _ in batches]
    meter = LanguageModel(7).meter(train=False)
    for out, (_, y) in zip(logits, batches, strict=True):
        meter.add(out, y)
    flat = torch.cat([o.flatten(0, 1) for o in logits])
    expected = torch.nn.functional.cross_entropy(flat, tokens[1:].long()).item()
    assert meter.means()["loss"] == pytest.approx(expected, rel=1e-6)


def test_a_nanogpt_folder_with_meta_pkl_and_meta_json(tmp_path: Path) -> None:
    for meta in ("pkl", "json"):
        write_tokens(tmp_path / meta, 6_000, meta=meta)
        proc = run_cli(
            [
                "dataset=tokens",
                f"dataset.root={meta}",
                *TINY_GPT,
                "trainer.epochs=1",
                "dataset.steps_per_epoch=5",
                *FAST,
                f"hydra.run.dir=run_{meta}",
            ],
            tmp_path,
        )
        assert_ok(proc)
        status = json.loads((tmp_path / f"run_{meta}" / "status.json").read_text())
        assert "".join(status["data"]["vocab"]) == " .abcdefghiklmnopqrstuvwxyz"[:27] or (
            len(status["data"]["vocab"]) == status["data"]["vocab_size"]
        )
        assert status["data"]["test"] is None  # nanoGPT's layout has no test.bin here


class Boom:
    """A pickle payload: unpickled by pickle.load, it would run os.system."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_a_meta_pkl_that_would_run_code_is_refused(tmp_path: Path) -> None:
    root = write_tokens(tmp_path / "evil", 6_000)
    with (root / "meta.pkl").open("wb") as f:
        pickle.dump({"vocab_size": 27, "hook": Boom()}, f)
    proc = run_cli(
        ["dataset=tokens", "dataset.root=evil", *TINY_GPT, *FAST, "hydra.run.dir=run"], tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "meta.pkl holds more than plain values (it names posix.system)" in proc.stderr
    assert "lrrun refused it and ran nothing" in proc.stderr
    assert not (tmp_path / "PWNED").exists()


def token_errors(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "empty.txt").write_text("")
    (tmp / "one.txt").write_text("aaaa")
    (tmp / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 50)
    write_text(tmp / "short.txt", 300)
    write_tokens(tmp / "nometa", 3000, meta="none")
    big = write_tokens(tmp / "big", 3000)
    np.array([0, 1, 90, 2] * 100, dtype=np.uint16).tofile(big / "val.bin")
    odd = write_tokens(tmp / "odd", 3000)
    (odd / "train.bin").write_bytes(b"\x01\x02\x03")
    return [
        (["dataset=text", "dataset.path=missing.txt"], "dataset.path=missing.txt: no such file"),
        (["dataset=text", "dataset.path=empty.txt"], "holds 0 character(s) with 0 distinct"),
        (["dataset=text", "dataset.path=one.txt"], "holds 4 character(s) with 1 distinct"),
        (["dataset=text", "dataset.path=latin1.txt"], "is not UTF-8 text (byte 3"),
        (
            ["dataset=text", "dataset.path=short.txt", "dataset.block_size=64"],
            "dataset.block_size=64 does not fit the val split: it has 15 tokens",
        ),
        (
            ["dataset=text", "dataset.path=short.txt", "dataset.val_split=0"],
            "a language model needs a val split to select on",
        ),
        (["dataset=tokens", "dataset.root=nometa"], "set dataset.vocab_size (e.g. 50257"),
        (
            ["dataset=tokens", "dataset.root=big"],
            "val.bin holds token id 90, but the vocabulary has 28 ids",
        ),
        (["dataset=tokens", "dataset.root=odd"], "train.bin has 3 bytes"),
        (["dataset=tokens", "dataset.root=short.txt"], "dataset.root=short.txt: no such folder"),
        (["dataset=tokens", f"dataset.root={tmp}"], "has no train.bin or val.bin"),
        (
            [
                "dataset=text",
                "dataset.path=short.txt",
                "dataset.block_size=8",
                "model.vocab_size=10",
            ],
            "model.vocab_size=10 does not fit the data: it has vocab_size",
        ),
        (
            ["dataset=text", "dataset.path=short.txt", "dataset.block_size=8", "model=feedforward"],
            "model.num_classes is null (from the data), and this data has no num_classes",
        ),
        (
            [
                "dataset=text",
                "dataset.path=short.txt",
                "dataset.block_size=8",
                "model=feedforward",
                "model.input_dim=8",
                "model.num_classes=10",
            ],
            "FeedForward fails on one batch of the data (input 2x8, int64)",
        ),
        (
            [
                "dataset=text",
                "dataset.path=short.txt",
                "dataset.block_size=8",
                "model=custom",
                "model._target_=torch.nn.Embedding",
                "+model.num_embeddings=40",
                "+model.embedding_dim=5",
            ],
            "returns (2, 8, 5) for a batch of 2x8 token ids; lrrun needs logits of shape (2, 8, ",
        ),
        (
            ["dataset=text", "dataset.path=short.txt", "dataset.eval_windows=0"],
            "dataset.eval_windows=0 is not allowed: it must be an integer >= 1, or all",
        ),
    ]


@pytest.mark.slow
def test_every_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, message in token_errors(tmp_path):
        proc = run_cli([*args, *FAST, "hydra.run.dir=run"], tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and message in " ".join(proc.stderr.split()), (
            args,
            proc.stderr,
        )
        assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.slow
def test_a_sweep_of_schedules_ranks_lower_val_loss_first(tmp_path: Path) -> None:
    write_text(tmp_path / "t.txt", 8_000)
    args = [
        "-m",
        *lm(epochs=2, per_epoch=10),
        "scheduler=wsd,hf_cosine",
        "optimizer.lr=3e-3,3e-4",
        "trainer.seed=1,2",
        "hydra.sweep.dir=sweep",
    ]
    proc = run_cli(args, tmp_path)
    assert_ok(proc)
    configs = read_csv(tmp_path / "sweep" / "configs.csv")
    means = [float(c["mean_best_val_loss"]) for c in configs]
    assert len(configs) == 4 and means == sorted(means)  # lower is better: first
    assert list(configs[0])[:4] == ["scheduler", "optimizer.lr", "n", "seeds"]
    assert "mean_final_val_ppl" in configs[0]
    summary = read_csv(tmp_path / "sweep" / "summary.csv")
    assert {"best_val_loss", "test_loss", "final_val_ppl"} <= set(summary[0])
    out = " ".join(proc.stdout.split())
    assert "best mean val_loss first" in out and "(n=2; lower is better)" in out
    assert f"best: {configs[0]['scheduler'] and 'scheduler=' + configs[0]['scheduler']}" in out


USER_LM = '''
import torch
from torch import nn


class Bigram(nn.Module):
    """A user's language model: lrrun passes vocab_size and block_size by name."""

    def __init__(self, vocab_size: int, block_size: int, width: int = 16) -> None:
        super().__init__()
        self.block_size = block_size
        self.embed = nn.Embedding(vocab_size, width)
        self.head = nn.Linear(width, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(idx))
'''


def test_a_users_language_model_beside_the_command(tmp_path: Path) -> None:
    write_text(tmp_path / "t.txt", 6_000)
    (tmp_path / "mylm.py").write_text(USER_LM)
    proc = run_cli(
        [
            "dataset=text",
            "dataset.path=t.txt",
            "model=custom",
            "model._target_=mylm.Bigram",
            "dataset.block_size=16",
            "dataset.steps_per_epoch=20",
            "trainer.epochs=2",
            "optimizer.lr=0.01",
            *FAST,
            "hydra.run.dir=run",
        ],
        tmp_path,
    )
    assert_ok(proc)
    assert "from the data: vocab_size=28, block_size=16" in " ".join(proc.stdout.split())
    metrics = read_csv(tmp_path / "run" / "metrics.csv")
    assert float(metrics[-1]["val_loss"]) < float(metrics[0]["val_loss"]) < math.log(28)
    sample = run_cli(["run", "--tokens", "20"], tmp_path, prog="lrrun-sample")
    assert_ok(sample)  # any model that returns logits per position samples
    assert len(sample.stdout.rstrip("\n")) == 21


@pytest.mark.slow
def test_a_memory_mapped_stream_trains_as_one_in_memory(tmp_path: Path) -> None:
    """trainer.data_path=loader reads each batch's windows from the memory map of the .bin
    files; the windows, and so every loss, are those of the stream kept on the device."""
    write_tokens(tmp_path / "tok", 8_000)
    args = [
        "dataset=tokens",
        "dataset.root=tok",
        *TINY_GPT,
        "dataset.steps_per_epoch=5",
        "trainer.epochs=2",
        *FAST,
    ]
    mapped = run_cli([*args, "trainer.data_path=loader", "hydra.run.dir=mapped"], tmp_path)
    assert_ok(mapped)
    assert "data_path=memmap" in mapped.stdout
    assert_ok(run_cli([*args, "hydra.run.dir=tensor"], tmp_path))
    assert read_csv(tmp_path / "mapped" / "steps.csv") == read_csv(
        tmp_path / "tensor" / "steps.csv"
    )


def test_a_large_token_file_is_never_loaded_whole(tmp_path: Path, monkeypatch) -> None:
    """Past RESIDENT_TOKENS_BYTES (1 GiB of int32) the stream stays a memory map, whatever
    the free memory; below it, it is loaded (here: a limit of 1 KiB and an 8 KiB stream)."""
    import lrrun.data.load as load
    from lrrun.config.dataset import read_dataset

    root = write_tokens(tmp_path / "tok", 4_000)
    spec = read_dataset(
        {
            "source": "tokens",
            "name": "tokens",
            "root": str(root),
            "block_size": 16,
            "steps_per_epoch": 2,
            "eval_windows": 4,
        },
        "language_model",
    )
    assert load.load_data(spec, None).train.in_memory
    monkeypatch.setattr(load, "RESIDENT_TOKENS_BYTES", 1024)
    load._CACHE.clear()
    data = load.load_data(spec, None)
    assert not data.train.in_memory and isinstance(data.train.tokens, np.memmap)
