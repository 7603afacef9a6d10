"""``lrrun-predict RUN_DIR INPUT... [--out FILE]``: a trained run's predictions as a CSV.

INPUT: image files, folders of images (searched recursively; in an ImageFolder layout the
folder a file lies in is its label), or an .npz (``x``, else ``x_test``; ``y`` / ``y_test``
as labels). Samples are prepared as the run's evaluation prepared them (lrrun.tools.use).

Columns: ``input``, ``label`` (when known), then for classification ``prediction``,
``probability`` and, past 5 classes, ``prediction_2``, ``probability_2`` ... to 5; for
regression ``value`` (``value_0``, ``value_1``, ... for several targets).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lrrun.errors import ConfigError, LrrunError


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lrrun-predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("predictions.csv"),
        help="the CSV to write (default: predictions.csv)",
    )
    parser.add_argument("--last", action="store_true", help="checkpoint.pt, not best.pt")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def read_inputs(inputs: list[str]) -> tuple[list[str], Any, list[str | None]]:
    """(names, samples, labels) of what the INPUTs name: image files, or one .npz."""
    from lrrun.tools.use import files_in

    if len(inputs) == 1 and inputs[0].endswith(".npz"):
        return _npz(Path(inputs[0]))
    if any(i.endswith(".npz") for i in inputs):
        raise ConfigError("give one .npz, or image files and folders, not both")
    found = files_in(inputs)
    if not found:
        raise ConfigError(f"no image files in {' '.join(inputs)}")
    return [f for f, _ in found], [f for f, _ in found], [label for _, label in found]


def _npz(path: Path) -> tuple[list[str], Any, list[str | None]]:
    import numpy as np

    from lrrun.data.arrays import as_samples

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    with np.load(path, allow_pickle=False) as arrays:
        key = next((k for k in ("x", "x_test") if k in arrays), None)
        if key is None:
            raise ConfigError(f"{path} has arrays {sorted(arrays)}; give x (or x_test)")
        x = as_samples(arrays[key], f"{path}: {key}")
        y = arrays.get(key.replace("x", "y", 1))
    labels = [str(v) for v in y.tolist()] if y is not None else [None] * len(x)
    return [f"{path}[{i}]" for i in range(len(x))], x, labels


def rows(run: Any, names: list[str], samples: Any, labels: list[str | None]) -> list[dict]:
    out = run.predict(samples)
    known = any(label is not None for label in labels)
    table = []
    for i, name in enumerate(names):
        row: dict[str, Any] = {"input": name, **({"label": labels[i]} if known else {})}
        if out.values is not None:
            values = out.values[i].tolist()
            row |= (
                {"value": values[0]}
                if len(values) == 1
                else {f"value_{j}": v for j, v in enumerate(values)}
            )
        else:
            probs, index = out.top(5 if len(run.classes) > 5 else 1)
            for rank, (p, c) in enumerate(zip(probs[i].tolist(), index[i].tolist(), strict=True)):
                suffix = f"_{rank + 1}" if rank else ""
                row |= {f"prediction{suffix}": run.classes[c], f"probability{suffix}": p}
        table.append(row)
    return table


def main(argv: list[str] | None = None) -> None:
    from lrrun.files import write_rows
    from lrrun.logs.console import print_error
    from lrrun.tools.common import user_code_importable
    from lrrun.tools.use import load_run

    args = parse(argv)
    user_code_importable()  # the user's model module beside the command, as for lrrun
    try:
        run = load_run(args.run_dir, "last" if args.last else "best", args.device)
        names, samples, labels = read_inputs(args.inputs)
        table = rows(run, names, samples, labels)
        write_rows(args.out, list(table[0]), table)
    except (LrrunError, OSError) as exc:
        print_error(f"lrrun-predict: {exc}")
        sys.exit(2)
    print(
        f"wrote {args.out}: {len(table)} predictions by epoch {run.epoch}'s weights "
        f"({run.source.name} of {args.run_dir})"
    )
    scored = [r for r in table if r.get("label") is not None and "prediction" in r]
    if scored and all(r["label"] in run.classes for r in scored):
        right = sum(r["label"] == r["prediction"] for r in scored)
        print(
            f"accuracy {right / len(scored):.4f} on the {len(scored)} inputs whose label "
            "is known (their folder names, or y)"
        )
