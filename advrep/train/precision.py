"""Mixed precision for the training loop: autocast around a method's forward passes, and for fp16 a
gradient scaler. Methods never see it; ``precision="fp32"`` makes every call here a no-op.

* ``bf16``: autocast to bfloat16 on CPU, CUDA (and MPS). bfloat16 keeps fp32's exponent range, so
  gradients cannot underflow and no scaler is needed.
* ``fp16``: autocast to float16 with torch's GradScaler (loss scaled up before backward, gradients
  unscaled before the step, a step skipped and the scale halved when a gradient overflows). Only on
  CUDA: the CPU has no fast fp16 path, so asking for it there is an error rather than a slow surprise.

Parameters, optimiser state and the losses the loop checks and logs stay fp32.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch

from .. import distributed as dist
from ..config import ConfigError
from ..hardware import cpu_bf16_is_fast

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    def __init__(self, name: str, device: torch.device | str):
        device = torch.device(device)
        if name not in PRECISIONS:
            raise ConfigError(f"setting 'precision' is {name!r}; choose one of {', '.join(PRECISIONS)}.")
        if name == "fp16" and device.type != "cuda":
            raise ConfigError(f"precision fp16 needs a gradient scaler, which advrep runs only on CUDA, but "
                              f"the device is {device.type}; use --precision bf16 (or fp32) there.")
        if name == "bf16" and device.type == "cpu" and dist.is_main() and not cpu_bf16_is_fast():
            # Emulated bf16: a BiGAN MNIST step ran at 0.03x the fp32 rate on such a CPU (BENCHMARKS.md).
            warnings.warn("precision bf16: this CPU has no fast bf16 matrix products (no AVX512-BF16 or AMX), so "
                          "bf16 runs emulated, many times slower than fp32; use --set precision=fp32 here, or bf16 "
                          "on a CPU or GPU with native bf16.", stacklevel=2)
        self.name, self.device, self.dtype = name, device, PRECISIONS[name]
        self.scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None
        self._pending = False  # the scaler unscaled or stepped since its last update()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, inputs: list[torch.Tensor], *, retain_graph: bool) -> None:
        loss = loss.float()  # a loss left in low precision by autocast is summed into fp32 grads anyway
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        torch.autograd.backward(loss, inputs=inputs, retain_graph=retain_graph)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients to their true size (before reading a gradient norm); fp16 only."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
            self._pending = True

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)  # skipped when the gradients hold an inf or NaN
            self._pending = True

    def update(self) -> None:
        """After a phase's steps (or a rejected phase): adjust the loss scale."""
        if self.scaler is not None and self._pending:
            self.scaler.update()
            self._pending = False

    def logs(self) -> dict[str, float]:
        return {"loss_scale": float(self.scaler.get_scale())} if self.scaler is not None else {}

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


FP32 = Precision("fp32", "cpu")
