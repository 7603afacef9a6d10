"""The command line, checked before Hydra composes: unknown choices and keys (typos) with the
closest valid name suggested. Hydra would reject most of these too, but with exit 1, a
traceback-like message and no suggestion. (Where the run writes: lrrun.config.run_dirs.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrrun.config.location import config_dir
from lrrun.errors import ConfigError

GROUPS = (
    "dataset",
    "augment",
    "model",
    "loss",
    "mix",
    "optimizer",
    "scheduler",
    "trainer",
    "task",
    "experiment",
)
# Choices that set other groups' choices in their defaults list (override /group: choice),
# in the order Hydra lets them win: an experiment over a dataset over a task.
SETTERS = ("task", "dataset", "experiment")


def check_overrides(args: list[str], extra_roots: Iterable[str] = ()) -> None:
    """Catch unknown choices and unknown keys (typos) on the command line, with the closest
    valid name suggested. Hydra would reject them too, but with exit 1 and no suggestion.
    Anything this does not understand is left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assignments = [a for a in args if not a.startswith("-") and "=" in a]
    try:
        overrides = OverridesParser.create().parse_overrides(assignments)
    except Exception:
        return  # Hydra reports syntax errors itself
    dirs = [*user_config_dirs(args), config_dir()]
    root = OmegaConf.load(config_dir() / "config.yaml")
    defaults = {k: v for d in root.defaults if isinstance(d, DictConfig) for k, v in d.items()}
    choices: dict[str, list[str]] = {g: [str(defaults[g])] for g in GROUPS if g in defaults}
    given: set[str] = set()
    for o in overrides:
        if o.key_or_group in GROUPS and o.package is None and not o.is_delete():
            values = _values(o)
            if values is None:
                continue
            available = sorted({p.stem for d in dirs for p in (d / o.key_or_group).glob("*.yaml")})
            for value in values:
                if value not in available:
                    raise ConfigError(
                        f"{o.key_or_group}={value} is not a choice{_did_you_mean(value, available)}"
                        f" Choices: {', '.join(available)}."
                    )
            choices[o.key_or_group] = values
            given.add(o.key_or_group)
    _follow_setters(choices, given, dirs)
    for o in overrides:
        key = o.key_or_group
        if "." not in key or o.is_add() or o.is_force_add() or key.startswith("hydra."):
            continue
        group, path = key.split(".", 1)
        if group in extra_roots:
            continue
        if group not in GROUPS or group == "experiment":
            raise ConfigError(
                f"{key}: {group} is not a config group{_did_you_mean(group, GROUPS)} "
                f"Groups: {', '.join(g for g in GROUPS if g != 'experiment')}."
            )
        for choice in choices.get(group, []):
            if choice in ("null", "None"):
                continue
            _check_path(_choice_node(dirs, group, choice), path.split("."), group, choice)


def _choice_file(dirs: list[Path], group: str, choice: str) -> Path | None:
    return next(
        (d / group / f"{choice}.yaml" for d in dirs if (d / group / f"{choice}.yaml").is_file()),
        None,
    )


def _choice_node(dirs: list[Path], group: str, choice: str) -> Any:
    """A choice's keys as they compose: its own file (under the group's key when it is a
    ``_global_`` package) merged over the same-group configs its defaults list names."""
    found = _choice_file(dirs, group, choice)
    if found is None:
        return OmegaConf.create({})
    node = OmegaConf.load(found)
    if found.read_text().lstrip().startswith("# @package _global_"):
        node = node.get(group) or OmegaConf.create({})
    bases = [
        d
        for d in OmegaConf.load(found).get("defaults") or []
        if isinstance(d, str) and d != "_self_"
    ]
    merged = OmegaConf.merge(*(_choice_node(dirs, group, b) for b in bases), node)
    merged.pop("defaults", None)
    return merged


def _follow_setters(choices: dict[str, list[str]], given: set[str], dirs: list[Path]) -> None:
    """The choices that task, dataset and experiment configs set (``override /group: x`` in
    their defaults), where the command line does not choose: dataset=text brings
    task=language_model, which brings model=gpt."""
    for _ in SETTERS:  # a setter may choose another setter: settle in as many passes
        for setter in SETTERS:
            for choice in choices.get(setter, []):
                found = _choice_file(dirs, setter, choice)
                if found is None:
                    continue
                for item in OmegaConf.load(found).get("defaults") or []:
                    for key, value in item.items() if isinstance(item, DictConfig) else ():
                        group = str(key).removeprefix("override").strip().lstrip("/")
                        if group in GROUPS and group not in given:
                            choices[group] = [str(value)]


def user_config_dirs(args: list[str]) -> list[Path]:
    """Config dirs the user adds with Hydra's --config-dir (-cd): their choices count too."""
    found = []
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            found.append(Path(args[i + 1]).expanduser())
        elif arg.startswith("--config-dir="):
            found.append(Path(arg.split("=", 1)[1]).expanduser())
    return found


def _values(o: Any) -> list[str] | None:
    if not o.is_sweep_override():
        return [str(o.value())]
    try:
        return [str(v) for v in o.sweep_string_iterator()] if o.is_discrete_sweep() else None
    except Exception:  # e.g. glob(): Hydra checks those itself
        return None


def _check_path(node: Any, parts: list[str], group: str, choice: str) -> None:
    done = group
    for part in parts:
        if not isinstance(node, DictConfig):
            return  # indexing into a list or a value: Hydra's business
        keys = sorted(str(k) for k in node.keys())  # noqa: SIM118 - `in node` skips '???' keys
        if part not in keys:
            raise ConfigError(
                f"{done}.{part} is not a key of {group}={choice}"
                f"{_did_you_mean(part, keys, prefix=done + '.')} Its keys: {', '.join(keys)}. "
                f"To add a new key on purpose, write +{done}.{part}=..."
            )
        node, done = node._get_node(part), f"{done}.{part}"


# What users of other trainers type first (Lightning's Trainer, HF's TrainingArguments, timm's
# train.py) -> lrrun's key for the same thing.
SYNONYMS = {
    "gradient_clip_val": "clip_grad_norm",  # Lightning clips by norm unless told otherwise
    "max_grad_norm": "clip_grad_norm",
    "clip_grad": "clip_grad_norm",
    "max_epochs": "epochs",
    "num_train_epochs": "epochs",
    "accumulate_grad_batches": "accumulate",
    "gradient_accumulation_steps": "accumulate",
    "per_device_train_batch_size": "batch_size",
    "seed_everything": "seed",
    "resume_from_checkpoint": "resume",
    "ckpt_path": "resume",
}


def _did_you_mean(word: str, options: Iterable[str], prefix: str = "") -> str:
    import difflib

    options = list(options)
    if SYNONYMS.get(word) in options:
        return f": did you mean {prefix}{SYNONYMS[word]} (lrrun's name for {word})?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f": did you mean {prefix}{close[0]}?" if close else "."
