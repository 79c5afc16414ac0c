#!/usr/bin/env python3
"""Derives blis-physics' kernel constants from public kernel and collective measurements.

Input: the profiling CSVs of microsoft/vidur (MIT licence), `data/profiling/` of that repository
(docs/hardware.md says which files and commit). Usage:

    python3 tools/derive_kernel_efficiency.py /path/to/vidur/data/profiling

Prints (1) the GEMM constants pooled over every GPU, model, TP degree, projection and token count
(A100-SXM, H100-SXM, A40): achieved fraction of HBM bandwidth, achieved fraction of dense peak
FLOPs, the fixed time of a kernel and the sharpness of the memory/compute transition, with the
same constants fitted per GPU to show the spread; (2) NCCL all-reduce bus bandwidth and latency
per system and GPU count. Needs numpy and scipy.
"""
import collections
import csv
import glob
import os
import sys

import numpy as np
from scipy.optimize import least_squares

# Dense BF16/FP16 peak FLOP/s and HBM/GDDR bandwidth B/s from the datasheets cited in docs/hardware.md.
SPEC = {"h100": (989.5e12, 3.35e12), "a100": (312e12, 2.039e12), "a40": (149.7e12, 0.696e12)}


def gemm_points(root):
    pts = []
    for f in sorted(glob.glob(os.path.join(root, "compute/*/*/*/mlp.csv"))):
        gpu = f.split(os.sep)[-4]
        for r in csv.DictReader(open(f)):
            d, ffn = int(r["n_embd"]), int(r["n_expanded_embd"])
            h, kvh = int(r["n_head"]), int(r["n_kv_head"])
            tp, t = int(r["num_tensor_parallel_workers"]), int(r["num_tokens"])
            gated = 2 if r["use_gated_mlp"] == "True" else 1
            hd = d // h
            ops = {
                "mlp_up_proj": (d, gated * ffn // tp),
                "mlp_down_proj": (ffn // tp, d),
                "attn_pre_proj": (d, (h + 2 * kvh) * hd // tp),
                "attn_post_proj": (h * hd // tp, d),
            }
            for op, (k, n) in ops.items():
                sec = float(r[f"time_stats.{op}.median"]) * 1e-3
                pts.append((gpu, t, k, n, sec))
    return pts


def model(x, gpu, t, k, n):
    eta_b, eta_f, t0_us, p = x
    peak, bw = np.array([SPEC[g][0] for g in gpu]), np.array([SPEC[g][1] for g in gpu])
    mem = 2.0 * (k * n + t * (k + n)) / (eta_b * bw)
    comp = 2.0 * t * k * n / (eta_f * peak)
    return t0_us * 1e-6 + (mem**p + comp**p) ** (1.0 / p)


def fit(rows):
    gpu = [r[0] for r in rows]
    t, k, n, sec = (np.array([r[i] for r in rows], dtype=float) for i in range(1, 5))
    res = lambda x: np.log(model(x, gpu, t, k, n) / sec)
    sol = least_squares(res, [0.8, 0.7, 2.0, 3.0], bounds=([0.2, 0.2, 0.0, 1.0], [1.0, 1.0, 20.0, 20.0]))
    r = res(sol.x)
    return sol.x, np.median(np.abs(r)), np.percentile(np.abs(r), 90)


def main(root):
    pts = [p for p in gemm_points(root) if p[1] <= 4096]
    x, med, p90 = fit(pts)
    print(f"GEMM pooled ({len(pts)} kernels): eta_bw {x[0]:.3f} eta_flops {x[1]:.3f} t0 {x[2]:.2f} us "
          f"p {x[3]:.2f}; |log error| median {med:.3f} p90 {p90:.3f}")
    for g in sorted(SPEC):
        sub = [p for p in pts if p[0] == g]
        xg, medg, _ = fit(sub)
        gpu = [p[0] for p in sub]
        t, k, n, sec = (np.array([p[i] for p in sub], dtype=float) for i in range(1, 5))
        pooled = np.median(np.abs(np.log(model(x, gpu, t, k, n) / sec)))
        bias = np.median(np.log(model(x, gpu, t, k, n) / sec))
        print(f"  {g}: own fit eta_bw {xg[0]:.3f} eta_flops {xg[1]:.3f} t0 {xg[2]:.2f} p {xg[3]:.2f} "
              f"(|log err| {medg:.3f}); pooled constants: |log err| {pooled:.3f}, median log bias {bias:+.3f}")
    for system in ["h100_dgx", "a100_dgx", "h100_pairwise_nvlink", "a100_pairwise_nvlink"]:
        path = os.path.join(root, "network", system, "all_reduce.csv")
        if not os.path.exists(path):
            continue
        by_n = collections.defaultdict(lambda: collections.defaultdict(list))
        for r in csv.DictReader(open(path)):
            n, per_node = int(r["num_workers"]), int(r["devices_per_node"])
            if n == per_node:  # one node only
                by_n[n][int(r["size"])].append(float(r["time_stats.all_reduce.median"]) * 1e3)
        for n in sorted(by_n):
            sel = [(s * 2 * (n - 1) / n, np.median(v)) for s, v in by_n[n].items() if 2**18 <= s <= 2**28]
            xs, ys = np.array([a for a, _ in sel]), np.array([b for _, b in sel])
            # Robust line (least absolute log error) t = lat + bus_bytes / busbw.
            f = lambda z: np.log((z[0] + xs / (z[1] * 1e3)) / ys)
            z = least_squares(f, [20.0, 100.0], bounds=([0.0, 1.0], [500.0, 2000.0]), loss="soft_l1").x
            print(f"all-reduce {system} n={n}: bus bandwidth {z[1]:.0f} GB/s, latency {z[0]:.1f} us "
                  f"({len(sel)} sizes 256 KiB..256 MiB)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "vidur/data/profiling")
