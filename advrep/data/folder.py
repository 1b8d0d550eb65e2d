"""Images from a folder of PNG / JPEG (/ BMP / GIF / WebP / TIFF) files, read with Pillow.

Layout
------
* Flat: ``root/*.png`` -> unlabelled (y = None).
* Class folders: ``root/<class>/**/*.png`` -> labels are positions in the *sorted* list of
  sub-folder names (``"10"`` sorts before ``"2"``, as in torchvision's ImageFolder).  Image
  files directly in ``root`` are then skipped with a warning.
* Splits: if ``root/train/`` exists, ``split`` selects ``root/train/`` or ``root/test/`` (each
  flat or with class folders).  Otherwise the whole folder is the train split and asking for
  ``"test"`` is an error (never silently evaluate on training images).

Hidden files and folders (".*") are ignored.  Other non-image files are skipped with one
warning giving their count.  A file with an image extension that Pillow cannot decode raises
:class:`DataError` naming it.

Mode and size
-------------
All images become one mode: "L" when every image is grayscale (including RGB images whose
three channels are equal), else "RGB"; alpha is dropped.  All become one size: ``size`` if
given (int or (H, W)), else the most common size in the folder (ties: the first in sorted
order).  Other sizes are resized (keeping aspect ratio) until they cover the target, then
center-cropped.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .dataset import Dataset
from .errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR  # Pillow < 9.1 has no Resampling enum


def _visible_files(folder: Path) -> list[Path]:
    """All non-hidden files below ``folder``, recursively, in sorted order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # prune hidden, fix order
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return sorted(out)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _collect(root: Path) -> tuple[list[Path], list[int] | None]:
    """Image paths and (for class folders) their labels; warns about skipped files."""
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in entries if p.is_dir()]
    top_files = [p for p in entries if p.is_file()]
    skipped = [p for p in top_files if not _is_image(p)]
    images = [p for p in top_files if _is_image(p)]
    labels: list[int] | None = None
    if class_dirs:
        if images:
            warnings.warn(
                f"{root}: skipped {len(images)} image file(s) outside the class sub-folders "
                f"(e.g. {images[0].name}); with class folders every image must be inside one.",
                stacklevel=3,
            )
        images, labels = [], []
        for label, d in enumerate(class_dirs):  # sorted names -> label indices
            files = _visible_files(d)
            found = [p for p in files if _is_image(p)]
            skipped += [p for p in files if not _is_image(p)]
            if not found:
                warnings.warn(f"{root}: class folder {d.name!r} (label {label}) has no images.", stacklevel=3)
            images += found
            labels += [label] * len(found)
    if skipped:
        examples = ", ".join(str(p.relative_to(root)) for p in skipped[:3])
        warnings.warn(f"{root}: skipped {len(skipped)} non-image file(s) (e.g. {examples}).", stacklevel=3)
    return images, labels


def _corrupt(path: Path, e: BaseException) -> DataError:
    return DataError(
        f"cannot read image file {path} ({type(e).__name__}: {e}); it is corrupt or not an "
        f"image: fix or remove it."
    )


def _to_8bit(im: Image.Image, mode: str) -> Image.Image:
    """Convert to "L"/"RGB"; 16/32-bit grayscale is rescaled instead of clipped at 255."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        arr = np.asarray(im, dtype=np.float64) / 257.0  # 0..65535 -> 0..255
        im = Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "L")
    return im.convert(mode)


def _fit(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Resize to cover ``target`` (W, H) keeping the aspect ratio, then center-crop to it."""
    if im.size == target:
        return im
    (tw, th), (w, h) = target, im.size
    scale = max(tw / w, th / h)
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    im = im.resize((nw, nh), _BILINEAR)  # Pillow antialiases when shrinking
    left, top = (nw - tw) // 2, (nh - th) // 2
    return im.crop((left, top, left + tw, top + th))


def _parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if int(h) <= 0 or int(w) <= 0:
        raise DataError(f"image size must be positive, got {size!r}")
    return int(w), int(h)  # PIL order (W, H)


def load_folder(
    path: str | os.PathLike,
    split: str = "train",
    *,
    size: int | tuple[int, int] | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a folder of images (see the module docstring) as x [N, C, H, W], y [N] or None."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder.")
    name = name or root.resolve().name
    if (root / "train").is_dir():
        if not (root / split).is_dir():
            raise DataError(f"image folder {root} has a train/ sub-folder but no {split}/ sub-folder.")
        root = root / split
    elif split != "train":
        raise DataError(
            f"image folder {root} has no {split} split: use split='train' for all of it, or put images in "
            f"{root}/train/ and {root}/{split}/."
        )
    files, labels = _collect(root)
    if not files:
        exts = " ".join(sorted(IMAGE_EXTENSIONS))
        raise DataError(f"no images found in {root} (looked for {exts}, directly or in class sub-folders).")

    # Pass 1, headers only (cheap): sizes and modes, so pass 2 can shrink each image as it is
    # decoded instead of holding every full-size image in memory.
    sizes: list[tuple[int, int]] = []
    all_gray = True
    for p in files:
        try:
            with Image.open(p) as im:
                sizes.append(im.size)
                all_gray &= im.mode in _GRAY_MODES
        except Exception as e:  # Pillow raises many types (UnidentifiedImageError, SyntaxError, ...)
            raise _corrupt(p, e) from None
    target = _parse_size(size) if size is not None else Counter(sizes).most_common(1)[0][0]

    # Pass 2: decode, convert, fit.  P-mode images may still be gray: checked after decoding.
    mode = "L" if all_gray else "RGB"
    arrays = []
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()  # full decode: where truncated / damaged pixel data shows up
                converted = _to_8bit(im, mode)
        except Exception as e:
            raise _corrupt(p, e) from None
        arrays.append(np.asarray(_fit(converted, target)))  # [H, W] or [H, W, 3] uint8
    stacked = np.stack(arrays)  # [N, H, W] ("L") or [N, H, W, 3] ("RGB"), uint8
    if mode == "RGB":
        stacked = stacked.transpose(0, 3, 1, 2)  # [N, 3, H, W]
        if (stacked[:, :1] == stacked[:, 1:]).all():
            stacked = stacked[:, :1]  # every image is gray stored as RGB: keep one channel
    else:
        stacked = stacked[:, None]  # [N, 1, H, W]
    x = torch.from_numpy(np.ascontiguousarray(np.divide(stacked, 255, dtype=np.float32)))
    y = None if labels is None else torch.tensor(labels, dtype=torch.int64)  # [N]
    return Dataset(x, y, name)
