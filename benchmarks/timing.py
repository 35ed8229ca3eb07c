"""Shared by the benchmark scripts (run them as `python benchmarks/NAME.py`)."""
import statistics
import time


def best_time(fn, repeats: int, sync=lambda: None):
    """Best wall-clock seconds of `repeats` calls of fn() after one warm-up call, and fn's output.

    sync: e.g. torch.cuda.synchronize, so that queued GPU work is inside the timing.
    """
    fn()                                                                       # warm-up (CUDA context, allocator)
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times), out


def median_times(cases, repeats: int):
    """{name: median seconds} of the functions in `cases`, called in turn `repeats` times
    (interleaved, so a machine that gets busier mid-run slows every case alike)."""
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(best_time(fn, 1)[0])
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_forward_backward(fwd, fwd_bwd, repeats: int, device):
    """(forward seconds, forward+backward seconds, note): best of `repeats` each, on `device`
    (a torch.device); on CUDA the note gives the peak memory of both."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_f, _ = best_time(fwd, repeats, sync)
    t_fb, _ = best_time(fwd_bwd, repeats, sync)
    note = f"; peak CUDA memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MB" if device.type == "cuda" else ""
    return t_f, t_fb, note
