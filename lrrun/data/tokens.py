"""Token streams for a language model: ``dataset=text`` (a UTF-8 file, characters as tokens)
and ``dataset=tokens`` (nanoGPT's prepared layout, read as it is).

- text: the vocabulary is the sorted characters of the file (and of ``val_path`` /
  ``test_path`` when given), recorded in the run so samples decode; the file is split by
  position: train first, then ``val_split`` of it, then ``test_split`` at the end.
- tokens: ``train.bin``, ``val.bin`` (optional ``test.bin``) of uint16 ids, memory-mapped,
  so a file of many GB never loads whole; ``meta.json`` or ``meta.pkl`` for ``vocab_size``
  and the decoder ``itos``. meta.pkl is read by an unpickler that admits only plain values
  (dicts, lists, ints, floats, strs): a pickle that names any class or function - which is
  how a pickle runs code - is refused before anything in it is built.

A stream of at most 1 GiB that fits in half of the device's free memory lives there (the
tensor path: lrrun.data.windows gathers each batch's windows with one index); a larger one is
read window by window from the memory map (lrrun.data.load decides).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrrun.config.dataset import DataSpec
from lrrun.errors import DataError, root_cause


@dataclass(frozen=True)
class TokenSplit:
    tokens: Any  # torch.Tensor (int32, in memory) or np.memmap (uint16, on disk)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def in_memory(self) -> bool:
        return torch.is_tensor(self.tokens)


@dataclass(frozen=True)
class TokenData:
    """A language model's data: token streams in their roles, and their facts."""

    name: str
    train: TokenSplit
    val: TokenSplit
    test: TokenSplit | None
    source: str  # for the header
    vocab_size: int
    vocab: tuple[str, ...]  # the decoder (itos), when known: dataset=text's characters
    block_size: int
    steps_per_epoch: int  # optimizer steps per epoch: an epoch is an evaluation interval
    eval_windows: int | str  # fixed windows val/test are measured on, or "all"
    root: Path | None = None
    selection: str = "val"
    val_from: str = ""

    @property
    def facts(self) -> dict[str, Any]:
        """What a model's constructor may take from the data (lrrun.models.adapt)."""
        return {"vocab_size": self.vocab_size, "block_size": self.block_size}

    def record(self) -> dict[str, Any]:
        """The data as the run saw it (status.json, the checkpoint's plan; the vocabulary is
        what lrrun-sample decodes with)."""
        return {
            "vocab_size": self.vocab_size,
            "vocab": list(self.vocab),
            "block_size": self.block_size,
            "steps_per_epoch": self.steps_per_epoch,
            "eval_windows": self.eval_windows,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test) if self.test is not None else None,
        }


def load_text(spec: DataSpec) -> TokenData:
    """dataset=text: always in memory (the whole text is read to find its vocabulary)."""
    o = spec.options
    files = {"train": o["path"], "val": o.get("val_path"), "test": o.get("test_path")}
    texts = {role: _read_text(path, role) for role, path in files.items() if path is not None}
    vocab = sorted(set("".join(texts.values())))
    if len(vocab) < 2:
        raise DataError(
            f"dataset.path={o['path']} holds {len(texts['train'])} character(s) with "
            f"{len(vocab)} distinct: a language model needs text with at least 2 distinct "
            "characters (and block_size + 1 characters per split)."
        )
    ids = {role: _encode(text, vocab) for role, text in texts.items()}
    val_split, test_split = float(spec.val_split or 0), float(o.get("test_split") or 0)
    train, how = ids["train"], []
    n = len(train)
    test_n = 0 if "test" in ids else round(test_split * n)
    val_n = 0 if "val" in ids else round(val_split * n)
    if "val" not in ids and not val_n:
        raise DataError(
            f"dataset.val_split={spec.val_split}: a language model needs a val split to "
            "select on. Set dataset.val_split (e.g. 0.05) or dataset.val_path."
        )
    if "val" not in ids:
        ids["val"], how = train[n - test_n - val_n : n - test_n], [f"val {val_split:g}"]
    if "test" not in ids and test_n:
        ids["test"] = train[n - test_n :]
        how.append(f"test {test_split:g}")
    ids["train"] = train[: n - test_n - val_n]
    splits = {role: TokenSplit(t) for role, t in ids.items()}
    sizes = ", ".join(f"{role} {len(s):,}" for role, s in splits.items())
    val_from = f"by position, the text's end ({', '.join(how)})" if how else "dataset.val_path"
    return _token_data(
        spec,
        splits,
        len(vocab),
        tuple(vocab),
        f"{o['path']} ({n:,} characters; {sizes} tokens)",
        val_from,
    )


def _read_text(path: str, role: str) -> str:
    where = "dataset.path" if role == "train" else f"dataset.{role}_path"
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{where}={path}: no such file. Give a UTF-8 text file.")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where}={path} is not UTF-8 text (byte {exc.start}: {root_cause(exc)}). Convert "
            "it to UTF-8, or prepare token ids and use dataset=tokens."
        ) from None


def _encode(text: str, vocab: list[str]) -> torch.Tensor:
    """Characters to their indices in the sorted vocabulary, as int32."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.array([ord(c) for c in vocab], dtype=np.uint32)
    return torch.from_numpy(np.searchsorted(table, points).astype(np.int32))


def load_tokens(spec: DataSpec, memory: bool = True) -> TokenData:
    o = spec.options
    root = Path(o["root"]).expanduser()
    where = f"dataset.root={o['root']}"
    if not root.is_dir():
        raise DataError(f"{where}: no such folder. Give a folder with train.bin and val.bin.")
    missing = [f for f in ("train.bin", "val.bin") if not (root / f).is_file()]
    if missing:
        found = sorted(p.name for p in root.iterdir())[:8]
        raise DataError(
            f"{where} has no {' or '.join(missing)} (it has {', '.join(found) or 'nothing'}): "
            "give nanoGPT's prepared layout, train.bin and val.bin of uint16 token ids "
            "(and test.bin, meta.pkl or meta.json)."
        )
    meta = _meta(root, where)
    vocab_size = o.get("vocab_size") or meta.get("vocab_size")
    if vocab_size is None:
        raise DataError(
            f"{where} has no meta.json or meta.pkl to say the vocabulary size: set "
            "dataset.vocab_size (e.g. 50257 for GPT-2's tokens)."
        )
    itos = meta.get("itos") or {}
    vocab = tuple(itos.get(i, "") for i in range(vocab_size)) if itos else ()
    splits = {}
    for role in ("train", "val", "test"):
        path = root / f"{role}.bin"
        if path.is_file():
            splits[role] = TokenSplit(_memmap(path, where, vocab_size, memory))
    sizes = ", ".join(f"{role} {len(s):,}" for role, s in splits.items())
    return _token_data(
        spec,
        splits,
        int(vocab_size),
        vocab,
        f"{root} ({sizes} tokens, vocabulary {vocab_size})",
        "val.bin",
        root,
    )


def _memmap(path: Path, where: str, vocab_size: int, memory: bool) -> Any:
    size = path.stat().st_size
    if size % 2 or not size:
        raise DataError(
            f"{where}: {path.name} has {size} bytes; it must hold uint16 token ids (2 bytes "
            "each, as nanoGPT's prepare.py writes them)."
        )
    tokens = np.memmap(path, dtype=np.uint16, mode="r")
    top = int(tokens.max())
    if top >= vocab_size:
        raise DataError(
            f"{where}: {path.name} holds token id {top}, but the vocabulary has {vocab_size} "
            f"ids (0 .. {vocab_size - 1}). Set dataset.vocab_size to at least {top + 1}, or "
            "fix meta's vocab_size."
        )
    return torch.from_numpy(np.asarray(tokens, dtype=np.int32)) if memory else tokens


class _PlainValues(pickle.Unpickler):
    """Builds dicts, lists, tuples, numbers and strings; any class or function is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it names {module}.{name}")


def _meta(root: Path, where: str) -> dict[str, Any]:
    """meta.json, else meta.pkl read as plain values: {vocab_size, itos, stoi}."""
    if (root / "meta.json").is_file():
        try:
            meta = json.loads((root / "meta.json").read_text())
        except ValueError as exc:
            raise DataError(f"{where}: meta.json is not JSON ({root_cause(exc)}).") from None
        if isinstance(meta, dict) and isinstance(meta.get("itos"), dict | list):
            itos = meta["itos"]
            meta["itos"] = (
                dict(enumerate(itos))
                if isinstance(itos, list)
                else {int(k): v for k, v in itos.items()}
            )
    elif (root / "meta.pkl").is_file():
        try:
            with (root / "meta.pkl").open("rb") as f:
                meta = _PlainValues(f).load()
        except pickle.UnpicklingError as exc:
            raise DataError(
                f"{where}: meta.pkl holds more than plain values ({exc}), so loading it could "
                "run code; lrrun refused it and ran nothing. Write meta.json instead "
                '({"vocab_size": N, "itos": [...]}) or a meta.pkl of plain dicts.'
            ) from None
        except Exception as exc:
            raise DataError(f"{where}: meta.pkl could not be read ({root_cause(exc)}).") from None
    else:
        return {}
    if not isinstance(meta, dict) or not isinstance(meta.get("vocab_size", 0), int):
        raise DataError(f"{where}: meta must be a mapping with an integer vocab_size.")
    itos = meta.get("itos")
    if itos is not None and not (
        isinstance(itos, dict) and all(isinstance(v, str) for v in itos.values())
    ):
        raise DataError(f"{where}: meta's itos must map token ids to strings.")
    return meta


def _token_data(
    spec: DataSpec,
    splits: dict[str, TokenSplit],
    vocab_size: int,
    vocab: tuple[str, ...],
    source: str,
    val_from: str,
    root: Path | None = None,
) -> TokenData:
    o = spec.options
    block = int(o["block_size"])
    for role, split in splits.items():
        if len(split) < block + 1:
            raise DataError(
                f"dataset.block_size={block} does not fit the {role} split: it has "
                f"{len(split)} tokens, and a window needs block_size + 1 = {block + 1}. Lower "
                "dataset.block_size or give more text."
            )
    return TokenData(
        name=spec.name,
        train=splits["train"],
        val=splits["val"],
        test=splits.get("test"),
        source=source,
        vocab_size=vocab_size,
        vocab=vocab,
        block_size=block,
        steps_per_epoch=int(o["steps_per_epoch"]),
        eval_windows=o["eval_windows"],
        root=root,
        selection="val",
        val_from=val_from,
    )
