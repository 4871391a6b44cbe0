"""`cnnlab serve` under a bounded load on 127.0.0.1, against calling the same prediction in-process.

1. Mixed load: --clients concurrent clients for --seconds, uploading in turn a PNG of the run's input
   size, a 1024x768 JPEG, and bad uploads (text/plain, bytes that are no image, a 64-megapixel PNG
   bomb, an 11 MB body). Requests/s, p50/p95/p99 latency by kind, status codes by kind, and the
   server's resident memory after warm-up and at the end. Targets: zero 5xx, every bad upload a 4xx,
   memory growth under 10%.
2. Good uploads only (the two good kinds alternating), the same clients and seconds: requests/s
   through HTTP, against ``Predictor.predict`` called from the same number of threads in this
   process (no HTTP, no multipart). Target: at least 0.8x.

The run: --run DIR, or a short ahe_cnn run on the built-in shapes at 64 px (the AHE size), trained
here into a temporary folder (the model's accuracy does not matter for speed).

    python benchmarks/serve.py [--run DIR] [--clients 16] [--seconds 30]

Timings on a machine shared with other jobs are noisy: compare ratios within one run of the script.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image
from PIL.ImageFilter import GaussianBlur

import cnnlab
from cnnlab.cli import main as cnnlab_main
from cnnlab.serve.predictor import Predictor

MAX_PIXELS = 40_000_000  # the server's default


def encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def uploads(image_size: int) -> dict[str, tuple[bytes, str, int]]:
    """kind -> (body, content type, the status it must get)."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (768, 1024, 3), dtype=np.uint8)).filter(GaussianBlur(3))
    return {
        "good_small": (encoded(photo.resize((image_size, image_size)), "PNG"), "image/png", 200),
        "good_1024x768": (encoded(photo, "JPEG"), "image/jpeg", 200),
        "bad_text": (b"name,value\n" * 20, "text/plain", 415),
        "bad_not_image": (b"\x00garbage" * 500, "image/jpeg", 422),
        "bad_pixel_bomb": (encoded(Image.new("1", (8000, 8000)), "PNG"), "image/png", 413),
        "bad_11MB_body": (b"\xff" * (11 * 2**20), "image/jpeg", 413),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(run: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(cnnlab.__file__).parents[1])}
    server = subprocess.Popen([sys.executable, "-m", "cnnlab", "-q", "serve", str(run), "--port", str(port), "--device",
                               "cpu"], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    server.kill()
    sys.exit("the server did not start")


async def load(url: str, kinds: list[str], bodies: dict, clients: int, seconds: float) -> list[tuple[str, int, float]]:
    """(kind, status or -1 for a connection error, seconds) of every request; client i starts at kind i."""
    results: list[tuple[str, int, float]] = []
    stop = time.perf_counter() + seconds

    async def client(i: int) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            n = i
            while time.perf_counter() < stop:
                kind = kinds[n % len(kinds)]
                body, content_type, _ = bodies[kind]
                t0 = time.perf_counter()
                try:
                    r = await http.post(url, files={"file": ("upload", body, content_type)})
                    status = r.status_code
                except httpx.HTTPError:
                    status = -1
                results.append((kind, status, time.perf_counter() - t0))
                n += 1

    await asyncio.gather(*(client(i) for i in range(clients)))
    return results


def in_process(predictor: Predictor, kinds: list[str], bodies: dict, threads: int, seconds: float) -> int:
    """Predictions completed by ``threads`` threads calling the predictor directly for ``seconds``."""
    stop = time.perf_counter() + seconds
    done = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        n, count = i, 0
        while time.perf_counter() < stop:
            predictor.predict(bodies[kinds[n % len(kinds)]][0], MAX_PIXELS)
            n, count = n + 1, count + 1
        with lock:
            done.append(count)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    return sum(done)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def print_table(results: list[tuple[str, int, float]], bodies: dict, seconds: float) -> tuple[int, int]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    for kind, status, latency in results:
        by_kind[kind].append(latency)
        statuses[kind][status] += 1
    print(f"{'kind':<16} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}  statuses (expected)")
    for kind, latencies in by_kind.items():
        codes = ", ".join(f"{s}: {n}" for s, n in sorted(statuses[kind].items()))
        print(f"{kind:<16} {len(latencies):>8} {len(latencies) / seconds:>7.1f} {percentile(latencies, 50):>8.1f} "
              f"{percentile(latencies, 95):>8.1f} {percentile(latencies, 99):>8.1f}  {codes} ({bodies[kind][2]})")
    every = [latency for _, _, latency in results]
    print(f"{'all':<16} {len(every):>8} {len(every) / seconds:>7.1f} {percentile(every, 50):>8.1f} "
          f"{percentile(every, 95):>8.1f} {percentile(every, 99):>8.1f}")
    server_errors = sum(1 for _, s, _ in results if s >= 500 or s < 0)
    unexpected = sum(1 for kind, s, _ in results if s != bodies[kind][2])
    return server_errors, unexpected


def short_run(folder: Path) -> Path:
    run = folder / "run"
    code = cnnlab_main(["train", "--model", "ahe_cnn", "--image-size", "64", "--shapes-per-class", "40",
                        "--epochs", "2", "--output", str(run)])
    if code:
        sys.exit("training the benchmark's run failed")
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="run directory to serve (default: a short shapes run at 64 px)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or short_run(Path(tmp))
        predictor = Predictor.from_run(run, device="cpu")
        bodies = uploads(predictor.run.image_size)
        port = free_port()
        server = start_server(run, port)
        url = f"http://127.0.0.1:{port}/predict"
        try:
            rss_ready = rss_mib(server.pid)
            asyncio.run(load(url, list(bodies), bodies, args.clients, 5))  # warm-up: every kind, concurrently
            rss_start = rss_mib(server.pid)
            print(f"cnnlab serve {run} ({predictor.run.config.model}, {predictor.run.image_size} px), {args.clients} "
                  f"clients, {args.seconds:.0f} s per phase, {os.cpu_count()} CPUs, torch threads "
                  f"{torch.get_num_threads()}")
            print(f"\n1. mixed load ({len(bodies)} kinds in turn)")
            mixed = asyncio.run(load(url, list(bodies), bodies, args.clients, args.seconds))
            server_errors, unexpected = print_table(mixed, bodies, args.seconds)
            rss_end = rss_mib(server.pid)
            growth = (rss_end - rss_start) / rss_start
            print(f"5xx or connection errors: {server_errors}; responses other than expected: {unexpected}")
            print(f"server memory: {rss_ready:.0f} MiB when ready, {rss_start:.0f} MiB after warm-up, "
                  f"{rss_end:.0f} MiB at the end ({growth:+.1%})")
            good = ["good_small", "good_1024x768"]
            print(f"\n2. good uploads only ({', '.join(good)} in turn)")
            server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
            served = asyncio.run(load(url, good, bodies, args.clients, args.seconds))
            server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - client_cpu
            print_table(served, bodies, args.seconds)
            print(f"CPU per request: server {1000 * server_cpu / len(served):.1f} ms, "
                  f"load-generating client {1000 * client_cpu / len(served):.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)
        in_process(predictor, good, bodies, args.clients, 2)  # warm-up
        direct_cpu = time.process_time()
        direct = in_process(predictor, good, bodies, args.clients, args.seconds)
        direct_cpu = time.process_time() - direct_cpu
        http_rate, direct_rate = len(served) / args.seconds, direct / args.seconds
        print(f"in-process Predictor.predict, {args.clients} threads: {direct_rate:.1f} predictions/s, "
              f"CPU {1000 * direct_cpu / direct:.1f} ms per prediction")
        print(f"HTTP / in-process: {http_rate / direct_rate:.2f}x (target >= 0.8)")
        ok = server_errors == 0 and unexpected == 0 and growth < 0.10 and http_rate >= 0.8 * direct_rate
        print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
