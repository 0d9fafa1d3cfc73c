"""``zeroseg serve`` under load: concurrent clients, good and hostile inputs, bounded memory and disk.

Starts the page of a tiny trained student on 127.0.0.1 (only there) in its own process, with its
temporary folder (``TMPDIR`` and gradio's ``GRADIO_TEMP_DIR``) in a folder this script measures,
then drives it with ``--clients`` concurrent gradio_client clients (gradio's own client, installed
with gradio) for exactly ``--requests`` requests each, within ``--time-limit`` seconds. Inputs
cycle through good uploads and hostile ones: a 144 MP decompression bomb, a 20 MP image over the
page's pixel limit, an upload over its byte limit, a text file, a truncated JPEG, an empty class
list, 1000 classes, a 5000-character name and a threshold of 5. Reports requests served (a good
input answered), errors shown (a hostile input answered with a message), wrong outcomes (a good
input refused or a hostile one answered), failures (no answer: a dropped connection, a timeout, a
server that died), latency p50/p95, the server's peak RSS (``VmHWM``) and the temporary folder's
peak and final size.

    python benchmarks/serve_load.py --clients 8 --requests 50      # exit status 1 on any failure
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HOST = "127.0.0.1"  # never any other address
GOOD_CLASSES = "red | crimson, green, blue sky"


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # in the inputs folder
    classes: str = GOOD_CLASSES
    background: bool = False
    threshold: float = 0.9
    good: bool = False


def make_inputs(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    array = np.zeros((90, 120, 3), np.uint8)
    array[:, :60] = (200, 30, 30)
    array[45:, 60:] = (30, 180, 40)
    array[:45, 60:] = (70, 120, 230)
    Image.fromarray(array).save(folder / "scene.png")
    Image.fromarray(array).save(folder / "scene.jpg", quality=90)
    Image.new("1", (12000, 12000)).save(folder / "bomb.png")  # 144 MP in a few kB
    Image.new("RGB", (5000, 4000), (9, 90, 9)).save(folder / "twenty_mp.png")
    noise = np.random.default_rng(0).integers(0, 255, (2800, 2800, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "big_bytes.png", compress_level=0)  # ~23.5 MB
    (folder / "text.png").write_text("not an image")
    (folder / "truncated.jpg").write_bytes((folder / "scene.jpg").read_bytes()[:200])
    good = [
        Case("good", "scene.png", good=True),
        Case("good jpeg, background", "scene.jpg", background=True, threshold=0.5, good=True),
    ]
    hostile = [
        Case("bomb", "bomb.png"),
        Case("20 MP", "twenty_mp.png"),
        Case("23 MB upload", "big_bytes.png"),
        Case("text file", "text.png"),
        Case("truncated jpeg", "truncated.jpg"),
        Case("empty classes", "scene.png", classes=""),
        Case("1000 classes", "scene.png", classes=", ".join(f"thing {i}" for i in range(1000))),
        Case("5000-character name", "scene.png", classes="a" * 5000 + ", dog"),
        Case("threshold 5", "scene.png", background=True, threshold=5.0),
    ]
    cases: list[Case] = []
    for index, case in enumerate(hostile):  # a good request between hostile ones
        cases += [good[index % 2], case]
    return cases


def train_tiny(root: Path) -> Path:
    from zeroseg.config import load_config
    from zeroseg.training.loop import train

    data = root / "images"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(16):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    run = root / "run"
    train(load_config("tiny", [f"data.root={data}", "train.steps=2"]), run, progress=False)
    return run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(run: Path, port: int, temp: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    code = (
        "from zeroseg.apps.serve import serve; "
        f"serve({str(run)!r}, {HOST!r}, {port}, 'cpu')"
    )  # fmt: skip
    with open(log, "w") as handle:
        server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=handle,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped at start:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2) as reply:
                if reply.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not answer within 180 s")


class Monitor(threading.Thread):
    """Samples the server's RSS and the temporary folder's size every 0.2 s."""

    def __init__(self, pid: int, temp: Path) -> None:
        super().__init__(daemon=True)
        self.pid, self.temp, self.stop = pid, temp, threading.Event()
        self.peak_disk = self.peak_rss = self.peak_files = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.2)

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, rss_kib(self.pid, "VmHWM"))
        size, files = folder_size(self.temp)
        self.peak_disk, self.peak_files = max(self.peak_disk, size), max(self.peak_files, files)


def rss_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def folder_size(folder: Path) -> tuple[int, int]:
    total = count = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
                count += 1
            except OSError:
                pass  # deleted while walking
    return total, count


def drive(url: str, inputs: Path, cases: list[Case], clients: int, requests: int,
          deadline: float, request_timeout: float) -> list[dict]:  # fmt: skip
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    rows: list[dict] = []
    lock = threading.Lock()

    def client_loop(number: int) -> None:
        client = Client(url, verbose=False, download_files=False)
        for index in range(requests):
            case = cases[(number * requests + index) % len(cases)]
            row = {"client": number, "case": case.name, "good": case.good}
            if time.monotonic() > deadline:
                row.update(outcome="not sent (time limit)", seconds=0.0)
            else:
                start = time.perf_counter()
                try:
                    job = client.submit(handle_file(str(inputs / case.file)), case.classes,
                                        case.background, case.threshold, api_name="/segment")  # fmt: skip
                    job.result(timeout=request_timeout)
                    row["outcome"] = "served" if case.good else "wrong: answered"
                except AppError as error:
                    message = str(error).strip()
                    row["message"] = message[:300]
                    one_line = len(message.splitlines()) == 1
                    row["outcome"] = "wrong: refused" if case.good else (
                        "error shown" if one_line else "wrong: multi-line error")  # fmt: skip
                except ValueError as error:  # the client refuses what the page says is too big
                    refused = "exceeds the maximum file size" in str(error)
                    row["message"] = str(error)[:300]
                    row["outcome"] = "failure" if not refused else (
                        "wrong: refused" if case.good else "error shown")  # fmt: skip
                except Exception as error:  # noqa: BLE001 - no answer at all is what this counts
                    row.update(outcome="failure", message=f"{type(error).__name__}: {error}"[:300])
                row["seconds"] = time.perf_counter() - start
            with lock:
                rows.append(row)
        client.close()

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rows


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client")
    parser.add_argument("--time-limit", type=float, default=600, help="seconds for all requests")
    parser.add_argument("--request-timeout", type=float, default=120)
    parser.add_argument("--json", action="store_true", help="also print every request")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gradio_client  # noqa: F401
    except ImportError:
        print('needs gradio_client (installed with gradio: pip install "zeroseg[serve]")')
        return 2
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = train_tiny(root)
        cases = make_inputs(root / "inputs")
        temp = root / "server-tmp"
        (temp / "gradio").mkdir(parents=True)
        port = free_port()
        server = start_server(run, port, temp, root / "server.log")
        monitor = Monitor(server.pid, temp)
        idle_rss = rss_kib(server.pid, "VmRSS")
        monitor.start()
        started = time.monotonic()
        try:
            rows = drive(f"http://{HOST}:{port}/", root / "inputs", cases, args.clients,
                         args.requests, started + args.time_limit, args.request_timeout)  # fmt: skip
            wall = time.monotonic() - started
            monitor.sample()
            alive = server.poll() is None
            final_disk, final_files = folder_size(temp)
        finally:
            monitor.stop.set()
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    import torch

    from zeroseg.runtime.machine import describe

    count = {k: sum(r["outcome"] == k for r in rows) for k in
             ("served", "error shown", "failure", "not sent (time limit)")}  # fmt: skip
    wrong = sum(r["outcome"].startswith("wrong") for r in rows)
    answered = [r["seconds"] for r in rows if r["outcome"] in ("served", "error shown")]
    good = [r["seconds"] for r in rows if r["outcome"] == "served"]
    summary = {
        "machine": describe(torch.device("cpu")),
        "clients": args.clients, "requests_per_client": args.requests, "sent": len(rows),
        "served": count["served"], "errors_shown": count["error shown"], "wrong": wrong,
        "failures": count["failure"], "not_sent": count["not sent (time limit)"],
        "server_alive": alive, "wall_s": round(wall, 1),
        "p50_s": round(percentile(answered, 50), 3), "p95_s": round(percentile(answered, 95), 3),
        "served_p50_s": round(percentile(good, 50), 3),
        "served_p95_s": round(percentile(good, 95), 3),
        "idle_rss_mib": round(idle_rss / 1024), "peak_rss_mib": round(monitor.peak_rss / 1024),
        "peak_temp_mib": round(monitor.peak_disk / 2**20, 1), "peak_temp_files": monitor.peak_files,
        "final_temp_mib": round(final_disk / 2**20, 1), "final_temp_files": final_files,
    }  # fmt: skip
    print(f"machine: {summary['machine']}")
    print(f"{args.clients} clients x {args.requests} requests in {summary['wall_s']} s: "
          f"{summary['served']} served, {summary['errors_shown']} errors shown, {wrong} wrong, "
          f"{summary['failures']} failures, {summary['not_sent']} not sent; server alive: {alive}")  # fmt: skip
    print(f"latency p50 {summary['p50_s']} s, p95 {summary['p95_s']} s (served only: "
          f"{summary['served_p50_s']} / {summary['served_p95_s']} s)")  # fmt: skip
    print(f"server RSS idle {summary['idle_rss_mib']} MiB, peak {summary['peak_rss_mib']} MiB; "
          f"temporary folder peak {summary['peak_temp_mib']} MiB ({summary['peak_temp_files']} "
          f"files), at the end {summary['final_temp_mib']} MiB ({final_files} files)")  # fmt: skip
    shown = {}
    for row in rows:
        if row["outcome"] != "served" and row["case"] not in shown:
            shown[row["case"]] = f"{row['outcome']}: {row.get('message', '')}"
    for case, text in shown.items():
        print(f"  {case}: {text[:160]}")
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}))
    return 1 if wrong or count["failure"] or not alive else 0


if __name__ == "__main__":
    sys.exit(main())
