"""What the machine can do fast, asked once per process: used to pick a precision (1NN screening) and
to warn before a run picks a slow one (bf16 training on a CPU that emulates it)."""

from __future__ import annotations

import functools
import time

import torch
from torch import Tensor


@functools.lru_cache(maxsize=1)
def cpu_bf16_is_fast() -> bool:
    """Whether bf16 matrix products beat float32 on this CPU: they do only with native support
    (AVX512-BF16 or AMX); elsewhere bf16 is emulated and many times slower than float32.

    On Linux the CPU flags answer it (a timing can be fooled by other processes, and the answer is
    cached for the life of the process); elsewhere, time one small product in both precisions.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
        if flags:
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass

    def best_of(a: Tensor, b: Tensor) -> float:
        a @ b  # warm-up: oneDNN builds its kernel on first use
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t0)
        return min(times)

    g = torch.Generator().manual_seed(0)
    a = torch.randn(256, 256, generator=g)
    b = torch.randn(256, 2048, generator=g)
    try:
        t16 = best_of(a.bfloat16(), b.bfloat16())
    except RuntimeError:  # no bf16 matmul kernel in this build
        return False
    return t16 * 1.5 < best_of(a, b)
