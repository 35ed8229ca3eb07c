"""Forward + backward timings of the attention paths in fourdlib.layers.

    python benchmarks/bench_attention.py                  # CPU
    python benchmarks/bench_attention.py --device cuda    # + flash / mem-efficient / xformers

Dense: B x H x L x d (default 8 x 8 x 1024 x 64), SDPA against the explicit math
reference (and, on CUDA, each SDPA kernel forced on its own, and xformers if installed).
Varlen: packed sequences of random lengths (seeded) adding up to about --total tokens:
a loop of SDPA calls, one SDPA call with a block-diagonal mask, nested tensors (and on
CUDA xformers / flash-attn if installed). Prints median seconds per forward+backward.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time

import torch
from tqdm import tqdm

from fourdlib.layers import attention, cu_seqlens_from_lengths, varlen_attention


def timed(fn, inputs, device, repeats):
    """Median wall time of fn(*inputs).sum().backward() over `repeats` runs, after one warm-up."""
    times = []
    for i in range(repeats + 1):
        for t in inputs:
            t.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(*inputs).float().sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first run is a warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def sdpa_kernel(name):
    """Force one SDPA kernel on CUDA (flash / efficient / math)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel as ctx

    kernels = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    kernel = kernels[name]

    def run(q, k, v):
        with ctx(kernel):
            return attention(q, k, v, backend="sdpa")

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (CUDA default)")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--L", type=int, default=1024)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--total", type=int, default=4096, help="varlen: total packed tokens (about)")
    ap.add_argument("--min-len", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--only", choices=["dense", "varlen"], default=None, help="run one group of cases")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    g = torch.Generator().manual_seed(args.seed)
    has_xformers = importlib.util.find_spec("xformers") is not None
    has_flash = importlib.util.find_spec("flash_attn") is not None

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype).requires_grad_()

    # dense cases
    q, k, v = (rand(args.B, args.H, args.L, args.d) for _ in range(3))
    dense = {"sdpa (auto)": lambda q, k, v: attention(q, k, v, backend="sdpa"),
             "math (float32 reference)": lambda q, k, v: attention(q, k, v, backend="math")}
    if device.type == "cuda":
        for name in ("flash", "efficient", "math"):
            if name == "flash" and dtype == torch.float32:
                continue  # flash kernels take fp16 / bf16 only
            dense[f"sdpa forced {name}"] = sdpa_kernel(name)
        if has_xformers:
            dense["xformers"] = lambda q, k, v: attention(q, k, v, backend="xformers")

    # varlen cases: random lengths until the total is reached
    lengths = []
    while sum(lengths) < args.total:
        lengths.append(int(torch.randint(args.min_len, args.max_len + 1, (1,), generator=g)))
    cu = cu_seqlens_from_lengths(torch.tensor(lengths)).to(device)
    T = sum(lengths)
    vq, vk, vv = (rand(T, args.H, args.d) for _ in range(3))
    varlen = ["loop", "masked", "nested"]
    if device.type == "cuda":
        varlen += (["xformers"] if has_xformers else []) + (["flash"] if has_flash and dtype != torch.float32 else [])

    cases = [("dense", name, fn, (q, k, v)) for name, fn in dense.items()]
    cases += [("varlen", name, (lambda b: lambda q, k, v: varlen_attention(q, k, v, cu, backend=b))(name), (vq, vk, vv))
              for name in varlen]
    cases = [c for c in cases if args.only in (None, c[0])]
    results = []
    load_before = os.getloadavg()[0]
    for kind, name, fn, inputs in tqdm(cases, desc="benchmarking"):
        results.append((kind, name, timed(fn, inputs, device, args.repeats)))

    print(f"\ndevice {device} ({torch.get_num_threads()} threads), dtype {dtype}, torch {torch.__version__}, "
          f"load average before / after {load_before:.1f} / {os.getloadavg()[0]:.1f} (others' work slows CPU timings)")
    print(f"dense:  B{args.B} x H{args.H} x L{args.L} x d{args.d}")
    print(f"varlen: {len(lengths)} sequences, {T} tokens, lengths {min(lengths)}..{max(lengths)}, "
          f"H{args.H} x d{args.d}")
    print(f"{'case':8s} {'path':28s} {'fwd+bwd (s)':>12s}")
    for kind, name, seconds in results:
        print(f"{kind:8s} {name:28s} {seconds:12.4f}")


if __name__ == "__main__":
    main()
