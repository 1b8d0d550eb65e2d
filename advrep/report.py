"""``advrep report RUN``: one self-contained HTML page about a run, to open in any browser or attach
to an issue.

The page holds the run's config (settings that differ from the defaults in bold), its numbers
(summary.json, eval.json, fid.json), the training curves and the accuracy over time from
metrics.jsonl as inline SVG, the sample and reconstruction grids the loop wrote, and, drawn from the
checkpoint on the spot, latent interpolations between real images, the real images nearest to
samples and, where the code is 2-D, the scatter of test codes coloured by label. Every image is a PNG
inside the page as a base64 data URI; there is no JavaScript and nothing is fetched from a network.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .images import make_grid
from .svgplot import line_plot_svg

__all__ = ["ReportError", "read_metrics", "build_report", "write_report"]


class ReportError(ValueError):
    """The folder given is not a run directory."""

_CSS = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; }
h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-family: monospace; }
tr.changed td { font-weight: bold; }
figure { display: inline-block; margin: 8px 16px 8px 0; vertical-align: top; }
figure img { image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #555; max-width: 640px; }
.note { color: #777; font-size: 13px; }
.warn { color: #a00; font-size: 14px; }
"""


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file, skipping a line cut short by a kill. [] when absent."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def first_record(path: str | Path, kind: str) -> dict[str, Any] | None:
    """The first record of this kind in a metrics.jsonl file (e.g. ``"collapse"``), or None."""
    return next((r for r in read_metrics(path) if r.get("kind") == kind), None)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _array_png(array: np.ndarray, min_width: int = 0) -> bytes:
    """uint8 [H, W] or [H, W, 3] -> PNG bytes, enlarged by an integer factor to at least min_width."""
    img = Image.fromarray(np.ascontiguousarray(array))
    if min_width and img.width < min_width:
        factor = math.ceil(min_width / img.width)
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _figure(png: bytes, caption: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return (f'<figure><img src="{_png_uri(png)}"{size} alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return html.escape(json.dumps(value) if isinstance(value, (list, dict)) else str(value))


def _numbers_table(values: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td class='num'>{_fmt(v)}</td></tr>"
                   for k, v in sorted(values.items()) if k != "kind")
    return f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"


def _config_table(config: dict[str, Any]) -> str:
    """Every setting; those that differ from Config's and the method's defaults in bold."""
    from .methods import make_config

    try:
        defaults = make_config(config.get("method", "bigan")).to_dict()
    except (ValueError, KeyError):
        defaults = {}
    rows = []
    for key in sorted(config):
        changed = key in defaults and defaults[key] != config[key] and key != "image_shape"
        rows.append(f"<tr{' class=changed' if changed else ''}><td>{html.escape(key)}</td>"
                    f"<td>{_fmt(config[key])}</td></tr>")
    return "<table><tr><th>setting</th><th>value</th></tr>" + "".join(rows) + "</table>"


def _curves(records: list[dict[str, Any]]) -> list[str]:
    """SVG plots: the losses and the other logged numbers against step; evaluations and the trainer's
    per-epoch checks against epoch; and a note for each lost game those checks flagged."""
    train = [r for r in records if "kind" not in r and "step" in r]
    evals = [r for r in records if r.get("kind") == "eval"]
    plots = []

    def series(rows, keys, x="step"):
        return {k: ([r[x] for r in rows if isinstance(r.get(k), (int, float))],
                    [r[k] for r in rows if isinstance(r.get(k), (int, float))]) for k in keys}

    keys = sorted({k for r in train for k, v in r.items() if isinstance(v, (int, float))}
                  - {"step", "epoch", "time"})
    losses = [k for k in keys if k.startswith("loss_")]
    others = [k for k in keys if not k.startswith("loss_") and k != "lr"]
    if losses:
        plots.append(line_plot_svg(series(train, losses), title="training losses", xlabel="step",
                                   ylabel="loss"))
    if others:
        plots.append(line_plot_svg(series(train, others), title="other logged numbers", xlabel="step"))
    if "lr" in keys and len({r.get("lr") for r in train}) > 1:
        plots.append(line_plot_svg(series(train, ["lr"]), title="learning rate", xlabel="step", log_y=True,
                                   height=220))
    eval_keys = sorted({k for r in evals for k in r if k.startswith(("1nn_", "probe"))})
    if eval_keys:
        plots.append(line_plot_svg(series(evals, eval_keys, "epoch"), title="accuracy over training (%)",
                                   xlabel="epoch", ylabel="accuracy %"))
    recon_keys = sorted({k for r in evals for k in r if k in ("recon_ratio", "recon_mse")})
    if recon_keys:
        plots.append(line_plot_svg(series(evals, recon_keys, "epoch"), title="reconstruction over training",
                                   xlabel="epoch", height=240))
    # the trainer's per-epoch checks for a lost game (docs/reliability.md)
    health = [r for r in records if r.get("kind") == "health"]
    health_keys = [k for k in ("recon_ratio", "G_spread") if any(k in r for r in health)]
    if health_keys:
        names = {"recon_ratio": "reconstruction ratio", "G_spread": "G's spread"}
        plots.append(line_plot_svg(series(health, health_keys, "epoch"), height=240, xlabel="epoch",
                                   title=f"per-epoch checks ({', '.join(names[k] for k in health_keys)})"))
    for r in records:
        if r.get("kind") == "collapse":
            what = ("G(E(x)) no closer to x than another image (reconstruction ratio "
                    f"{_fmt(r.get('recon_ratio'))})" if r.get("mode") == "unlinked" else
                    f"G drew one image for every latent (spread {_fmt(r.get('G_spread'))})")
            plots.append(f"<p class=warn><b>Lost game</b> flagged after epoch {_fmt(r.get('epoch'))}: "
                         f"{what}; see docs/reliability.md.</p>")
    return plots


def _saved_grids(run_dir: Path) -> list[str]:
    """The loop's newest sample and reconstruction grids, and every PNG `advrep eval` wrote."""
    out = []
    for folder, what in (("samples", "samples G(z) from a fixed z"),
                         ("recon", "test images x beside reconstructions G(E(x))")):
        pngs = sorted((run_dir / folder).glob("*.png"))
        if pngs:
            caption = f"{what}, {pngs[-1].stem} ({folder}/{pngs[-1].name})"
            out.append(_figure(pngs[-1].read_bytes(), caption, 560))
    for png in sorted((run_dir / "figures").glob("*.png")):
        out.append(_figure(png.read_bytes(), f"figures/{png.name} (written by advrep eval)", 560))
    return out


def _live_figures(run_dir: Path, *, data: str | None, data_dir: str | None, seed: int, pairs: int,
                  steps: int) -> list[str]:
    """Figures drawn from the checkpoint now: interpolations, nearest neighbours, the 2-D code scatter."""
    import torch

    from .checkpoint import CheckpointError, load_model
    from .data import DataError, load_run_dataset
    from .explore import interpolation_grid, nearest_real, neighbour_grid
    from .latent_plots import scatter_image

    try:
        method = load_model(run_dir)
    except CheckpointError as exc:
        return [f"<p class=note>No checkpoint to draw from ({html.escape(str(exc))}).</p>"]
    cfg = method.cfg
    try:
        test = load_run_dataset(cfg, "test", data=data, data_dir=data_dir, run=run_dir)
        train = load_run_dataset(cfg, "train", data=data, data_dir=data_dir, run=run_dir)
    except (DataError, ValueError, OSError) as exc:
        return [f"<p class=note>Data {html.escape(str(data or cfg.data))} could not be loaded, so "
                f"interpolations, neighbours and the code scatter are not drawn ({html.escape(str(exc))})"
                + (".</p>" if data is None else ". Check --data.</p>")]
    out = []
    with torch.no_grad():
        if method.has_encoder and method.has_generator:
            try:
                grid = interpolation_grid(method, test.x, pairs=pairs, steps=steps, seed=seed)
                out.append(_figure(_array_png(make_grid(grid, nrow=steps + 2), 560),
                                   "latent interpolations: each row runs from a test image x_a (left) "
                                   "through G on the line from E(x_a) to E(x_b) to x_b (right)", 560))
            except ValueError as exc:
                out.append(f"<p class=note>No interpolation: {html.escape(str(exc))}</p>")
        if method.has_generator:
            found = nearest_real(method, train.x, n=8, k=5, seed=seed)
            mean_d = float(found.distances[:, 0].mean())
            out.append(_figure(_array_png(make_grid(neighbour_grid(found), nrow=6), 420),
                               "nearest training images: each row is a sample G(z), then its 5 nearest "
                               "training images in pixel space (mean distance to the nearest "
                               f"{mean_d:.3g})", 420))
        if method.has_encoder:
            x = test.x[:5000]
            z = torch.cat([method.encode(x[i:i + 1000]).cpu() for i in range(0, len(x), 1000)])
            if z.ndim == 2 and z.shape[1] == 2:
                y = test.y[:5000] if test.y is not None else None
                out.append(_figure(_array_png(scatter_image(z, y)),
                                   f"codes E(x) of {len(x)} test images, coloured by label", 560))
    return out


def build_report(run_dir: str | Path, *, model: bool = True, data: str | None = None,
                 data_dir: str | None = None, seed: int = 0, pairs: int = 6, steps: int = 8) -> str:
    """The report page of ``run_dir`` as an HTML string (see the module docstring).

    model=False leaves out the figures drawn from the checkpoint (no model or data is loaded).

    Example::

        html = build_report("runs/digits")
        Path("report.html").write_text(html)
    """
    from .checkpoint import read_json_object

    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ReportError(f"{config_path} does not exist: {run_dir} is not an advrep run directory "
                                "(expected config.json, metrics.jsonl, checkpoints/).")
    config, why = read_json_object(config_path)
    if config is None:
        raise ReportError(f"{config_path} cannot be read ({why}); `advrep info {run_dir}` shows the settings "
                          "saved in its checkpoint, if one was written, and the next `advrep train ... --resume` "
                          "rewrites the file.")
    records = read_metrics(run_dir / "metrics.jsonl")
    numbers, unreadable = {}, []
    for name in ("summary.json", "eval.json", "fid.json"):
        if (run_dir / name).is_file():
            values, why = read_json_object(run_dir / name)
            if values is None:
                unreadable.append((name, why))
            else:
                numbers[name] = values
    last_eval = next((r for r in reversed(records) if r.get("kind") == "eval"), None)
    from .methods import METHODS

    method = config.get("method", "?")
    description = getattr(METHODS.get(method), "description", "")
    train_records = [r for r in records if "kind" not in r]
    progress = (f"{train_records[-1].get('step')} steps, epoch {train_records[-1].get('epoch', 0) + 1}"
                if train_records else "no training steps logged")
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>advrep report: "
             f"{html.escape(run_dir.name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>advrep run <code>{html.escape(str(run_dir))}</code></h1>",
             f"<p><b>{html.escape(method)}</b>: {html.escape(description)}<br>data "
             f"<b>{html.escape(str(config.get('data')))}</b>, "
             f"images {html.escape(str(config.get('image_shape')))}, "
             f"latent {config.get('latent_dim')}-d {html.escape(str(config.get('prior')))}; {progress}. "
             f"<span class=note>Report written {datetime.datetime.now().isoformat(timespec='seconds')}."
             "</span></p>",
             "<h2>Numbers</h2>"]
    for name, values in numbers.items():
        parts.append(f"<h3>{name}</h3>" + _numbers_table(values))
    again = {"summary.json": "its numbers are also the last 'summary' line of metrics.jsonl",
             "eval.json": f"run <code>advrep eval {html.escape(str(run_dir))}</code> again",
             "fid.json": f"run <code>advrep fid {html.escape(str(run_dir))}</code> again"}
    for name, why in unreadable:
        parts.append(f"<p class=note>Not shown: {name} cannot be read ({html.escape(why)}); {again[name]}.</p>")
    if last_eval and not numbers:  # a run still training: its latest periodic evaluation
        parts.append(f"<h3>last evaluation during training (epoch {last_eval.get('epoch')})</h3>"
                     + _numbers_table({k: v for k, v in last_eval.items()
                                       if k not in ("step", "epoch", "time")}))
    if not numbers and not unreadable and not last_eval:
        parts.append("<p class=note>No evaluation yet: run "
                     f"<code>advrep eval {html.escape(str(run_dir))}</code>.</p>")
    parts.append("<h2>Training curves</h2>")
    plots = _curves(records)
    parts.extend(plots or ["<p class=note>metrics.jsonl holds no records yet.</p>"])
    parts.append("<h2>Images</h2>")
    grids = _saved_grids(run_dir)
    parts.extend(grids or ["<p class=note>No sample or reconstruction grids were written "
                           "(sample_every=0?).</p>"])
    if model:
        parts.append("<h2>Exploring the model</h2>")
        parts.extend(_live_figures(run_dir, data=data, data_dir=data_dir, seed=seed, pairs=pairs, steps=steps))
    parts.append("<h2>Config</h2><p class=note>Settings that differ from the method's defaults are in "
                 "bold.</p>")
    parts.append(_config_table(config))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out: str | Path | None = None, **kwargs: Any) -> Path:
    """Write ``build_report(run_dir, **kwargs)`` to ``out`` (default RUN/report.html); returns the path."""
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(build_report(run_dir, **kwargs), encoding="utf-8")
    tmp.replace(out)
    return out
