"""DynaTok speed at each scale: training steps per second and sampled points per second.

    python benchmarks/bench_dynatok.py                        # CPU, smoke and tiny
    python benchmarks/bench_dynatok.py --scales smoke tiny small --threads 1
    python benchmarks/bench_dynatok.py --device cuda --scales tiny small full   # bf16 autocast
    python benchmarks/bench_dynatok.py --scales tiny --compile --no-sampling     # eager vs torch.compile

Training step: loss (encode + velocity + flow-matching MSE) on random clouds of the
config's shape (batch_size sequences x train_frames frames x input_points points, with
train_points GT targets per frame), backward, AdamW step. Sampling: encode one sequence of
eval_frames frames and integrate eval_points points per frame with the config's ODE steps
and method; points/s counts every output point of every frame. Best of --repeats runs
after a warm-up. Prints the load average: on a shared machine the figures are pessimistic.
--compile also times the training step of `torch.compile(model)` (default inductor backend;
its compile time, spent once per run, is printed apart), so that the s/step columns compare
what an hour of training buys either way.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from fourdlib.models.dynatok import CONFIGS, DynaTok, decode, loss, normalize_batch
from fourdlib.train.runs import count_parameters
from timing import best_time  # benchmarks/timing.py


def clouds(shape, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(*shape, 3, generator=g)
    return (v / v.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 0.6, 0.4])).to(device)


def bench(scale, device, repeats, batch_size=None, sample_too=True, compile=False):
    cfg = CONFIGS[scale]
    B = batch_size or cfg.batch_size
    torch.manual_seed(0)
    model = DynaTok(cfg).to(device)
    trained = torch.compile(model) if compile else model   # loss calls model(...): the compiled forward
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    amp = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    batch = {"partial": clouds((B, cfg.train_frames, cfg.input_points), device),
             "surface": clouds((B, cfg.train_frames, cfg.train_points), device, seed=1)}

    def train_step():
        with torch.autocast(**amp):
            value, _ = loss(trained, batch)
        value.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    if compile:
        train_step()                                # compiles (once per run)
        sync()
    t_compile = time.perf_counter() - start if compile else float("nan")
    t_train, _ = best_time(train_step, repeats, sync)
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")

    model.eval()
    seq = clouds((1, cfg.eval_frames, cfg.input_points), device, seed=2)
    gen = torch.Generator(device).manual_seed(0)

    def sample():
        with torch.no_grad(), torch.autocast(**amp):
            partial_n, _, _ = normalize_batch(seq)
            Z = model.encode(partial_n)["Z"]
            decode(model, Z, cfg.eval_points, generator=gen)

    t_sample = best_time(sample, max(1, repeats // 2), sync)[0] if sample_too else float("nan")
    n_points = cfg.eval_frames * cfg.eval_points
    return {"scale": scale + (" (compiled)" if compile else ""), "compile s": t_compile,
            "params (M)": count_parameters(model) / 1e6,
            "batch": f"{B}x{cfg.train_frames}x{cfg.input_points}",
            "s/step": t_train, "steps/s": 1 / t_train, "sample": f"{cfg.eval_frames}x{cfg.eval_points} pts, "
            f"{cfg.sample_steps} {cfg.sample_method}", "s/sample": t_sample, "points/s": n_points / t_sample,
            "peak GiB": mem}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", nargs="+", default=["smoke", "tiny"], choices=list(CONFIGS))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=None, help="override the config's batch")
    ap.add_argument("--no-sampling", action="store_true", help="time training steps only")
    ap.add_argument("--compile", action="store_true", help="also time the torch.compile'd training step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"DynaTok on {where}; bf16 autocast: {device.type == 'cuda'}; load average before: {os.getloadavg()}")
    rows = []
    runs = [(scale, c) for scale in args.scales for c in ((False, True) if args.compile else (False,))]
    for scale, compiled in runs:
        rows.append(bench(scale, device, args.repeats, args.batch_size, not args.no_sampling and not compiled,
                          compiled))
        r = rows[-1]
        if compiled:
            print(f"  (compiling took {r['compile s']:.0f} s, once per run)")
        print(f"{r['scale']:6s} {r['params (M)']:7.2f}M params  train {r['batch']:>12s}: {r['s/step']:7.3f} s/step "
              f"({r['steps/s']:6.2f} steps/s)  sample {r['sample']}: {r['s/sample']:7.3f} s "
              f"({r['points/s']:,.0f} points/s)" + (f"  peak {r['peak GiB']:.2f} GiB" if device.type == "cuda" else ""),
              flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
