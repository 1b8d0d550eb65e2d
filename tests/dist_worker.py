"""Run by tests/test_distributed.py under torchrun (2 CPU processes, gloo): trains with the real loop and
writes every rank's networks, so the test can compare ranks with each other and with one process.

    python -m torch.distributed.run --nproc_per_node=2 ... tests/dist_worker.py OUT RUNS_JSON

RUNS_JSON maps a run name to its settings (``method`` plus Config fields, and ``lost_game``: train with
every reconstruction ratio 1 and write OUT/NAME/failed-rank{r}.json, the GeneratorCollapsed each rank
raised); each run trains into OUT/NAME
and rank r writes OUT/NAME/rank{r}.safetensors, and OUT/NAME/fed-rank{r}.json: how many images its
training steps took, the largest first pixel among them and among its batch-norm refreshes' images,
and those refreshes' data-set sizes and batch counts. The process group is created here, so ``train`` leaves
it up between runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import advrep.train.loop as loop
from advrep import distributed as dist
from advrep.methods import make_config


def check_collectives(out: Path) -> None:
    """The helpers' cross-rank behaviour, written to OUT/collectives-rank{r}.json for the test to read."""
    r = dist.rank()
    both, only_rank1, unused = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    both.grad = torch.full((3,), float(r + 1))  # ranks give 1 and 2: mean 1.5
    if r == 1:
        only_rank1.grad = torch.full((3,), 2.0)  # rank 0 has none: counts as zero, mean 1.0
    dist.average_gradients([both, only_rank1, unused], bucket_bytes=8)  # tiny buckets: several calls
    rows = dist.gather_rows(torch.arange(5.0)[dist.shard(5)][:, None])  # shards of 2 and 3 rows
    result = {"both": both.grad.tolist(), "only_rank1": only_rank1.grad.tolist(), "unused": unused.grad,
              "rows": rows.squeeze(1).tolist(), "mean": dist.mean_scalars([torch.tensor(float(r))]),
              "any_rank1": dist.any_rank(r == 1), "any_none": dist.any_rank(False)}
    (out / f"collectives-rank{r}.json").write_text(json.dumps(result))


def main(out: Path, runs: dict[str, dict]) -> None:
    torch.set_num_threads(1)
    built = []
    real_build, real_step, real_refresh = loop.build_method, loop.train_step, loop.refresh_batch_norm
    # what this rank fed to training steps and to batch-norm refreshes: the first pixel of every image
    # (a test marks held-out images there) and the size of each refresh's data set
    fed: dict[str, list] = {"train": [], "bn": [], "bn_sizes": [], "bn_batches": []}

    def keep(*args, **kwargs):  # the loop builds the method; keep a handle on its networks
        built.append(real_build(*args, **kwargs))
        return built[-1]

    def step(method, optimizers, params, xb, *args, **kwargs):
        fed["train"] += xb[:, 0, 0, 0].tolist()
        return real_step(method, optimizers, params, xb, *args, **kwargs)

    def refresh(method, data, **kwargs):
        fed["bn"] += data.x[:, 0, 0, 0].tolist()
        fed["bn_sizes"].append(len(data))
        fed["bn_batches"].append(kwargs.get("batches"))
        return real_refresh(method, data, **kwargs)

    loop.build_method, loop.train_step, loop.refresh_batch_norm = keep, step, refresh
    dist.init(torch.device("cpu"))
    check_collectives(out)
    for name, settings in runs.items():
        settings = dict(settings)
        lost = settings.pop("lost_game", False)
        cfg = make_config(settings.pop("method"), **settings)
        for v in fed.values():
            v.clear()
        if lost:  # every epoch's reconstruction ratio is 1: stop_on_collapse must stop every rank alike
            real_ratio, real_from = loop.reconstruction_ratio, loop.UNLINKED_FROM_STEP
            loop.reconstruction_ratio, loop.UNLINKED_FROM_STEP = (lambda method, x: 1.0), 0
            try:
                loop.train(cfg, out / name)
                failed = None
            except loop.GeneratorCollapsed as exc:
                failed = {"mode": exc.mode, "epoch": exc.epoch}
            finally:
                loop.reconstruction_ratio, loop.UNLINKED_FROM_STEP = real_ratio, real_from
            (out / name / f"failed-rank{dist.rank()}.json").write_text(json.dumps(failed))
            continue
        loop.train(cfg, out / name)
        fed_max = {k: max(fed[k], default=None) for k in ("train", "bn")}
        (out / name / f"fed-rank{dist.rank()}.json").write_text(json.dumps(
            {"train_images": len(fed["train"]), "train_max": fed_max["train"], "bn_max": fed_max["bn"],
             "bn_sizes": fed["bn_sizes"], "bn_batches": fed["bn_batches"]}))
        state = {k: v.detach().contiguous() for k, v in built[-1].nets.state_dict().items()}
        save_file(state, str(out / name / f"rank{dist.rank()}.safetensors"))
    dist.shutdown()
    dist.exit_worker(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.loads(sys.argv[2]))
