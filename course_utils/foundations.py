"""Foundations (lecture 00): the KL demo (target density, ``kl_fit_figure``) and the two
benchmarks behind the course's own choices, ``course bench loop`` and ``course bench
threads``.

* ``course bench loop``: the course training loop (on-device index batching) against the
  standard ``DataLoader(TensorDataset)`` loop, same MLP VAE, data, batch size and steps.
* ``course bench threads``: training steps per second with 1 and 2 intra-op threads, with
  the other core idle and busy, for the course's small models. It is why ``course_utils``
  runs one thread by default (``course_utils.device``).
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from course_utils import data
from course_utils.bench import machine
from course_utils.metrics import MnistClassifier
from course_utils.registry import benchmark
from course_utils.train import batches
from course_utils.viz import tidy

KL_GRID = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64)


def bimodal_density(x: torch.Tensor) -> torch.Tensor:
    """The target of lecture 00's KL demo: ``0.5 N(-2, 0.6²) + 0.5 N(2, 0.6²)`` at ``x`` ``[M]``."""
    return 0.5 * (_normal_pdf(x, -2.0, 0.6) + _normal_pdf(x, 2.0, 0.6))


def _normal_pdf(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def kl_on_grid(p: torch.Tensor, q: torch.Tensor, dx: float) -> float:
    """``KL(p‖q) = ∫ p log(p/q) dx`` by the rectangle rule on a grid, with 0 log 0 = 0."""
    if p.shape != q.shape:
        raise ValueError(f"q: expected the shape of p {tuple(p.shape)}, got {tuple(q.shape)}")
    mask = p > 0
    return float((p[mask] * (p[mask].log() - q[mask].clamp_min(1e-300).log())).sum() * dx)


def kl_fit_values(mu: float, sigma: float) -> tuple[float, float]:
    """``(KL(p‖q), KL(q‖p))`` for the bimodal ``p`` and ``q = N(mu, sigma²)``, in nats."""
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive float, got {sigma!r}")
    dx = float(KL_GRID[1] - KL_GRID[0])
    p, q = bimodal_density(KL_GRID), _normal_pdf(KL_GRID, mu, sigma)
    return kl_on_grid(p, q, dx), kl_on_grid(q, p, dx)


def kl_fit_figure(mu: float, sigma: float) -> Figure:
    """The bimodal ``p`` and a Gaussian ``q = N(mu, sigma²)``, titled with both KLs."""
    forward, reverse = kl_fit_values(mu, sigma)
    fig, ax = plt.subplots(figsize=(8.5, 3.2))
    x = KL_GRID.numpy()
    ax.fill_between(x, bimodal_density(KL_GRID).numpy(), alpha=0.3, label="p (data)")
    ax.plot(
        x,
        _normal_pdf(KL_GRID, mu, sigma).numpy(),
        color="tab:red",
        label=f"q = N({mu:.1f}, {sigma:.2f}²)",
    )
    ax.set_xlim(-6, 6)
    ax.set_title(f"KL(p‖q) = {forward:.3f} nats (forward),  KL(q‖p) = {reverse:.3f} nats (reverse)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # hides no mode
    tidy(fig)
    return fig


# -- the course's own choices: `course bench loop` and `course bench threads` --------------


def _vae() -> nn.Module:
    """The MLP VAE the timings use (784-400-20, the size of lecture 01's)."""
    from course_utils.vae import MlpVae

    torch.manual_seed(0)
    return MlpVae(data_dim=784, hidden=400, latent_dim=20)


def _vae_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Negative single-sample ELBO, averaged over the batch."""
    from course_utils.vae import log_weights

    return -log_weights(model, x, 1).mean()


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
