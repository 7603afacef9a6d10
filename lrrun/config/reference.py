"""What the config declarations say, written out for people: ``conf/trainer/default.yaml``
(the trainer group's defaults with their meanings as comments) and the docs' reference tables
(the trainer keys; every shipped choice of the other groups, read from its YAML file).
``python -m lrrun.config.reference yaml|markdown`` prints the first two; ``make generated``
rewrites the YAML, and the docs build the tables when they are built (docs/hooks.py)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from lrrun.config.location import config_dir
from lrrun.config.trainer import TrainerSettings

HIDDEN = ("_target_", "_partial_", "defaults", "# @package _global_")


def yaml_text() -> str:
    """conf/trainer/default.yaml, from the declaration."""
    lines = [
        "# The trainer group. Written by `python -m lrrun.config.reference yaml` from",
        "# lrrun/config/trainer.py, where each key is declared: change it there.",
        "# The docs' reference page says the same, with the rules.",
    ]
    for f in dataclasses.fields(TrainerSettings):
        if f.metadata["section"]:
            lines.append(f"# --- {f.metadata['section']} ---")
        node = f.metadata["node"]
        if node is None:
            lines.append(_line(f"{f.name}: {_yaml(f.default)}", f.metadata["meaning"]))
            continue
        lines.append(_line(f"{f.name}:", f.metadata["meaning"]))
        for sub in dataclasses.fields(node):
            lines.append(_line(f"  {sub.name}: {_yaml(sub.default)}", sub.metadata["meaning"]))
    return "\n".join(lines) + "\n"


def _yaml(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if value == ():
        return "[]"
    return str(value)


def _line(text: str, comment: str, width: int = 100, column: int = 26) -> str:
    """``text`` and its comment, wrapped onto comment lines aligned under it."""
    import textwrap

    pad = max(column, len(text) + 2)
    wrapped = textwrap.wrap(comment, width - pad - 2) or [""]
    first = f"{text:<{pad}}# {wrapped[0]}"
    return "\n".join([first, *(f"{'':<{pad}}# {w}" for w in wrapped[1:])])


def markdown() -> str:
    """The trainer group's reference: per section, a table of every key with its type,
    default, meaning, what it accepts, and whether a resumed run may change it."""
    head = ["| key | type | default | meaning | a resume may change it |", "|---|---|---|---|---|"]
    out: list[str] = []
    for f in dataclasses.fields(TrainerSettings):
        if f.metadata["section"]:
            out += [
                "",
                f"### {f.metadata['section'][0].upper()}{f.metadata['section'][1:]}",
                "",
                *head,
            ]
        node = f.metadata["node"]
        resume = "yes" if f.metadata["resume"] else "no"
        if node is None:
            out.append(_row(f.name, f.type, f.default, f.metadata, resume))
            continue
        for sub in dataclasses.fields(node):
            out.append(_row(f"{f.name}.{sub.name}", sub.type, sub.default, sub.metadata, resume))
    return "\n".join(out[1:]) + "\n"


def _row(name: str, kind: str, default: Any, meta: Any, resume: str) -> str:
    kind = kind.replace("tuple[str, ...]", "list[str]").replace(" | None", " or null")
    meaning = f"{meta['meaning']}<br>*accepts* {meta['rule'][1]}"
    cells = [f"`{name}`", kind.replace(" | ", " or "), f"`{_yaml(default)}`", meaning, resume]
    return "| " + " | ".join(c.replace("|", "\\|").replace("<job", "&lt;job") for c in cells) + " |"


def choices(group: str) -> str:
    """A table of ``group``'s shipped choices: what each is (its file's first comment), the
    class it builds, and its keys with their defaults - read from conf/<group>/*.yaml."""
    import yaml

    rows = ["| choice | what it is | keys (defaults) |", "|---|---|---|"]
    for path in sorted((config_dir() / group).glob("*.yaml")):
        text = path.read_text()
        node = yaml.safe_load(text) or {}
        sets = [
            f"{k.split('/')[-1]}={v}"
            for item in node.get("defaults") or []
            if isinstance(item, dict)
            for k, v in item.items()
        ]
        if group in node:  # a "# @package _global_" file: the group's node inside
            node = node[group]
        about = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            if not line.startswith("# @package"):
                about.append(line.lstrip("# ").strip())
        what = _escaped(" ".join(about)) or "-"
        if sets:
            what += f" Sets {', '.join(f'`{x}`' for x in sets)}."
        target = node.get("_target_")
        if target is not None and target != "???":  # ???: yours, to set (a key below)
            what += f" (`{target}`)"
        said = _key_comments(text, indent=2 if group in (yaml.safe_load(text) or {}) else 0)
        keys = "<br>".join(
            f"`{k}: {_flow(v)}`" + (f" - {_escaped(said[k])}" if k in said else "")
            for k, v in node.items()
            if k not in HIDDEN or v == "???"
        )
        cells = [f"`{path.stem}`", what, keys or "-"]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


def _key_comments(text: str, indent: int) -> dict[str, str]:
    """What the YAML's comments say of its keys at ``indent``: a ``key: value  # ...`` line
    and the comment-only lines under it."""
    said: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        body = line[indent:] if line[:indent].strip() == "" else ""
        head, _, comment = body.partition(" #")
        if body[:1].isalpha() or body[:1] == "_":
            key = head.split(":", 1)[0].strip() if ":" in head else None
            if key is not None and comment.strip():
                said[key] = comment.strip()
        elif body.strip().startswith("#") and line.startswith(" " * (indent + 2)) and key in said:
            said[key] += " " + body.strip().lstrip("#").strip()
        elif body.strip():
            key = None
    return said


def _escaped(text: str) -> str:
    """A YAML comment as Markdown shows it: as written, no emphasis, no tags."""
    for char in "\\*_[]<>":
        text = text.replace(
            char, "\\" + char if char not in "<>" else {"<": "&lt;", ">": "&gt;"}[char]
        )
    return text


def _flow(value: object) -> str:
    """A value as YAML writes it on one line; a nested node's class by its name."""
    import yaml

    text = yaml.safe_dump(_plain(value), default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removesuffix("...").strip()


def _plain(value: object) -> object:
    if not isinstance(value, dict):
        return value
    target = str(value.get("_target_", ""))
    named = {"class": target.rsplit(".", 1)[-1]} if target else {}
    return named | {k: _plain(v) for k, v in value.items() if k not in HIDDEN}


def rules_table(group: str) -> str:
    """What each key of ``group`` accepts, in the words its check uses (lrrun.config.rules):
    a key without a rule is passed to its class as written, and torch checks it."""
    from lrrun.config import rules

    tables = {
        "dataset": rules.DATASET_RULES,
        "model": rules.MODEL_RULES,
        "optimizer": {**rules.OPTIMIZER_RULES, **rules.SCALING_RULES},
        "scheduler": {
            **rules.SCHEDULER_RULES,
            **{f"warmup.{k}": r for k, r in rules.WARMUP_RULES.items()},
            **{f"{k} ({cls})": r for cls, own in rules.CLASS_RULES.items() for k, r in own.items()},
        },
        "loss": rules.LOSS_RULES,
        "mix": rules.MIX_RULES,
    }
    rows = ["| key | accepts |", "|---|---|"]
    for key, (_, allowed) in tables[group].items():
        rows.append(f"| `{key}` | {_escaped(allowed)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in ("yaml", "markdown"):
        sys.exit("usage: python -m lrrun.config.reference yaml|markdown")
    sys.stdout.write(yaml_text() if what == "yaml" else markdown())
