"""What one CUDA graph replay costs the host, by graph size, and what a small blocking copy costs:
the fixed costs of each round of the fast path (results/gpu/README.md).

    python benchmarks/graph_launch.py          (needs a CUDA device)

For graphs of 1, 50, 200 and 500 tiny kernels: the host time of ``graph.replay()`` while the GPU is
idle (the launch alone), and the time of replay + synchronise; then the host time of a launch
while another graph runs (on the same stream, on another); then the round trip of a 4-byte
host-to-device copy followed by a device-to-host read (what acting pays per round).
"""

from __future__ import annotations

import time

import torch


def main() -> None:
    assert torch.cuda.is_available(), "graph_launch.py needs a CUDA device"
    x = torch.zeros(256, device="cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    graphs = {}
    for kernels in (1, 50, 200, 500):
        graph = graphs[kernels] = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(kernels):
                x.add_(1.0)
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            for _ in range(kernels):
                x.add_(1.0)
        for _ in range(5):
            graph.replay()
        torch.cuda.synchronize()
        launch = total = 0.0
        reps = 200
        for _ in range(reps):
            t0 = time.perf_counter()
            graph.replay()
            t1 = time.perf_counter()
            torch.cuda.synchronize()
            t2 = time.perf_counter()
            launch += t1 - t0
            total += t2 - t0
        print(
            f"graph of {kernels:3d} kernels: launch {1e6 * launch / reps:7.1f} us on the host, "
            f"launch + run + synchronise {1e6 * total / reps:7.1f} us"
        )
    # launches while the GPU is busy: graph B right behind a running graph A, on A's stream
    # and on another stream (the fast path's acting and gradient steps), and A behind itself
    a, b = graphs[500], graphs[50]
    other = torch.cuda.Stream()
    for name, second, stream in (
        ("50-kernel graph behind a running 500-kernel one, same stream", b, None),
        ("50-kernel graph behind a running 500-kernel one, other stream", b, other),
        ("500-kernel graph behind itself, same stream", a, None),
    ):
        launch = 0.0
        for _ in range(100):
            torch.cuda.synchronize()
            a.replay()
            t0 = time.perf_counter()
            if stream is None:
                second.replay()
            else:
                with torch.cuda.stream(stream):
                    second.replay()
            launch += time.perf_counter() - t0
        torch.cuda.synchronize()
        print(f"{name}: launch {1e6 * launch / 100:7.1f} us on the host")
    host = torch.zeros(1)
    pinned = torch.zeros(1).pin_memory()
    for name, src in (("pageable", host), ("pinned", pinned)):
        t0 = time.perf_counter()
        for _ in range(500):
            x[:1].copy_(src, non_blocking=name == "pinned")
            float(x[0])
        print(f"copy in ({name}) + read back: {1e6 * (time.perf_counter() - t0) / 500:7.1f} us")


if __name__ == "__main__":
    main()
