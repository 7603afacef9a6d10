"""What the config declarations say, written out for people: ``conf/trainer/default.yaml``
(the trainer group's defaults with their meanings as comments) and the docs' reference tables.
``python -m lrrun.config.reference yaml|markdown`` prints either; ``make generated`` rewrites
the YAML, and the docs build the tables when they are built (docs/hooks.py)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from lrrun.config.trainer import TrainerSettings


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


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what not in ("yaml", "markdown"):
        sys.exit("usage: python -m lrrun.config.reference yaml|markdown")
    sys.stdout.write(yaml_text() if what == "yaml" else markdown())
