"""The docs say what the code declares: README.md is a front page whose links resolve, and
the site's hooks (docs/hooks.py) write the trainer keys' table and include docstrings. The
whole site is built with ``mkdocs --strict`` by ``make docs`` (CI), where a broken link or
anchor fails."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_a_front_page_whose_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make test" in text  # the test command CI runs (.ci/run)
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) > 20
    for link in links:
        assert (ROOT / link).exists(), link


def test_every_docs_page_is_in_the_nav() -> None:
    import yaml

    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    listed = set(re.findall(r"(\S+\.md)$", nav, flags=re.M))
    assert pages == listed
    assert yaml.safe_load(nav.split("\nnav:")[0])["strict"] is True


def test_the_trainer_table_and_the_stepping_contract_are_the_codes() -> None:
    from lrrun.config.reference import markdown

    h = hooks()
    page = "a\n<!-- lrrun:trainer-keys -->\nb"
    assert h.on_page_markdown(page) == f"a\n{markdown()}\nb"
    contract = h.on_page_markdown("<!-- lrrun:docstring lrrun/train/loop.py -->")
    assert "### Stepping contract" in contract and "-----" not in contract
    assert "    optimizer.step()" in contract  # its literal blocks stay code
    assert "::" not in contract.replace("lrrun::", "")
    with pytest.raises(ValueError, match="unknown docs marker"):
        h.on_page_markdown("<!-- lrrun:nothing -->")


def test_the_stepping_page_includes_the_contract_not_a_copy() -> None:
    page = (ROOT / "docs" / "design" / "stepping.md").read_text()
    assert "<!-- lrrun:docstring lrrun/train/loop.py -->" in page
    assert "optimizer.step()" not in page.split("<!-- lrrun:docstring")[0]


@pytest.mark.parametrize("group", ["dataset", "model", "optimizer", "scheduler", "loss", "task"])
def test_the_choice_tables_are_read_from_conf(group: str) -> None:
    """Every shipped choice is a row, its keys and defaults as its YAML file has them."""
    import yaml

    from lrrun.config.location import config_dir
    from lrrun.config.reference import choices

    table = choices(group)
    files = sorted((config_dir() / group).glob("*.yaml"))
    assert len(table.splitlines()) == 2 + len(files)
    for path in files:
        assert f"| `{path.stem}` |" in table
    if group == "optimizer":
        sgd = yaml.safe_load((config_dir() / "optimizer" / "sgd.yaml").read_text())
        assert f"`lr: {sgd['lr']}`" in table and "(`torch.optim.SGD`)" in table
    if group == "dataset":  # a "# @package _global_" file shows its dataset node's keys
        assert (
            "`block_size: 64` - tokens of context per window" in table and "@package" not in table
        )
        # a key's own comment in its file, and the comment lines under it
        assert "`normalize: true` - per channel, measured on the train split<br>" in table
    if group == "scheduler":  # a composite's children by their class
        assert "schedulers: {warmup: {class: LinearLR, start_factor: 0.1" in table


def test_what_each_key_accepts_is_the_checks_own_rule() -> None:
    from lrrun.config import rules
    from lrrun.config.reference import rules_table

    table = rules_table("scheduler")
    for key in rules.SCHEDULER_RULES:
        assert f"| `{key}` |" in table
    assert "| `mode (CyclicLR)` | one of triangular, triangular2, exp\\_range |" in table
    assert "| `warmup.start_factor` | a number in \\[0, 1\\] |" in table
    assert "| `lr` | a number &gt; 0" in rules_table("optimizer")
