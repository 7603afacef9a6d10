"""Data-parallel training with PyTorch's own DDP, started the standard way
(``torchrun --nproc_per_node=N -m lrrun ...``, or ``trainer.devices=N``: lrrun.tools.launch).

- The world comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
  MASTER_PORT); gloo on CPU, NCCL on CUDA (each rank on ``cuda:<LOCAL_RANK>``).
- Every rank draws the same epoch order (lrrun.data.order.epoch_order) and trains on
  ``order[rank::world]``, padded to a multiple of the world size by repeating the order's
  first samples (as DistributedSampler pads), so at every step the ranks' batches together
  are the single-process run's batch of world x the per-rank batch.
- DDP averages the gradients. The per-step losses and an epoch's sums (loss, correct, seen)
  are all-reduced once per epoch, when the rows are written, so every rank logs, checks for
  divergence and steps ReduceLROnPlateau on the same numbers; evaluation is sharded
  (``index[rank::world]``, unpadded) and its sums all-reduced.
- Rank 0 alone writes the run dir (CSVs, checkpoints with every rank's RNG state, status,
  trackers, console). Every rank reads the checkpoint on resume.
- A rank that fails or is interrupted posts its outcome in the rendezvous store before it
  exits; the others, whose collectives then fail, read it and end the same way (status and
  exit code), so one SIGTERM ends the run as one SIGTERM ends a single process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from lrrun.world import World

FAILED_KEY = "lrrun/outcome"


def start(world: World, device: torch.device) -> None:
    """Join the process group: NCCL for CUDA devices, gloo otherwise."""
    import torch.distributed as dist

    if not world.active or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop(wait: bool) -> None:
    """Leave the process group. A rank that exits without it can abort (SIGABRT) while the
    interpreter shuts down, gloo's threads still holding tensors (pytorch/pytorch#190489).
    ``wait``: the run ended well, so first wait for every rank (no rank tears down while
    another still writes); after a failure the peers may be gone, so leave at once."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    # A rank gone after the end of the run changes nothing written; a group broken by a
    # failed rank must not hide the run's own end.
    if wait:
        with contextlib.suppress(Exception):
            dist.barrier()
    with contextlib.suppress(Exception):
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The model as the training step calls it: DDP across the ranks, or itself."""
    if not world.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def no_sync(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
    """DDP's ``no_sync()`` (gradients kept local until a backward outside it, lrrun.train.loop's
    accumulation); nothing for a model without it."""
    return model.no_sync() if hasattr(model, "no_sync") else contextlib.nullcontext()


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def post_outcome(world: World, outcome: str, kind: str, message: str) -> None:
    """Tell the other ranks how this one ended (before its sockets close); the first rank to
    end is the one they all report."""
    if not world.active:
        return
    try:
        from torch.distributed import distributed_c10d

        store = distributed_c10d._get_default_store()
        store.compare_set(FAILED_KEY, "", f"{world.rank}\0{outcome}\0{kind}\0{message}")
    except Exception:  # no store (the group never formed): the launcher ends the rest
        pass


def peer_outcome(world: World, wait_s: float = 5.0) -> tuple[int, str, str, str] | None:
    """How another rank ended, when it posted it: (rank, outcome, exception kind, message)."""
    if not world.active:
        return None
    try:
        from datetime import timedelta

        from torch.distributed import distributed_c10d

        store = distributed_c10d._get_default_store()
        store.set_timeout(timedelta(seconds=wait_s))
        rank, outcome, kind, message = store.get(FAILED_KEY).decode().split("\0", 3)
    except Exception:
        return None
    return (int(rank), outcome, kind, message) if int(rank) != world.rank else None


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait while a failing run writes how it ended (torchrun sends
    SIGTERM to every rank when one dies: it must not land between the failure and its
    status); one that came meanwhile is raised after, by the handler it would have met."""
    import signal

    pending: list[int] = []
    try:
        previous = {
            s: signal.signal(s, lambda n, f: pending.append(n))
            for s in (signal.SIGINT, signal.SIGTERM)
        }
    except ValueError:  # not the main thread: signals are not ours to hold
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because a peer's connection closed (its
    text then carries 60 lines of C++ frames, which no user should have to read)."""
    import torch.distributed as dist

    text = str(error)
    return isinstance(error, dist.DistError) or (
        isinstance(error, RuntimeError)
        and any(
            s in text for s in ("gloo", "NCCL", "Connection closed by peer", "Connection reset")
        )
    )


def explain(error: BaseException, world: World) -> BaseException:
    """This rank's exception, as the run should end with it: when a collective failed
    because another rank ended first (its sockets closed), that rank's end - interrupted
    (Ctrl-C, SIGTERM) or failed - so every rank reports the same status and exit code."""
    from lrrun.errors import Diverged, LrrunError, PeerFailed, Terminated

    if not world.active or isinstance(error, LrrunError | Diverged | KeyboardInterrupt):
        return error
    peer = peer_outcome(world)
    if peer is None:  # the rank that ended said nothing: killed, or it hosted the store
        if lost_peer(error):
            import re

            first = (str(error).strip().splitlines() or [""])[0]
            cause = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]
            return PeerFailed(f"another rank ended without a word (killed?): {cause}")
        return error
    rank, outcome, kind, message = peer
    if outcome == "interrupted":
        why = f"rank {rank} was {'terminated' if kind == 'Terminated' else 'interrupted'}"
        return Terminated(why) if kind == "Terminated" else KeyboardInterrupt(why)
    return PeerFailed(f"rank {rank} ended the run ({outcome}): {message or kind}")
