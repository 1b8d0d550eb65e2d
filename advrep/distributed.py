"""torchrun's environment and the few collectives the training loop needs, in one place. In a single
process every function is a cheap no-op, so the loop has one code path for 1 or N processes.

Data parallelism, the way DistributedDataParallel (DDP) does it: every rank holds the same networks
(broadcast from rank 0 at start), trains on its own slice of each global batch, and before every
optimiser step the gradients of exactly that optimiser's parameters are averaged over the ranks in
flat buckets, so every rank takes the same step.

Why the loop does not wrap networks in ``torch.nn.parallel.DistributedDataParallel``: one training
step forwards a network several times (BiGAN's D scores real pairs and generated pairs in two calls)
and then runs one backward per optimiser restricted with ``inputs=`` to that optimiser's networks.
DDP's reducer fires its all-reduce from autograd hooks once per forward/backward pair and expects
every parameter of the wrapped module to get a gradient in each backward; with two forwards, or a
network that is only a critic in a phase (D when E and G step), it either hangs, raises, or needs
``find_unused_parameters``/``static_graph``/``no_sync`` tricks that average gradients the method did not
ask for. Averaging each optimiser's gradients right after its own backward keeps the single-process
arithmetic (the same ``train_step``) and never communicates a network an optimiser does not update.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size: few collectives, bounded extra memory


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def init(device: torch.device) -> bool:
    """Join the process group torchrun set up (nccl on CUDA, gloo otherwise). True when this call
    created it, so the caller knows the group is its own to shut down (a user's script may own it)."""
    if world_size() <= 1 or is_distributed():
        return False
    if device.type == "mps":
        raise ValueError("training on MPS with several processes is not supported (no collective backend "
                         "runs on MPS tensors); use --device cpu under torchrun, or one process on MPS.")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL uses the current device
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if is_distributed():
        # Every rank reaches this point before any tears the group down, so no rank destroys gloo's
        # pairs while another still uses them. (This alone did not stop the rare abort at process exit;
        # exit_worker below does that for torchrun workers.)
        dist.barrier()
        dist.destroy_process_group()


def exit_worker(code: int) -> None:
    """In a process started by torchrun, end it now with ``code``, after flushing stdout and stderr,
    without running interpreter teardown. With torch 2.13's gloo a non-main rank sometimes aborted at
    exit ("terminate called without an active exception", exit -6) after all its work was saved, which
    made torchrun report the whole run as failed. Outside torchrun this returns and does nothing."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def pick_device(name: str) -> torch.device:
    """'auto' takes CUDA, then MPS, then the CPU; under torchrun each rank takes its local GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu.")
        if local_rank() >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK is {local_rank()} but only {torch.cuda.device_count()} CUDA "
                             "devices are visible; start at most that many processes per node "
                             "(--nproc_per_node).")
        return torch.device("cuda", local_rank())
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ValueError("device 'mps' was asked for but torch sees no MPS device; use --device cpu.")
        return torch.device("mps")
    if name != "cpu":
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or mps.")
    return torch.device("cpu")


def local_batch_size(global_batch: int) -> int:
    """The batch each rank trains on. ``batch_size`` in the config is the global batch, so a run resumes
    under another number of processes with the same optimisation. Raises ValueError if it does not split."""
    n = world_size()
    if global_batch % n:
        nearest = global_batch - global_batch % n or n
        raise ValueError(f"batch_size={global_batch} is the global batch and must split evenly over the "
                         f"{n} processes; choose a multiple of {n} (e.g. {nearest}).")
    return global_batch // n


def shard(n: int) -> slice:
    """This rank's contiguous part of n items; concatenating the parts in rank order gives all n."""
    r, w = rank(), world_size()
    return slice(r * n // w, (r + 1) * n // w)


# --- collectives ------------------------------------------------------------------------------------
def _comm_device(t: torch.Tensor) -> torch.device:
    """NCCL takes only CUDA tensors; gloo takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _buckets(tensors: list[torch.Tensor], limit: int) -> Iterable[list[int]]:
    """Indices of ``tensors`` grouped by (dtype, device), each group cut into runs of at most ``limit``
    bytes (a single larger tensor is a bucket of its own)."""
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.dtype, t.device), []).append(i)
    for idx in groups.values():
        bucket, size = [], 0
        for i in idx:
            nbytes = tensors[i].numel() * tensors[i].element_size()
            if bucket and size + nbytes > limit:
                yield bucket
                bucket, size = [], 0
            bucket.append(i)
            size += nbytes
        if bucket:
            yield bucket


def average_gradients(params: list[nn.Parameter], *, bucket_bytes: int = BUCKET_BYTES) -> None:
    """Replace each parameter's gradient with its mean over the ranks, one all-reduce per flat bucket.

    A parameter without a gradient on some rank (its loss did not reach it there) counts as zero, as in
    DDP; one that has no gradient on any rank keeps ``grad = None``, so the optimiser skips it exactly as
    in one process. Each bucket carries one presence flag per parameter to decide that in the same call.
    """
    if not is_distributed() or not params:
        return
    n = world_size()
    for bucket in _buckets(list(params), bucket_bytes):
        ps = [params[i] for i in bucket]
        dtype, device = ps[0].dtype, ps[0].device
        parts = [p.grad.reshape(-1) if p.grad is not None
                 else torch.zeros(p.numel(), dtype=dtype, device=device) for p in ps]
        present = torch.tensor([float(p.grad is not None) for p in ps], dtype=dtype, device=device)
        flat = torch.cat(parts + [present])  # [sum numel + len(ps)]
        comm = _comm_device(flat)
        flat = flat.to(comm)
        dist.all_reduce(flat)  # sum over ranks
        flat = flat.to(ps[0].device)
        present = flat[-len(ps):] > 0
        flat = flat[:-len(ps)].div_(n)
        offset = 0
        for p, has in zip(ps, present.tolist(), strict=True):
            g = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
            if not has:
                p.grad = None
            elif p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)


def mean_scalars(values: list[torch.Tensor]) -> list[float]:
    """0-dim tensors -> their means over the ranks as Python floats, in one collective and one device
    sync. A NaN or inf on any rank makes the mean non-finite everywhere, so every rank reaches the same
    decision about a bad batch."""
    if not values:
        return []
    t = torch.stack([v.detach().float().reshape(()) for v in values])  # [K]
    if is_distributed():
        comm = _comm_device(t)
        t = t.to(comm)
        dist.all_reduce(t)
        t = t / world_size()
    return t.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (e.g. one rank caught SIGTERM)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)], device=_comm_device(torch.empty(0)))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's [n_r, ...] rows concatenated in rank order, [sum n_r, ...], returned on every rank
    on t's device. The n_r may differ (``shard`` gives sizes that differ by one)."""
    if not is_distributed():
        return t
    comm = _comm_device(t)
    sizes = [torch.zeros(1, dtype=torch.long, device=comm) for _ in range(world_size())]
    dist.all_gather(sizes, torch.tensor([t.shape[0]], dtype=torch.long, device=comm))
    sizes = [int(s) for s in sizes]
    padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype, device=comm)
    padded[:t.shape[0]] = t.to(comm)
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)]).to(t.device)


def broadcast_module(module: nn.Module, *, parameters: bool = True) -> None:
    """Copy rank 0's parameters (unless ``parameters=False``) and buffers into every rank, in flat
    buckets: the start of data parallelism, and the batch-norm statistics at a checkpoint."""
    if not is_distributed():
        return
    tensors = ([p.data for p in module.parameters()] if parameters else []) + list(module.buffers())
    for bucket in _buckets(tensors, BUCKET_BYTES):
        ts = [tensors[i] for i in bucket]
        flat = torch.cat([t.reshape(-1) for t in ts]).to(_comm_device(ts[0]))
        dist.broadcast(flat, src=0)
        flat = flat.to(ts[0].device)
        offset = 0
        for t in ts:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """On CUDA with several processes, batch norm takes its statistics over the global batch
    (SyncBatchNorm). On the CPU torch has no synchronised batch norm, so each rank normalises with its
    own slice's statistics: the same math as one process whose batch is the per-rank batch, which is
    why a 2-process CPU run is close to, not equal to, a 1-process run with the same global batch."""
    if is_distributed() and world_size() > 1 and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module
