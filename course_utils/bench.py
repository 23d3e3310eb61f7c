"""``course bench NAME``: the benchmarks behind the numbers the course states.

Each topic module registers its benchmarks (``@registry.benchmark``) next to the code they
measure; ``course bench --help`` lists them all. This module holds what they share (the
machine line, two-column tables, the JSON results shipped in ``course_utils/weights``) and
the two topic-free ones:

* ``loop``: the course training loop (on-device index batching) against the standard
  ``DataLoader(TensorDataset)`` loop, same MLP VAE, data, batch size and steps.
* ``threads``: training steps per second with 1 and 2 intra-op threads, with the other
  core idle and busy, for the course's small models. It is why ``course_utils`` runs one
  thread by default.

Each prints a table; nothing here is asserted by the tests (timings vary by machine).
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.checkpoints import WEIGHTS_DIR
from course_utils.metrics import MnistClassifier
from course_utils.registry import benchmark
from course_utils.train import batches


def _vae() -> nn.Module:
    """The MLP VAE the timings use (784-400-20, the size of lecture 01's)."""
    from course_utils.vae import MlpVae  # the vae module registers its benchmark here

    torch.manual_seed(0)
    return MlpVae(data_dim=784, hidden=400, latent_dim=20)


def _vae_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Negative single-sample ELBO, averaged over the batch."""
    from course_utils.vae import log_weights

    return -log_weights(model, x, 1).mean()


def machine() -> str:
    """The line each benchmark prints about where it ran."""
    threads = torch.get_num_threads()
    return f"{platform.machine()}, {threads} torch threads now, torch {torch.__version__}"


def _steps_per_second(step: Callable[[], None], steps: int) -> float:
    for _ in range(5):  # warm-up: allocator, first-call dispatch
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def _epochs_per_second(
    model: nn.Module,
    loss: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    epoch: Callable[[], Iterable[torch.Tensor]],
    epochs: int,
) -> float:
    """Train ``model`` for ``epochs`` passes over ``epoch()``'s batches; epochs per second."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in epoch():
            value = loss(model, batch)
            opt.zero_grad()
            value.backward()
            opt.step()
    return epochs / (time.perf_counter() - start)


def _mlp_2d() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2)
    )


def _mlp_2d_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (model(x) - x).square().mean()


@benchmark("loop", summary="the course training loop against a DataLoader loop")
def bench_loop(epochs: int = 3) -> dict[str, float]:
    """Epochs per second of the course loop vs a ``DataLoader(TensorDataset)`` loop: the MLP
    VAE on the MNIST train split (batch 128), and a 2D MLP on 8000 ring points (batch 256)."""
    from torch.utils.data import DataLoader, TensorDataset

    cases = [
        (
            "MLP VAE, MNIST 4000 x 784, batch 128",
            _vae,
            _vae_loss,
            data.mnist("train", "cpu", flatten=True)[0],
            128,
        ),
        (
            "2D MLP, ring 8000 x 2, batch 256",
            _mlp_2d,
            _mlp_2d_loss,
            data.toy_2d("ring", 8000, device="cpu"),
            256,
        ),
    ]
    print(f"{epochs} epochs each; {machine()}")
    print(f"{'workload':<40}{'course loop':>12}{'DataLoader':>12}{'ratio':>8}   (epochs/s)")
    results = {}
    for name, make_model, loss, x, batch_size in cases:
        loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)
        ours = _epochs_per_second(
            make_model(),
            loss,
            lambda x=x, b=batch_size: (t for (t,) in batches(x, batch_size=b)),
            epochs,
        )
        theirs = _epochs_per_second(
            make_model(), loss, lambda loader=loader: (t for (t,) in loader), epochs
        )
        results[name] = ours / theirs
        print(f"{name:<40}{ours:>12.2f}{theirs:>12.2f}{ours / theirs:>7.2f}x")
    return results


def _workloads() -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    x, y = data.mnist("train", device="cpu")
    vae = _vae()
    vae_opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    cnn = MnistClassifier()
    cnn_opt = torch.optim.Adam(cnn.parameters(), lr=1e-3)
    mlp2d = nn.Sequential(
        nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2)
    )
    mlp_opt = torch.optim.Adam(mlp2d.parameters(), lr=1e-3)
    ring = data.toy_2d("ring", 256, device="cpu")

    def vae_step() -> None:
        loss = _vae_loss(vae, x[:128].reshape(128, -1))
        vae_opt.zero_grad()
        loss.backward()
        vae_opt.step()

    def cnn_step() -> None:
        loss = F.cross_entropy(cnn(x[:64]), y[:64])
        cnn_opt.zero_grad()
        loss.backward()
        cnn_opt.step()

    def mlp_step() -> None:
        loss = (mlp2d(ring) - ring).square().mean()
        mlp_opt.zero_grad()
        loss.backward()
        mlp_opt.step()

    return {
        "2D MLP (2-128-128-2, batch 256)": mlp_step,
        "MLP VAE (784-400-20, batch 128)": vae_step,
        "MNIST CNN classifier (batch 64)": cnn_step,
    }


@benchmark("threads", summary="steps per second with 1 and 2 torch threads, idle and busy")
def bench_threads(seconds_per_case: float = 2.0) -> dict[tuple[str, str, int], float]:
    """Steps/s per workload for 1 and 2 threads, other core idle vs busy."""
    workloads = _workloads()
    results: dict[tuple[str, str, int], float] = {}
    for load in ("idle", "busy"):
        # "busy": another process spins on a core, as a second pytest worker or a browser does.
        hog = None
        if load == "busy":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(0.5)
        try:
            for name, step in workloads.items():
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    probe = _steps_per_second(step, 5)
                    n = max(10, int(probe * seconds_per_case))
                    results[(name, load, threads)] = _steps_per_second(step, n)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    torch.set_num_threads(1)
    print(f"training steps/s; {machine()}; {torch.get_num_interop_threads()} interop threads")
    header = f"{'workload':<36}{'other core':>11}{'1 thread':>10}{'2 threads':>11}{'2t / 1t':>9}"
    print(header)
    for name in workloads:
        for load in ("idle", "busy"):
            one, two = results[(name, load, 1)], results[(name, load, 2)]
            print(f"{name:<36}{load:>11}{one:>10.1f}{two:>11.1f}{two / one:>9.2f}")
    return results


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A two-column table: names left-aligned, values right-aligned."""
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        print(f"{name:<{width}}{value:>12}")


def print_digits_benchmark(title: str, rows: list[tuple[str, str]], results: dict) -> None:
    """A digits benchmark's table: ``title``, its own ``rows``, then the training time,
    the epochs (and the one selected on validation) and the parameter count."""
    print(f"{title} on sklearn digits (train 1000 / val 350 / test 447); {machine()}")
    print_rows([
        *rows,
        ("training time (s)", f"{results['train_seconds']:.1f}"),
        ("epochs (best on validation)", f"{results['epochs']} ({results['best_epoch']})"),
        ("parameters", f"{int(results['parameters']):,}"),
    ])  # fmt: skip


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def stdev(values: list[float]) -> float:
    """The sample standard deviation (0 for one value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def load_json(filename: str, path: str | None) -> dict:
    """Benchmark results: ``path``, or the shipped ``course_utils/weights/<filename>``."""
    with open(path or WEIGHTS_DIR / filename) as f:
        return json.load(f)


def save_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")
