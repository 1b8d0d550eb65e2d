"""Time advrep.eval.nearest_neighbours on random float32 data and check it against brute force.

    python benchmarks/knn_speed.py                      # 10k queries x 60k references, 50-d and 1024-d
    python benchmarks/knn_speed.py --dims 784 --k 5 --precision float32

Uses torch's default thread count; each size is timed --repeat times (best and all are printed, as
other processes on a shared machine inflate single timings).  The check recomputes a random subsample
of queries exhaustively in float64 and compares neighbour indices (near-ties, which float32 cannot
order, are reported, not failed).
"""

from __future__ import annotations

import argparse
import time

import torch

from advrep.eval import knn
from advrep.hardware import cpu_bf16_is_fast


def brute_force(q: torch.Tensor, r: torch.Tensor, k: int, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 exhaustive k-NN: (distances [Q, k + 1], indices [Q, k + 1]), one extra to see the gap."""
    q, r = q.double(), r.double()
    if metric == "cosine":
        q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        r = r / r.norm(dim=1, keepdim=True).clamp_min(1e-300)
        d = 1.0 - q @ r.T
    else:
        d = torch.cdist(q, r)
    return d.topk(k + 1, dim=1, largest=False)


def gemm_gflops(dtype: torch.dtype) -> float:
    """Current matrix-product throughput: on a shared or virtual machine it drifts, so the k-NN times are
    only comparable together with it."""
    a, b = torch.randn(1024, 1024).to(dtype), torch.randn(1024, 8192).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024 * 1024 * 8192 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--refs", type=int, default=60_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[50, 1024])
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--metric", default="euclidean", choices=["euclidean", "cosine"])
    ap.add_argument("--precision", default="auto", choices=["auto", "bfloat16", "float32"])
    ap.add_argument("--check", type=int, default=200, help="queries re-checked by brute force")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per size (the machine may be shared)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 fast: {cpu_bf16_is_fast()}, "
        f"GEMM now: fp32 {gemm_gflops(torch.float32):.0f} GFLOP/s, bf16 {gemm_gflops(torch.bfloat16):.0f} GFLOP/s"
    )
    g = torch.Generator().manual_seed(args.seed)
    # warm-up on a tiny problem so one-time kernel set-up is not billed to the first timing
    knn.nearest_neighbours(torch.randn(300, 64), torch.randn(3000, 64), precision=args.precision)
    for dim in args.dims:
        q = torch.randn(args.queries, dim, generator=g)
        r = torch.randn(args.refs, dim, generator=g)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            dist, idx = knn.nearest_neighbours(q, r, k=args.k, metric=args.metric, precision=args.precision)
            times.append(time.perf_counter() - t0)
        stats = dict(knn.last_run_stats)

        sub = torch.randperm(args.queries, generator=g)[: args.check]
        ref_d, ref_i = brute_force(q[sub], r, args.k, args.metric)
        wrong = near_tie = 0
        for row, qi in enumerate(sub.tolist()):
            if torch.equal(idx[qi], ref_i[row, : args.k]):
                continue
            gaps = ref_d[row, 1:] - ref_d[row, :-1]
            if float(gaps.min()) <= 1e-5 * float(ref_d[row, -1]):
                near_tie += 1
            else:
                wrong += 1
        max_err = float((dist[sub].double() - ref_d[:, : args.k]).abs().max())
        print(
            f"{args.queries} x {args.refs} at {dim}-d, k={args.k}, {args.metric}: best {min(times):.3f} s, "
            f"all {', '.join(f'{t:.3f}' for t in times)}  "
            f"[rows settled: {stats}]  check {args.check} rows: {wrong} wrong, {near_tie} near-ties, "
            f"max |distance error| {max_err:.2e}"
        )
        if wrong:
            raise SystemExit("MISMATCH against brute force")


if __name__ == "__main__":
    main()
