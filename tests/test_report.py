"""`advrep report RUN`: one self-contained HTML page, its SVG plots, and that a real browser renders it.

The browser check runs Debian's Chromium headless when /usr/bin/chromium exists (``apt-get install
chromium``) and is skipped, saying so, where it does not.
"""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advrep.cli import main
from advrep.methods import make_config
from advrep.report import ReportError, build_report, read_metrics, write_report
from advrep.svgplot import COLOURS, line_plot_svg, nice_ticks
from advrep.train import train

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny BiGAN on the embedded digits with a 2-D code: curves, evaluations, grids, a checkpoint."""
    run_dir = tmp_path_factory.mktemp("report") / "run"
    cfg = make_config("bigan", data="digits", hidden=16, latent_dim=2, epochs=2, decay_epochs=1, eval_every=1,
                      sample_every=1, log_every=5, progress=False)
    train(cfg, run_dir)
    return run_dir


def _images(page: str) -> list[Image.Image]:
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    return [Image.open(io.BytesIO(base64.b64decode(u))) for u in uris]


def test_report_holds_every_section_and_is_self_contained(run):
    page = build_report(run)
    for heading in ("Numbers", "Training curves", "Images", "Exploring the model", "Config"):
        assert f"<h2>{heading}</h2>" in page
    # Self-contained: no script, and every src/href is inline data (the SVG namespace is a name, not a fetch).
    assert "<script" not in page.lower()
    assert not re.findall(r'(?:src|href)="(?!data:)', page)
    pngs = _images(page)
    # samples, recon, interpolations, neighbours, latent scatter
    assert len(pngs) == 5 and all(im.format == "PNG" for im in pngs)
    assert "codes E(x) of 360 test images" in page  # the 2-D code scatter of the digits' test split
    # Curves: losses, other numbers, learning rate (decays in the last epoch), accuracy, reconstruction,
    # and the per-epoch checks for a lost game.
    assert page.count("<svg") == 6 and "per-epoch checks" in page
    assert "Lost game" not in page
    assert "training losses" in page and "accuracy over training" in page
    summary = json.loads((run / "summary.json").read_text())
    assert f"{summary['1nn_test.z']:.6g}" in page  # the final 1NN accuracy, in the numbers table


def test_a_lost_game_is_flagged_under_the_curves():
    from advrep.report import _curves

    records = [{"kind": "health", "step": 10 * e, "epoch": e, "G_spread": 0.1, "recon_ratio": r}
               for e, r in ((1, 0.9), (2, 1.0), (3, 1.0), (4, 1.01))]
    records.append({"kind": "collapse", "mode": "unlinked", "step": 40, "epoch": 4, "G_spread": 0.1,
                    "recon_ratio": 1.01})
    records.append({"kind": "collapse", "step": 50, "epoch": 5, "G_spread": 0.0})  # from before modes were logged
    plots = _curves(records)
    assert sum(p.startswith("<svg") for p in plots) == 1
    notes = [p for p in plots if "Lost game" in p]
    assert len(notes) == 2
    assert "after epoch 4: G(E(x)) no closer to x than another image (reconstruction ratio 1.01)" in notes[0]
    assert "after epoch 5: G drew one image for every latent (spread 0)" in notes[1]


def test_config_table_marks_changed_settings(run):
    page = build_report(run, model=False)
    assert re.search(r"<tr class=changed><td>latent_dim</td><td>2</td>", page)  # default 50
    assert re.search(r"<tr><td>lr</td><td>0.0002</td>", page)  # the default
    assert "Exploring the model" not in page


def test_metrics_reader_skips_a_line_cut_short(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 50, "loss_D": 0.5}\n{"step": 100, "loss_D": 0.4}\n{"step": 150, "lo')
    assert read_metrics(path) == [{"step": 50, "loss_D": 0.5}, {"step": 100, "loss_D": 0.4}]
    assert read_metrics(tmp_path / "absent.jsonl") == []


def test_report_of_a_run_whose_data_cannot_be_loaded_says_why(tmp_path):
    from advrep.sklearn import AdversarialEncoder

    X = np.random.default_rng(0).uniform(size=(40, 16))
    enc = AdversarialEncoder(latent_dim=2, hidden=8, epochs=1, runs_dir=str(tmp_path), random_state=0).fit(X)
    page = build_report(enc.run_dir_)
    assert "could not be loaded" in page and "sklearn-array" in page
    assert "<h2>Config</h2>" in page


def test_cli_report_and_its_error(run, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["report", str(run), "--out", str(out), "--no-model"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 2
    assert "is not an advrep run directory" in capsys.readouterr().err
    with pytest.raises(ReportError, match="config.json does not exist"):
        write_report(tmp_path)


def test_nice_ticks():
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 97) == [20, 40, 60, 80]
    assert nice_ticks(-0.013, 0.011) == [-0.01, -0.005, 0, 0.005, 0.01]
    with pytest.raises(ValueError, match="finite"):
        nice_ticks(0, float("nan"))


def _polyline(svg: str) -> np.ndarray:
    pts = re.search(r'<polyline points="([^"]+)"', svg).group(1)
    return np.array([[float(v) for v in p.split(",")] for p in pts.split()])  # [P, 2] pixels


def test_line_plot_maps_points_linearly_and_drops_non_finite_ones():
    x = np.arange(11.0)
    svg = line_plot_svg({"y=2x+1": (x, 2 * x + 1)}, width=400, height=200)
    pts = _polyline(svg)
    assert len(pts) == 11
    # A straight line in data is a straight line in pixels: equal steps in both coordinates, y going up.
    steps = np.diff(pts, axis=0)
    np.testing.assert_allclose(steps, np.tile(steps[0], (10, 1)), atol=0.11)
    assert steps[0, 0] > 0 and steps[0, 1] < 0
    assert f'stroke="{COLOURS[0]}"' in svg
    y = 2 * x + 1
    y[3] = np.nan
    assert len(_polyline(line_plot_svg({"gap": (x, y)}))) == 10
    noisy = (np.arange(5000), np.random.default_rng(0).normal(size=5000))
    long = line_plot_svg({"noisy": noisy}, max_points=200)
    assert len(_polyline(long)) == 200
    assert "no finite values" in line_plot_svg({"empty": ([1.0], [float("inf")])})


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium not installed at /usr/bin/chromium "
                    "(apt-get install chromium); the page's rendering is not checked")
def test_headless_chromium_renders_the_page(run, tmp_path):
    page = write_report(run, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,4000", f"--screenshot={shot}",
           page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    assert Image.open(shot).size == (1200, 4000)
    # The SVG curves are on screen: pixels of the first series' colour (#1f77b4, anti-aliasing aside).
    blue = np.abs(pixels - [0x1F, 0x77, 0xB4]).sum(1) < 30
    assert blue.sum() > 500, blue.sum()
    # The embedded PNG grids are on screen: the digits' black backgrounds (the page's text is #222).
    assert (pixels.sum(1) < 30).sum() > 5000
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
