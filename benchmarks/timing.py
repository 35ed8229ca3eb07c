"""Shared by the benchmark scripts (run them as `python benchmarks/NAME.py`)."""
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
