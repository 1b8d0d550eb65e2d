"""Optional TensorBoard logging (``Config.tensorboard``): every metrics.jsonl record as scalars.

The event files go to ``RUN/tensorboard``; view them with ``tensorboard --logdir RUN``. TensorBoard is
not a dependency of advrep: ``torch.utils.tensorboard`` needs the ``tensorboard`` package, so asking
for it without the package fails at the start of training with the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ConfigError

# Keys of a metrics.jsonl record that are bookkeeping, not curves.
_NOT_SCALARS = ("step", "epoch", "kind")


def summary_writer_class():
    """torch.utils.tensorboard.SummaryWriter, or a ConfigError saying how to get it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # torch raises ImportError when the tensorboard package is absent
        raise ConfigError("setting tensorboard=true needs the tensorboard package, which is not "
                          f"installed ({exc}). Install it with `pip install tensorboard`, or set "
                          "tensorboard=false.") from None
    return SummaryWriter


class TensorBoardLog:
    """Writes each record's numbers as scalars at its step: training records under ``train/``, periodic
    evaluations under ``eval/`` and the final summary under ``summary/`` (e.g. ``train/loss_D``,
    ``eval/1nn_test.z``).

    Example::

        log = TensorBoardLog(Path("runs/demo/tensorboard"))
        log.write({"step": 50, "epoch": 0, "loss_D": 1.2})   # scalar train/loss_D at step 50
    """

    def __init__(self, log_dir: Path):
        self.writer = summary_writer_class()(log_dir=str(log_dir))

    def write(self, record: dict[str, Any]) -> None:
        kind = record.get("kind", "")
        prefix = kind if kind in ("eval", "summary", "best", "health", "collapse") else "train"
        step = int(record.get("step", 0))
        for key, value in record.items():
            if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self.writer.add_scalar(f"{prefix}/{key}", float(value), global_step=step)
        # Records come every log_every steps at most, so flushing each one costs little and a killed run
        # keeps its curves.
        self.writer.flush()
        if record.get("kind") == "summary":
            self.close()

    def close(self) -> None:
        self.writer.close()
