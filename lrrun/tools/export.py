"""``lrrun-export RUN_DIR [--format pt2|onnx] [--out FILE]``: the trained model as one
program that takes raw samples - uint8 pixels (N x C x H x W) as the dataset gives them, or
float samples - and returns the model's output (logits; regression: values in standardised
units, as the model computes them). The normalisation is inside; the batch size is free.

``pt2``: ``torch.export`` (load with ``torch.export.load(FILE).module()``); ``onnx``:
``torch.onnx.export(dynamo=True)`` (``pip install 'lrrun[onnx]'``). The eval transforms and
``dataset.image_size``'s resize are not in the program: give it samples at the model's input
size (lrrun.load_run's ``prepare`` does it all). Before writing, the program's outputs are
checked against the checkpoint model's on random samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lrrun.errors import ConfigError, LrrunError


class RawInput(nn.Module):
    """The model behind training's own input steps (lrrun.data.base.normalise): uint8 to
    float32 / 255, then (x - mean) / std per channel, in the same float32 operations."""

    def __init__(
        self,
        model: nn.Module,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        uint8: bool,
        images: bool,
    ) -> None:
        super().__init__()
        self.model, self.uint8 = model, uint8
        shape = (1, -1, 1, 1) if images else (1, -1)
        self.register_buffer("mean", torch.tensor(mean or [0.0]).view(shape))
        self.register_buffer("std", torch.tensor(std or [1.0]).view(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.uint8:
            x = x / 255
        return self.model((x - self.mean) / self.std)


def raw_input_model(run: Any) -> RawInput:
    images = len(run.input_shape) == 3
    return RawInput(
        run.model, run.mean, run.std, uint8=images and not run.wide, images=images
    ).eval()


def example(run: Any, n: int = 4, seed: int = 0) -> torch.Tensor:
    """Random raw samples of the run's input shape and dtype."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, *run.input_shape)
    if len(run.input_shape) == 3 and not run.wide:
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    return torch.rand(shape, generator=g)


def export(run: Any, fmt: str, out: Path) -> float:
    """Write ``run``'s model as ``fmt`` to ``out``; the largest difference between the
    program's outputs and the checkpoint model's on random samples."""
    wrapped = raw_input_model(run)
    x = example(run)
    batch = torch.export.Dim("batch", min=1)
    with torch.inference_mode():
        expected = wrapped(x)
    if fmt == "pt2":
        program = torch.export.export(wrapped, (x,), dynamic_shapes={"x": {0: batch}})
        torch.export.save(program, out)
        with torch.inference_mode():
            got = torch.export.load(out).module()(x)
    else:
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--format onnx needs the onnx and onnxscript packages: pip install 'lrrun[onnx]'"
            ) from None
        torch.onnx.export(
            wrapped,
            (x,),
            str(out),
            dynamo=True,
            input_names=["x"],
            verbose=False,
            output_names=["out"],
            dynamic_shapes={"x": {0: batch}},
        )
        got = torch.as_tensor(run_onnx(out, x.numpy()))
    return float((got - expected).abs().max())


def run_onnx(path: Path, x: Any) -> Any:
    """An ONNX file's output on ``x``, by onnx's own reference evaluator (no runtime needed)."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(str(path)).run(None, {"x": x})[0]


def main(argv: list[str] | None = None) -> None:
    from lrrun.logs.console import print_error, print_warning
    from lrrun.tools.common import user_code_importable
    from lrrun.tools.use import load_run

    parser = argparse.ArgumentParser(prog="lrrun-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    parser.add_argument("--format", choices=("pt2", "onnx"), default="pt2")
    parser.add_argument("--out", type=Path, help="default: RUN_DIR/model.pt2 (or .onnx)")
    parser.add_argument("--last", action="store_true", help="checkpoint.pt, not best.pt")
    args = parser.parse_args(argv)
    user_code_importable()  # the user's model module beside the command, as for lrrun
    try:
        run = load_run(args.run_dir, "last" if args.last else "best")
        out = args.out or (run.source.parent / f"model.{args.format}")
        if run.eval_steps or run.image_size:
            print_warning(
                "the run's eval transforms / dataset.image_size are not in the "
                "program: give it samples as they are after them"
            )
        diff = export(run, args.format, out)
    except (LrrunError, OSError) as exc:
        print_error(f"lrrun-export: {exc}")
        sys.exit(2)
    except Exception as exc:  # torch.export refusing the model: its words matter
        print_error(
            f"lrrun-export: the model could not be exported ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})"
        )
        sys.exit(1)
    print(
        f"wrote {out}: epoch {run.epoch}'s weights, raw {tuple(run.input_shape)} samples in; "
        f"checked against the checkpoint model on 4 random samples: max |difference| "
        f"{diff:.3g}"
    )
