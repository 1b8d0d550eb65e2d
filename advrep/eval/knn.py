"""Exact k-nearest-neighbour search and k-NN classification accuracy.

Why not a plain fp32 brute force: 10k queries x 60k references at 1024-d is 1.2 TFLOP, and float32
matrix products on two CPU cores run at ~180 GFLOP/s, so it cannot finish in under ~7 s.  bfloat16
products run ~4x faster on CPUs with AVX512-BF16/AMX, but carry only ~3 significant digits.  So the
search runs in three steps and the answer is still exact:

1. *Screen*: a cheap score matrix (bf16 when that is fast here, else fp32), reduced tile by tile to a
   short candidate list of ``k + 11`` references per query, plus a lower bound ``lb`` on the score of
   every reference that was *not* kept.
2. *Refine*: the candidates' distances recomputed in float32 from the differences (``sum((q - r)^2)``),
   which is also more accurate than the ``|q|^2 - 2 q.r + |r|^2`` expansion.
3. *Certify*: a rigorous bound on the screening error turns ``lb`` into a lower bound on every
   non-candidate's refined distance.  If it is above the k-th refined distance the row is provably
   exact; otherwise the row is screened again with 8x the candidates, then that in fp32, and at last
   exhaustively.  On ordinary data all but a few rows in 10^4 certify at the first step.

Result semantics (identical whichever screening precision ran): for each query, the k references with
the smallest refined distance, nearest first; among exactly equal distances the lower index wins.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..hardware import cpu_bf16_is_fast
from ._common import as_features, as_labels

__all__ = ["nearest_neighbours", "knn_accuracy"]

_GROUP = 16  # references per group in the screening reduction (see _screen_rows)
_EXTRA = 11  # candidates carried beyond k out of screening
_FIRST_EXTRA = 3  # of which the first refinement pass takes only this many beyond k
_TILE_ELEMS = 1 << 22  # screening tile size in elements (8 MB in bf16)
_SUB_ROWS = 256  # queries per screening tile
_CHUNK_ROWS = 8192  # rows per step when preparing references
_REFINE_ELEMS = 1 << 22  # elements of a [rows, cands, D] difference tensor built at once
_BRUTE_ELEMS = 1 << 26  # elements of one [rows, R] float64 distance block of the device brute force
_U32 = 2.0**-24  # unit roundoff of float32
_UNIT = {torch.float32: _U32, torch.bfloat16: 2.0**-8}
# How many query rows the last nearest_neighbours call settled at each step (benchmarks and tests).
last_run_stats: dict[str, int] = {}


def _round_into(x: Tensor, out: Tensor) -> Tensor:
    """Copy float32 x [n, D] into out, rounding to out's dtype; return each row's rounding-error norm [n]."""
    out.copy_(x)
    if out.dtype == torch.float32:
        return torch.zeros(x.shape[0])
    return (out.float() - x).norm(dim=1)  # exact: x and its rounding are within a factor of 2


def _unit_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Rows scaled to unit length, zero rows left at zero: (unit [N, D], is_zero [N])."""
    norm = x.norm(dim=1, keepdim=True)  # [N, 1]
    zero = norm[:, 0] == 0
    return x / torch.where(norm == 0, 1.0, norm), zero


def _norm_dev(x: Tensor) -> float:
    """max | |x_i|^2 - 1 | over the non-zero rows of x [N, D] (float64; slightly widened)."""
    sq = torch.cat([x[s : s + _CHUNK_ROWS].double().pow(2).sum(1) for s in range(0, x.shape[0], _CHUNK_ROWS)])
    sq = sq[sq > 0]
    return float((sq - 1.0).abs().max()) * 1.01 + 1e-15 if sq.numel() else 0.0


class _Screen:
    """Reference-side screening data in one dtype, plus the constants of its error bound.

    Both metrics become one addmm of centred copies qc = q - m, rc = r - m (m = mean reference; centring
    keeps the norms, and so the rounding errors, on the scale of the distances rather than of the data's
    offset -- essential for cosine on nearly parallel features):
      score s(q, r) = bias_r - alpha qc.rc   and   true distance = s + C_q
      euclidean: alpha = 2, bias_r = |rc|^2 - w0,   C_q = |qc|^2 + w0              (= |q - r|^2)
      cosine:    alpha = 1, bias_r = -r.m - w0,     C_q = 1 - q.m + |m|^2 + w0     (= 1 - q.r, unit rows)
    (pure algebra, true for any vectors, zero rows included).  The constant w0, the bias's mid-range,
    makes the bias small so rounding it to bf16 costs little.  The bias goes through addmm rather than
    as an extra matrix column because a K of 1026 instead of 1024 makes oneDNN's bf16 kernel ~1.7x slower.
    """

    def __init__(self, refs: Tensor, metric: str, dtype: torch.dtype) -> None:
        self.euclid = metric == "euclidean"
        self.dtype, self.alpha = dtype, (2.0 if self.euclid else 1.0)
        self.u_out = _UNIT[dtype]  # rounding of the product's output to dtype
        n_ref, n_dim = refs.shape
        self.gamma = 2.0 * (n_dim + 3) * _U32  # float32 dot-product error growth, doubled for slack
        self.mean = m = refs.mean(0)  # [D]
        m64 = m.double()
        self.msq = float(m64 @ m64)
        self.ra = torch.empty(n_ref, n_dim, dtype=dtype)  # [R, D] rc rounded to dtype
        # For cosine the bias and the per-query constants are computed in float64: their float32 error
        # bounds (~D u32 |r||m|) would swamp the tiny distances of nearly parallel features.
        raw = torch.empty(n_ref, dtype=torch.float64)  # [R] bias before the shift
        rc_sq = torch.empty(n_ref)  # [R] |rc|^2
        eb = 0.0
        # Row chunks keep every temporary small: the whole pass costs a few reads of refs.
        for s in range(0, n_ref, _CHUNK_ROWS):
            r = refs[s : s + _CHUNK_ROWS]  # [c, D]
            rc = r - m
            eb = max(eb, float(_round_into(rc, self.ra[s : s + _CHUNK_ROWS]).max()))
            rc_sq[s : s + _CHUNK_ROWS] = (rc * rc).sum(1)
            if not self.euclid:
                raw[s : s + _CHUNK_ROWS] = -(r.double() @ m64)
        if self.euclid:  # float32 is enough here: its error is tiny next to the distances involved
            raw = rc_sq.double()
        self.b = float(rc_sq.max().sqrt()) * (1 + self.gamma)  # max |rc|
        self.eb = eb  # max rounding-error norm |rc~ - rc| of a reference
        self.b_low = self.b + eb  # bounds max |rc~| (triangle inequality)
        self.w0 = float(raw.max() + raw.min()) / 2.0
        shifted = raw - self.w0  # [R] float64
        self.bias = shifted.to(dtype)  # [R]
        self.bias_err = float((self.bias.double() - shifted).abs().max())  # its rounding to dtype
        self.bias_err += (self.gamma if self.euclid else 1e-12) * float(raw.abs().max())  # error of raw

    def queries(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Query side: (qa [B, D] in dtype, |qc| [B], rounding-error norm [B], C_q [B] float64)."""
        qc = q - self.mean  # [B, D]
        qa = torch.empty(qc.shape, dtype=self.dtype)
        ea = _round_into(qc, qa)
        qc64 = qc.double()
        a = (qc64 * qc64).sum(1)  # [B] |qc|^2
        if self.euclid:
            c = a + self.w0
        else:
            c = 1.0 - q.double() @ self.mean.double() + self.msq + self.w0
        return qa, a.sqrt().float() * (1 + self.gamma), ea, c

    def product(self, qa: Tensor, j0: int, j1: int) -> Tensor:
        """Scores of the queries qa [B, D] against references j0:j1: [B, j1 - j0] in dtype."""
        return torch.addmm(self.bias[j0:j1], qa, self.ra[j0:j1].T, alpha=-self.alpha)

    def lower_bound(self, lb: Tensor, a: Tensor, ea: Tensor, c: Tensor, unit_dev: float) -> Tensor:
        """Lower bound [B] on the refined distance of any reference whose score is >= lb [B].

        lb = +inf (every reference was a candidate) gives +inf.  unit_dev (cosine) bounds how far
        1 - (|q|^2 + |r|^2) / 2 strays from 0 for the rows, which were only rounded to unit length.
        Worked in float64 so the bound's own arithmetic adds nothing noticeable.
        """
        g, al = self.gamma, self.alpha
        none_left = torch.isinf(lb)
        lb, a, ea = torch.where(none_left, 0.0, lb).double(), a.double(), ea.double()
        # |computed s - exact s| <= rounded inputs (q~.r~ - q.r = dq.r~ + q.dr) + float32 accumulation
        # + the bias's error + one rounding of s to the output dtype (checked in the tests) + the
        # centring subtraction, which moved the points by at most u32 (|qc| + |rc|); x1.25 for slack.
        err = al * (ea * self.b_low + a * self.eb) + al * g * (a + ea) * self.b_low + self.bias_err
        err = err + self.u_out * lb.abs() / (1.0 - self.u_out) + 3.0 * al * _U32 * (a + self.b) ** 2
        t = lb - 1.25 * err + c * (1.0 - 1e-12)  # <= the exact distance of every non-candidate
        # refinement (cosine: |q - r|^2 / 2 of rows of length only ~1) and its float32 rounding
        t = (t - unit_dev).clamp_min(0.0) * (1.0 - g)
        return torch.where(none_left, float("inf"), t)


def _screen(qa: Tensor, scr: _Screen, n_cand: int) -> tuple[Tensor, Tensor, Tensor]:
    """Candidates by score: (indices [B, n_cand], -1 = none; their scores [B, n_cand], ascending;
    lower bound [B] on the score of every reference not among them).

    Rows go through in sub-blocks of _SUB_ROWS, so tiles are short and wide ([256, 16384]): the per-row
    selection runs over long rows (a [4096, 1024] tile was ~5x slower) and a tile stays cache-sized
    ([1024, 16384] tiles were ~25% slower on an idle machine, though they suffer less when other
    processes compete for the cores and every thread barrier waits for a descheduled thread).
    """
    parts = [_screen_rows(qa[s : s + _SUB_ROWS], scr, n_cand) for s in range(0, qa.shape[0], _SUB_ROWS)]
    return tuple(torch.cat([p[j] for p in parts]) for j in range(3))  # type: ignore[return-value]


def _screen_rows(qa: Tensor, scr: _Screen, n_cand: int) -> tuple[Tensor, Tensor, Tensor]:
    """_screen for one sub-block of rows.

    Within a tile the references are split into G strided groups (columns j, j + n/G, ...): a min over
    the group axis is a fast vectorised reduction, only the n_cand groups with the smallest minima are
    gathered and searched (everything outside them scores at least the n_cand-th smallest minimum,
    which goes into lb) -- a full topk over each row costs several times more.
    """
    n_q, n_ref = qa.shape[0], scr.ra.shape[0]
    width = max(_GROUP, (_TILE_ELEMS // max(n_q, 1)) // _GROUP * _GROUP)
    lb = torch.full((n_q,), float("inf"))
    vals, idxs = [], []
    for j0 in range(0, n_ref, width):
        tile = scr.product(qa, j0, j0 + width)  # [B, t]
        if tile.shape[1] % _GROUP:  # last tile: pad with +inf so it splits into whole groups
            tile = F.pad(tile, (0, _GROUP - tile.shape[1] % _GROUP), value=float("inf"))
        n_grp = tile.shape[1] // _GROUP
        grp_min = tile.view(n_q, _GROUP, n_grp).amin(1).float()  # [B, n_grp]
        n_sel = min(n_cand, n_grp)
        gv, gi = grp_min.topk(n_sel, dim=1, largest=False, sorted=True)  # [B, n_sel]
        if n_sel < n_grp:
            lb = torch.minimum(lb, gv[:, -1])  # the unselected groups hold nothing smaller
        cols = (gi[:, :, None] + n_grp * torch.arange(_GROUP)).reshape(n_q, -1)  # [B, n_sel * G]
        v = tile.gather(1, cols).float()  # [B, n_sel * G]
        n_keep = min(n_cand, v.shape[1])
        ev, ei = v.topk(n_keep, dim=1, largest=False, sorted=True)  # [B, n_keep]
        if n_keep < v.shape[1]:
            lb = torch.minimum(lb, ev[:, -1])
        vals.append(ev)
        idxs.append(cols.gather(1, ei) + j0)
    v, i = torch.cat(vals, 1), torch.cat(idxs, 1)  # [B, n_tiles * n_keep]
    if v.shape[1] > n_cand:
        ev, ei = v.topk(n_cand + 1, dim=1, largest=False, sorted=True)
        lb = torch.minimum(lb, ev[:, -1])
        v, i = ev[:, :n_cand], i.gather(1, ei[:, :n_cand])
    elif len(vals) > 1:  # few, narrow tiles: the concatenation is not sorted yet
        v, p = v.sort(dim=1)
        i = i.gather(1, p)
    # padding columns score +inf and never beat a real reference; flag them so refinement skips them
    return torch.where(i >= n_ref, -1, i), v, lb


class _Refiner:
    """The refined distance, the one definition every path returns.

    Euclidean: |q - r|^2 from the differences.  Cosine: |q - r|^2 / 2 of the unit rows, which equals
    1 - cos but keeps full relative precision for nearly parallel vectors; 1 when either row is zero.
    """

    def __init__(self, refs: Tensor, zero: Tensor | None) -> None:
        self.refs, self.zero = refs, zero  # [R, D], [R] bool or None (euclidean)

    def pairs(self, q: Tensor, q_zero: Tensor | None, j: Tensor | slice) -> Tensor:
        """q [b, D] against refs[j] (j: [b, C] indices, or a slice shared by all rows): [b, C]."""
        r = self.refs[j] if isinstance(j, Tensor) else self.refs[None, j]  # [b or 1, C, D]
        d = ((r - q[:, None, :]) ** 2).sum(-1)  # [b, C]
        if self.zero is None:
            return d
        either = q_zero[:, None] | (self.zero[j] if isinstance(j, Tensor) else self.zero[None, j])
        return torch.where(either, 1.0, 0.5 * d)

    def candidates(self, q: Tensor, q_zero: Tensor | None, idx: Tensor) -> Tensor:
        """Distances of q [B, D] to refs[idx] ([B, C], -1 = none, which gives +inf): [B, C]."""
        out = torch.empty(idx.shape)
        step = max(1, _REFINE_ELEMS // max(1, idx.shape[1] * q.shape[1]))
        for s in range(0, q.shape[0], step):
            ii = idx[s : s + step]
            qz = None if q_zero is None else q_zero[s : s + step]
            d = self.pairs(q[s : s + step], qz, ii.clamp_min(0))
            out[s : s + step] = torch.where(ii < 0, float("inf"), d)
        return out

    def exhaustive(self, q: Tensor, q_zero: Tensor | None, k: int) -> tuple[Tensor, Tensor]:
        """k nearest by refined distance to every reference (last resort: rows with masses of ties)."""
        n_ref, n_dim = self.refs.shape
        rows = max(1, _TILE_ELEMS // n_ref)
        ds, ids = [], []
        for s in range(0, q.shape[0], rows):
            qb = q[s : s + rows]  # [b, D]
            qz = None if q_zero is None else q_zero[s : s + rows]
            step = max(1, _REFINE_ELEMS // (qb.shape[0] * n_dim))
            d = torch.cat([self.pairs(qb, qz, slice(j, j + step)) for j in range(0, n_ref, step)], 1)
            d, order = d.sort(dim=1, stable=True)  # [b, R]; stable: equal distances keep index order
            ds.append(d[:, :k])
            ids.append(order[:, :k])
        return torch.cat(ds), torch.cat(ids)


def _order(d: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each row [B, C] by (distance, index): by index first, then stably by distance."""
    idx_sorted, p = torch.where(idx < 0, torch.iinfo(idx.dtype).max, idx).sort(dim=1)
    d, p2 = d.gather(1, p).sort(dim=1, stable=True)
    return d, idx_sorted.gather(1, p2)


def _attempt(
    q: Tensor, q_zero: Tensor | None, scr: _Screen, refiner: _Refiner, k: int, n_cand: int, unit_dev: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Screen, refine and certify queries q [b, D]: (certified [b] bool, distances [b, k], indices [b, k]).

    Only the rows marked certified carry a (provably exact) answer.  The best-scored few candidates are
    refined first (every other reference scores >= the next candidate's score); only the rows that this
    cannot certify pay for refining all n_cand.
    """
    qa, a, ea, c = scr.queries(q)
    cand, score, lb = _screen(qa, scr, n_cand)  # [b, n_cand], [b, n_cand], [b]
    ok = torch.zeros(q.shape[0], dtype=torch.bool)
    out_d, out_i = torch.empty(q.shape[0], k), torch.empty(q.shape[0], k, dtype=torch.long)
    few = min(k + _FIRST_EXTRA, n_cand)
    passes = [(few, lb if few == n_cand else torch.minimum(lb, score[:, few]))]  # [(candidates, bound)]
    if few < n_cand:
        passes.append((n_cand, lb))
    rows = torch.arange(q.shape[0])  # rows still uncertified
    for n_c, bound in passes:
        if rows.numel() == 0:
            break
        cc = cand[rows, :n_c]
        d, idx = _order(refiner.candidates(q[rows], None if q_zero is None else q_zero[rows], cc), cc)
        good = scr.lower_bound(bound[rows], a[rows], ea[rows], c[rows], unit_dev) > d[:, k - 1]
        ok[rows[good]] = True
        out_d[rows[good]], out_i[rows[good]] = d[good, :k], idx[good, :k]
        rows = rows[~good]
    return ok, out_d, out_i


def _brute_force_on(device: torch.device, q: Tensor, r: Tensor, refiner: _Refiner, k: int) -> tuple[Tensor, Tensor]:
    """Euclidean k nearest on an accelerator: every distance as |q|^2 - 2 q.r + |r|^2 in float64
    (rounding ~1e-16 relative, so float32-level near-ties aside the k + 11 closest references are the
    true ones), then those candidates refined and ordered on the CPU by the CPU path's own definition.
    A GPU multiplies float64 fast enough (10k x 60k x 1024 in well under a second on a datacentre
    part) that no screening or certification is needed. The candidates come from a stable sort, so
    among equal distances (duplicate references) the lowest indices are kept, as on the CPU path.
    Device memory: the references in float64 plus about three [rows, R] float64 blocks of at most
    ``_BRUTE_ELEMS`` elements. [Q, k] distances and indices, on the CPU."""
    n_cand = min(k + _EXTRA, r.shape[0])
    r_dev = r.to(device, torch.float64)  # [R, D]
    r_sq = (r_dev * r_dev).sum(1)  # [R]
    rows = max(1, _BRUTE_ELEMS // r.shape[0])  # queries per [rows, R] block
    cand = torch.empty(q.shape[0], n_cand, dtype=torch.long)
    with torch.no_grad():
        for s in range(0, q.shape[0], rows):
            qb = q[s : s + rows].to(device, torch.float64)  # [b, D]
            d = torch.addmm(r_sq, qb, r_dev.T, alpha=-2.0).add_((qb * qb).sum(1, keepdim=True))  # [b, R]
            cand[s : s + rows] = d.sort(dim=1, stable=True).indices[:, :n_cand].cpu()
        d, idx = _order(refiner.candidates(q, None, cand), cand)  # [Q, n_cand], nearest first
    last_run_stats.clear()
    last_run_stats[f"{device.type}_float64"] = q.shape[0]
    return d[:, :k], idx[:, :k]


def nearest_neighbours(
    queries,
    references,
    *,
    k: int = 1,
    metric: str = "euclidean",
    block_size: int = 4096,
    squared: bool = False,
    precision: str = "auto",
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest references of each query: (distances [Q, k] float32, indices [Q, k] int64).

    metric: "euclidean" (distance |q - r|, or |q - r|^2 with ``squared=True``) or "cosine" (distance
    1 - cos(q, r); a zero vector is at distance 1 from everything).  Each row is sorted nearest first;
    among exactly equal distances the lowest reference index wins.  Queries are processed
    ``block_size`` at a time, so memory is O(block_size * (k + 11)) plus an 8-16 MB screening tile (and
    a bf16 copy of the references).
    precision: screening precision: "auto" (bf16 when this CPU multiplies bf16 fast and the problem is
    big enough to care), "bfloat16" or "float32".  It changes the speed only, never the result.
    device: None (the CPU search above), or a device such as "cuda" where every distance is computed
    in float64 by brute force and the closest candidates are refined as above (euclidean only; the
    answer differs from the CPU search's only among distances equal to within float32 rounding).

    Example: ``dist, idx = nearest_neighbours(test_feats, train_feats, k=5)`` -> two [T, 5] tensors.
    """
    q = as_features(queries, "queries")  # [Q, D]
    r = as_features(references, "references")  # [R, D]
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dims but references have {r.shape[1]}")
    if not 1 <= k <= r.shape[0]:
        raise ValueError(f"k must be in [1, {r.shape[0]}] (the number of references), got {k}")
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    dtypes = {"bfloat16": torch.bfloat16, "float32": torch.float32}
    if precision == "auto":
        big = q.shape[0] * r.shape[0] * r.shape[1] >= 1e9
        precision = "bfloat16" if big and cpu_bf16_is_fast() else "float32"
    if precision not in dtypes:
        raise ValueError(f"precision must be 'auto', 'bfloat16' or 'float32', got {precision!r}")
    q_zero, unit_dev = None, 0.0
    if metric == "cosine":
        (q, q_zero), (r, r_zero) = _unit_rows(q), _unit_rows(r)
        unit_dev = (_norm_dev(q) + _norm_dev(r)) / 2.0
    refiner = _Refiner(r, None if metric == "euclidean" else r_zero)
    if device is not None:
        if metric != "euclidean":
            raise ValueError(f"device={device!r} searches euclidean distances only; pass device=None for "
                             f"metric={metric!r}.")
        d, idx = _brute_force_on(torch.device(device), q, r, refiner, k)
        return (d, idx) if squared else (d.sqrt(), idx)
    screens: dict[torch.dtype, _Screen] = {}  # built on first use: the fp32 one is usually never needed

    n_cand = min(k + _EXTRA, r.shape[0])
    first = dtypes[precision]
    last_run_stats.clear()
    out_d = torch.empty(q.shape[0], k)
    out_i = torch.empty(q.shape[0], k, dtype=torch.long)
    with torch.no_grad():
        for s in range(0, q.shape[0], block_size):
            qb = q[s : s + block_size]  # [B, D]
            todo = torch.arange(qb.shape[0])  # rows of this block not yet certified
            # escalating attempts: the cheap screen, again with 8x the candidates (rows whose band of
            # screening error holds many references), then that in fp32 (data too fine for bf16)
            many = min(8 * n_cand, r.shape[0])
            levels = [(first, n_cand), (first, many), (torch.float32, many)]
            for li, (dtype, nc) in enumerate(levels):
                if todo.numel() == 0:
                    break
                if li and levels[li - 1] == (dtype, nc):
                    continue
                if dtype not in screens:
                    screens[dtype] = _Screen(r, metric, dtype)
                scr = screens[dtype]
                qs, qz = qb[todo], None if q_zero is None else q_zero[s : s + block_size][todo]
                ok, d, idx = _attempt(qs, qz, scr, refiner, k, nc, unit_dev)
                out_d[s + todo[ok]], out_i[s + todo[ok]] = d[ok], idx[ok]
                key = f"{str(dtype).split('.')[-1]}_{nc}"
                last_run_stats[key] = last_run_stats.get(key, 0) + int(ok.sum())
                if li == 0 and first != torch.float32 and (~ok).float().mean() > 0.25:
                    first = torch.float32  # this data defeats bf16 screening: stop paying for it
                todo = todo[~ok]
            if todo.numel():
                qz = None if q_zero is None else q_zero[s : s + block_size][todo]
                d, idx = refiner.exhaustive(qb[todo], qz, k)
                out_d[s + todo], out_i[s + todo] = d, idx
                last_run_stats["exhaustive"] = last_run_stats.get("exhaustive", 0) + todo.numel()
    if metric == "euclidean" and not squared:
        out_d = out_d.sqrt()
    return out_d, out_i


def knn_accuracy(
    train_feats,
    train_labels,
    test_feats,
    test_labels,
    *,
    k: int = 1,
    metric: str = "euclidean",
    block_size: int = 4096,
    device: torch.device | str | None = None,
) -> float:
    """Percent (0-100) of test points whose k nearest training points vote for the right class.

    Majority vote; a tie between classes goes to the tied class with the nearest neighbour.
    Features are [N, D] and [T, D] tensors or arrays, labels [N] and [T] ints. ``device``: see
    ``nearest_neighbours`` (e.g. "cuda" for the float64 brute force on a GPU).

    Example: ``knn_accuracy(train_z, train.y, test_z, test.y, k=1)`` -> e.g. 97.3 (percent).
    """
    train = as_features(train_feats, "train_feats")  # [N, D]
    test = as_features(test_feats, "test_feats")  # [T, D]
    y_train = as_labels(train_labels, "train_labels", train.shape[0])
    y_test = as_labels(test_labels, "test_labels", test.shape[0])
    if test.shape[0] == 0:
        raise ValueError("test_feats is empty")
    _, idx = nearest_neighbours(test, train, k=k, metric=metric, block_size=block_size,
                                device=device)  # [T, k]
    classes, y_idx = np.unique(y_train, return_inverse=True)
    votes = torch.from_numpy(y_idx.reshape(-1))[idx]  # [T, k] class index of each neighbour
    counts = torch.zeros(idx.shape[0], len(classes)).scatter_add_(1, votes, torch.ones(idx.shape))
    # rank of each class's nearest neighbour (k if absent); writing far-to-near leaves the nearest
    first = torch.full((idx.shape[0], len(classes)), float(k))
    for j in range(k - 1, -1, -1):
        first.scatter_(1, votes[:, j : j + 1], float(j))
    pred = classes[(counts * (k + 1) - first).argmax(1).numpy()]  # most votes, then nearest
    return float(100.0 * np.mean(pred == y_test))
