"""torchrun's environment in one place. In a single process every function is a cheap no-op, so the
training loop has one code path for 1 or N processes."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


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


def init(device: torch.device) -> None:
    """Join the process group torchrun set up (nccl on CUDA, gloo otherwise)."""
    if world_size() > 1 and not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


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
        return torch.device("cuda", local_rank())
    if name not in ("cpu", "mps"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or mps.")
    return torch.device(name)
