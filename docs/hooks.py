"""MkDocs hooks: the pages say what the code declares, never a copy of it.

``<!-- lrrun:trainer-keys -->`` becomes the trainer group's reference table, written from
its declaration (lrrun.config.reference); ``<!-- lrrun:choices GROUP -->`` the table of a
config group's shipped choices, read from conf/GROUP/; ``<!-- lrrun:rules GROUP -->`` what
each of its keys accepts, from its checks' rules; ``<!-- lrrun:docstring PATH -->`` the
docstring of the module at PATH (read with ast: nothing is imported), its reST literal
blocks (``::``) and underlined titles turned into Markdown.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"<!-- lrrun:(\S+)(?: (\S+))? -->")


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARK.sub(lambda m: _expand(m.group(1), m.group(2)), markdown)


def _expand(what: str, arg: str | None) -> str:
    if what == "trainer-keys":
        from lrrun.config.reference import markdown

        return markdown()
    if what == "docstring" and arg:
        return docstring_markdown(ROOT / arg)
    if what == "choices" and arg:
        from lrrun.config.reference import choices

        return choices(arg)
    if what == "rules" and arg:
        from lrrun.config.reference import rules_table

        return rules_table(arg)
    raise ValueError(f"unknown docs marker lrrun:{what}")


def docstring_markdown(path: Path) -> str:
    text = ast.get_docstring(ast.parse(path.read_text()))
    if text is None:
        raise ValueError(f"{path} has no module docstring")
    lines = text.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        after = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"-{3,}", line):  # the underline of a title: the title made a heading
            continue
        if after and re.fullmatch(r"-{3,}", after) and len(after) == len(line):
            out.append(f"### {line}")
            continue
        out.append(line[:-1] if line.endswith("::") else line)
    return "\n".join(out)
