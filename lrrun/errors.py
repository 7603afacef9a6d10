"""Errors a user can cause and fix. The CLI prints their message alone (no traceback) and exits 2."""


class LrrunError(Exception):
    """Base for user-facing errors: the message names the key, the value and the fix."""


class ConfigError(LrrunError):
    """A config value that is unknown, mistyped or out of range."""


class DataError(LrrunError):
    """A dataset that cannot be found, prepared or downloaded."""


def root_cause(exc: BaseException) -> str:
    """The first line of the innermost cause: what to show from a wrapped library error."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Diverged(Exception):
    """A non-finite training loss, or val / test loss (trainer.stop_on_nonfinite=true): the
    run stops, exit 3. ``split``: which loss ("" for the training loss of a step)."""

    def __init__(self, epoch: int, step: int, lr: float, loss: float, split: str = "") -> None:
        self.epoch, self.step, self.lr, self.loss = epoch, step, lr, loss
        if split:
            where = (
                f"{split}_loss={loss} after epoch {epoch} (step {step}, lr {lr:.6g}): the "
                f"model's outputs on the {split} split are not finite. That epoch's row "
                "is in metrics.csv"
            )
        else:
            where = (
                f"loss={loss} at epoch {epoch}, step {step} (lr {lr:.6g}). Every row up "
                "to the end of that epoch is in steps.csv"
            )
        super().__init__(
            f"diverged: {where}. Lower optimizer.lr or the schedule's peak, or set "
            "trainer.stop_on_nonfinite=false to keep training and watch."
        )


class WriteFailed(Exception):
    """The run dir stopped taking the run's files mid-run (disk full, quota, made read-only):
    the run ends "failed", exit 1, what was written before kept. ``reason``: the OS's words."""

    def __init__(self, run_dir: object, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the run dir {run_dir} stopped taking the run's files ({reason}). Free space or "
            "fix its permissions;"
        )


class PeerFailed(Exception):
    """Another rank of a data-parallel run failed; this one ends with its message (exit 1)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so a run unwinds exactly as on Ctrl-C."""
