"""What every benchmark script shares: the machine and commit a result was measured on, and adding a
row to a table of BENCHMARKS.md.

The scripts put benchmarks/ on sys.path and ``from common import append_row, commit, machine``.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine(cores: int | None = None) -> str:
    """The OS, CPU, core count, torch version and how many threads/cores the measurement used, with the
    1-minute load average (a loaded shared machine explains slow numbers). ``cores``: how many cores the
    benchmark was told to use, when it spreads work over processes; otherwise this process's torch
    thread count is reported."""
    import torch  # here, so scripts that only launch subprocesses start fast

    cpu = cpu_model() or platform.processor() or platform.machine()
    used = f"{cores} used" if cores is not None else f"{torch.get_num_threads()} threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{platform.system()} {cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__} ({used}), "
            f"load average {load:.1f}")


def cpu_model() -> str:
    """The architecture and CPU model from /proc/cpuinfo, and whether the CPU has native bf16 (e.g.
    'x86_64 AMD EPYC, no native bf16'), or '' where there is no /proc/cpuinfo. The same core count can
    mean native or emulated bf16 (30x slower than fp32 on the latter), so speed rows say which."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", "")
    if not model:
        return ""
    from advrep.hardware import cpu_bf16_is_fast  # here, like torch: scripts that only launch start fast

    return f"{platform.machine()} {model}, {'native' if cpu_bf16_is_fast() else 'no native'} bf16"


def commit() -> str:
    """The short hash of HEAD ('uncommitted' before the first commit), with '+dirty' when advrep/ has
    uncommitted changes; 'unknown' without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    try:
        rev, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "advrep")
    except OSError:
        return "unknown"
    return (rev or "uncommitted") + ("+dirty" if dirty else "")


def append_row(path: Path, header: str, row: str, *, unless: str | None = None) -> None:
    """Add ``row`` after the last row of the table that ``header`` describes.

    ``header`` is the section's heading line ('## title' or '### title'), then optionally an intro
    paragraph, then the table head (the lines starting with '|' at its end), separated by blank lines.
    The first time, the whole header is appended at the end of the file (created as '# Benchmarks' if
    missing). The table is looked for between the heading and the next heading of the same or a higher
    level; if the section lost it, the table head is put back at the section's end. With ``unless``, no
    row is added when some line of the file already contains that text (a row measured once per input).
    """
    parts = header.strip("\n").split("\n")
    title = parts[0]
    if not title.startswith("#"):
        raise ValueError(f"header must start with a '#' heading line, not {title!r}")
    n = len(parts)
    while n > 1 and parts[n - 1].startswith("|"):
        n -= 1
    head = parts[n:]
    if not head:
        raise ValueError("header must end with the table head ('| ... |' lines)")

    lines = path.read_text().rstrip("\n").split("\n") if path.exists() else ["# Benchmarks"]
    if unless is not None and any(unless in line for line in lines):
        return
    if title not in lines:
        lines += ["", *parts]
    start = lines.index(title)
    level = len(title) - len(title.lstrip("#"))
    stop = next((i for i in range(start + 1, len(lines))
                 if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level), len(lines))
    if head[0] not in lines[start:stop]:  # the section lost its table: put the head back at its end
        while stop > start + 1 and not lines[stop - 1].strip():
            stop -= 1
        lines[stop:stop] = ["", *head]
        stop += len(head) + 1
    end = lines.index(head[0], start, stop) + len(head)
    while end < len(lines) and lines[end].startswith("|"):  # past the table's last row
        end += 1
    lines.insert(end, row)
    path.write_text("\n".join(lines) + "\n")


def seed_list(text: str) -> list[int]:
    """A --seeds argument: '0-4' -> [0, 1, 2, 3, 4]; '0,5,9' -> [0, 5, 9]. Usable as an argparse
    ``type``: an empty range ('3-1') or a non-number is a usage error that says so."""
    import argparse

    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        try:
            drawn = list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: {part!r} is not a seed or a range; "
                                             "give e.g. 0-4 or 0,5,9") from None
        if not drawn:
            raise argparse.ArgumentTypeError(f"{text!r}: {part!r} is an empty range; give FIRST-LAST with "
                                             "FIRST <= LAST, e.g. 0-4")
        out += drawn
    return out


def training_forwards(method, data, *, batches: int, seed: int = 0):
    """Yield ``(losses, extra)`` of every phase of ``method``'s training forward pass on ``batches`` batches
    of the run's batch size drawn (with replacement, seeded) from ``data``, z seeded alike: networks in
    training mode, no gradients, no update. Every buffer (batch-norm statistics) and the mode are put back
    when the generator finishes or is closed, so the run is left exactly as it was."""
    import torch

    nets = method.nets
    saved = [(b, b.clone()) for b in nets.buffers()]
    was_training = nets.training
    batch = min(method.cfg.batch_size, len(data))
    device = next(nets.parameters()).device
    rng, z_rng = torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed)
    try:
        nets.train()
        with torch.no_grad():
            for _ in range(batches):
                idx = torch.randint(0, len(data), (batch,), generator=rng)
                x = data.x[idx].to(device)
                y = data.y[idx].to(device) if data.y is not None else None
                for phase in range(len(method.phases)):
                    yield method.losses(phase, x, y, z_rng)
    finally:
        for b, old in saved:
            b.copy_(old)
        nets.train(was_training)
