"""Which jobs share a pass (lrrun.fused.plan): real composed configs, grouped."""

from __future__ import annotations

from lrrun.config.settings import read
from lrrun.fused.plan import plan


def test_jobs_that_differ_in_what_members_own_share_a_pass(compose_cfg) -> None:
    configs = [
        ("optimizer.lr=0.1", "trainer.seed=1"),
        ("optimizer=adam", "trainer.seed=2", "scheduler=reduce_lr_on_plateau"),
        ("trainer.clip_grad_norm=1.0", "loss.label_smoothing=0.1", "trainer.ema.decay=0.9"),
        ("model.hidden_dim=32",),  # another size: its own pass
        ("trainer.batch_size=16",),  # another step shape
        ("scheduler=one_cycle_lr", "+optimizer.param_groups=[{name:all,params:['*'],lr:0.2}]"),
    ]
    jobs = [read(compose_cfg(*c, "dataset.seed=0")).resolved for c in configs]  # one data set
    made = plan(jobs, max_members=16)
    assert made.passes == [[0, 1, 2, 5]]
    assert made.alone == {
        3: "differs from job 0 in what a pass shares: model.hidden_dim: 100 -> 32",
        4: "differs from job 0 in what a pass shares: trainer.batch_size: 32 -> 16",
    }


def test_synthetic_data_of_another_seed_is_other_data(compose_cfg) -> None:
    jobs = [read(compose_cfg(f"trainer.seed={s}")).resolved for s in range(2)]
    assert plan(jobs, 16).alone[1] == (
        "differs from job 0 in what a pass shares: dataset.seed: 0 -> 1"
    )


def test_max_members_and_limits(compose_cfg) -> None:
    jobs = [read(compose_cfg(f"trainer.seed={s}", "dataset.seed=0")).resolved for s in range(5)]
    made = plan(jobs, max_members=2, limits=lambda p: "DDP" if p["trainer"]["seed"] == 3 else None)
    assert made.passes == [[0, 1], [2, 4]]
    assert made.alone == {3: "DDP"}
    made = plan(jobs[:3], max_members=2)
    assert made.passes == [[0, 1]] and made.alone == {2: "the last of its kind past max_members=2"}
