"""Benchmarks behind the numbers the course states (`course bench NAME`).

* ``loop``: the course training loop (on-device index batching) against the standard
  ``DataLoader(TensorDataset)`` loop, same MLP VAE, data, batch size and steps.
* ``threads``: training steps per second with 1 and 2 intra-op threads, with the other
  core idle and busy, for the course's small models. It is why ``course_utils`` runs one
  thread by default.
* ``vae-digits``: the digits VAE benchmark of lecture 01 (test nats per image).
* ``flow-digits``: the digits flow benchmark of lecture 03 (test nats per image).
* ``gan``: mode coverage on the ring and the grid (VEEGAN's protocol) for the vanilla GAN,
  WGAN, WGAN-GP and WGAN-GP with discriminator rejection sampling, over several seeds.
* ``diffusion``: steps vs quality for the shipped MNIST diffusion model, DDPM with 1000
  steps against DDIM with 10 to 1000 (FID, class coverage, sampling time).

Each prints a table; nothing here is asserted by the tests (timings vary by machine).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.metrics import MnistClassifier
from course_utils.models import MlpVae, log_weights
from course_utils.train import batches


def _vae() -> MlpVae:
    """The MLP VAE the timings use (784-400-20, the size of lecture 01's)."""
    torch.manual_seed(0)
    return MlpVae(data_dim=784, hidden=400, latent_dim=20)


def _vae_loss(model: MlpVae, x: torch.Tensor) -> torch.Tensor:
    """Negative single-sample ELBO, averaged over the batch."""
    return -log_weights(model, x, 1).mean()


def _machine() -> str:
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
    print(f"{epochs} epochs each; {_machine()}")
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
    print(f"training steps/s; {_machine()}; {torch.get_num_interop_threads()} interop threads")
    header = f"{'workload':<36}{'other core':>11}{'1 thread':>10}{'2 threads':>11}{'2t / 1t':>9}"
    print(header)
    for name in workloads:
        for load in ("idle", "busy"):
            one, two = results[(name, load, 1)], results[(name, load, 2)]
            print(f"{name:<36}{load:>11}{one:>10.1f}{two:>11.1f}{two / one:>9.2f}")
    return results


def _print_rows(rows: list[tuple[str, str]]) -> None:
    """A two-column table: names left-aligned, values right-aligned."""
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        print(f"{name:<{width}}{value:>12}")


def bench_vae_digits(seconds: float = 50.0, seed: int = 0) -> dict[str, float]:
    """The digits VAE benchmark (intro_dgm protocol, goal <= 92 nats): train, then print the
    test negative ELBO, the IWAE (k=1000) NLL, the time and the parameter count."""
    from course_utils.pretrain import digits_vae_benchmark

    _, results = digits_vae_benchmark(seconds=seconds, seed=seed)
    print(f"ConvDigitsVae on sklearn digits (train 1000 / val 350 / test 447); {_machine()}")
    rows = [
        ("test negative ELBO (nats/image)", f"{results['test_neg_elbo']:.2f}"),
        ("test NLL, IWAE k=1000 (nats/image)", f"{results['test_iwae_nll_k1000']:.2f}"),
        ("training time (s)", f"{results['train_seconds']:.1f}"),
        ("epochs (best on validation)", f"{results['epochs']} ({results['best_epoch']})"),
        ("parameters", f"{int(results['parameters']):,}"),
    ]
    _print_rows(rows)
    return results


def bench_flow_digits(seconds: float = 55.0, seed: int = 0) -> dict[str, float]:
    """The digits flow benchmark (intro_dgm protocol, uniform dequantization, goal <= 105
    nats): train a RealNVP, then print the test NLL bound, the time and the parameters."""
    from course_utils.pretrain import flow_digits_benchmark

    _, results = flow_digits_benchmark(seconds=seconds, seed=seed)
    print(f"RealNVP on sklearn digits (train 1000 / val 350 / test 447); {_machine()}")
    rows = [
        ("test NLL bound -E_u log p(x+u) (nats/image)", f"{results['test_nll']:.2f}"),
        ("test bits/dim", f"{results['test_bits_per_dim']:.3f}"),
        ("training time (s)", f"{results['train_seconds']:.1f}"),
        ("epochs (best on validation)", f"{results['epochs']} ({results['best_epoch']})"),
        ("parameters", f"{int(results['parameters']):,}"),
    ]
    _print_rows(rows)
    return results


GAN_VARIANTS = ("gan", "wgan", "wgan-gp", "wgan-gp + DRS")


def _gan_case(case: tuple[str, str, int, int]) -> dict[str, float | str | int]:
    """Train one toy GAN (one dataset, config, seed); its mode coverage and CPU seconds.

    For ``wgan-gp`` the same generator is also scored after rejection sampling; the DRS
    time adds the discriminator fit and the sampling to the training time."""
    from course_utils import gan, metrics

    torch.set_num_threads(1)
    dataset, variant, seed, steps = case
    x = data.toy_2d(dataset, 20_000, seed=seed, device="cpu")
    centers, std = data.mode_centers(dataset), data.mode_std(dataset)
    cpu = time.process_time()
    run = gan.train_toy_gan(x, variant, steps=steps, seed=seed)
    train_cpu = time.process_time() - cpu
    rows = [
        {"dataset": dataset, "variant": variant, "seed": seed, "cpu_seconds": train_cpu,
         **metrics.mode_coverage(run.sample(2500, seed=seed), centers, std).__dict__}
    ]  # fmt: skip
    if variant == "wgan-gp":
        cpu = time.process_time()
        samples, acceptance = gan.rejection_sample(run.sample, x, 2500, seed=seed)
        rows.append(
            {"dataset": dataset, "variant": "wgan-gp + DRS", "seed": seed,
             "cpu_seconds": train_cpu + time.process_time() - cpu, "acceptance": acceptance,
             **metrics.mode_coverage(samples, centers, std).__dict__}
        )  # fmt: skip
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _stdev(values: list[float]) -> float:
    import statistics

    return statistics.stdev(values) if len(values) > 1 else 0.0


def format_gan_bench(rows: list[dict]) -> list[str]:
    """The table of ``bench_gan`` rows: per dataset and method, modes captured and % of
    high-quality samples (mean ± std over seeds), CPU seconds per run, DRS acceptance."""
    lines = [
        f"{'data':<6}{'method':<16}{'modes':>14}{'high quality %':>18}{'CPU s/run':>11}"
        f"{'DRS accept %':>14}"
    ]
    for dataset in ("ring", "grid"):
        for variant in GAN_VARIANTS:
            sel = [r for r in rows if r["dataset"] == dataset and r["variant"] == variant]
            if not sel:
                continue
            modes = [r["modes_captured"] for r in sel]
            hq = [100 * r["high_quality_rate"] for r in sel]
            mode_text = f"{_mean(modes):.1f} ± {_stdev(modes):.1f}/{sel[0]['num_modes']}"
            hq_text = f"{_mean(hq):.1f} ± {_stdev(hq):.1f}"
            seconds = _mean([r["cpu_seconds"] for r in sel])
            accept = [100 * r["acceptance"] for r in sel if "acceptance" in r]
            accept_text = f"{_mean(accept):.1f}" if accept else "-"
            lines.append(
                f"{dataset:<6}{variant:<16}{mode_text:>14}{hq_text:>18}{seconds:>11.1f}"
                f"{accept_text:>14}"
            )
    return lines


def _load_json(filename: str, path: str | None) -> dict:
    import json

    from course_utils.checkpoints import WEIGHTS_DIR

    with open(path or WEIGHTS_DIR / filename) as f:
        return json.load(f)


def _save_json(result: dict, path: str) -> None:
    import json

    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


def load_gan_bench(path: str | None = None) -> dict:
    """The shipped ``course bench gan`` results (``course_utils/weights/gan_bench.json``):
    ``{"seeds", "steps", "machine", "rows"}``."""
    return _load_json("gan_bench.json", path)


def bench_gan(
    seeds: int = 5, steps: int = 5000, save: str | None = None, workers: int = 2
) -> list[dict]:
    """Modes captured and % high-quality samples (2500 samples, VEEGAN protocol), mean ± std
    over ``seeds``, and CPU seconds per run (1 thread), on the 8-ring and the 25-grid."""
    import multiprocessing

    cases = [
        (dataset, variant, seed, steps)
        for dataset in ("ring", "grid")
        for variant in ("gan", "wgan", "wgan-gp")
        for seed in range(seeds)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        rows = [row for rows in pool.map(_gan_case, cases) for row in rows]
    print(f"{seeds} seeds x {steps} generator steps, 2500 samples each; {_machine()}")
    print("\n".join(format_gan_bench(rows)))
    if save:
        _save_json({"seeds": seeds, "steps": steps, "machine": _machine(), "rows": rows}, save)
    return rows


# (sampler, steps, eta): DDPM is Algorithm 2; DDIM's eta = 0 is deterministic.
DIFFUSION_SAMPLERS: list[tuple[str, int, float]] = [
    ("DDPM", 1000, 1.0),
    ("DDIM", 10, 0.0),
    ("DDIM", 20, 0.0),
    ("DDIM", 50, 0.0),
    ("DDIM", 100, 0.0),
    ("DDIM", 1000, 0.0),
    ("DDIM", 50, 1.0),
]


def _diffusion_case(case: tuple[str, int, float, int]) -> dict[str, float | str | int]:
    """Sample ``n`` images from the shipped ``ddpm_mnist`` model (no label) with one
    sampler, from the same ``x_T`` for every sampler; FID against the MNIST test split,
    class coverage, and wall seconds per 1000 images on one thread."""
    from course_utils import checkpoints, diffusion, metrics
    from course_utils.pretrain import DDPM_T

    torch.set_num_threads(1)
    sampler, steps, eta, n = case
    model = checkpoints.load_pretrained("ddpm_mnist")
    betas = diffusion.linear_beta_schedule(DDPM_T)
    alpha_bar = diffusion.alpha_bar_of(betas)
    x_T = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    start = time.perf_counter()
    chunks = []
    for x in x_T.split(250):
        if sampler == "DDPM":
            chunks.append(diffusion.sample_ddpm(model, x, betas)[0])
        else:
            chunks.append(diffusion.sample_ddim(model, x, alpha_bar, steps, eta)[0])
    seconds = time.perf_counter() - start
    images = ((torch.cat(chunks) + 1) / 2).clamp(0, 1)
    x_test, _ = data.mnist("test")
    coverage = metrics.class_coverage(images)
    return {"sampler": sampler, "steps": steps, "eta": eta, "samples": n,
            "fid": metrics.fid(images, x_test), "classes_present": coverage.classes_present,
            "class_entropy": coverage.entropy, "seconds_per_1000": seconds * 1000 / n}  # fmt: skip


def format_diffusion_bench(result: dict) -> list[str]:
    """The table of ``bench_diffusion``: per sampler, FID (and its ratio to DDPM's),
    classes present, class entropy and seconds per 1000 images; the data floor last."""
    rows = result["rows"]
    ddpm = next(r["fid"] for r in rows if r["sampler"] == "DDPM")
    lines = [
        f"{'sampler':<14}{'steps':>6}{'FID':>8}{'/ DDPM':>8}{'classes':>9}{'entropy':>9}"
        f"{'s / 1000 images':>17}"
    ]
    for r in rows:
        name = r["sampler"] if r["sampler"] == "DDPM" else f"DDIM eta={r['eta']:g}"
        lines.append(
            f"{name:<14}{r['steps']:>6}{r['fid']:>8.1f}{r['fid'] / ddpm:>8.2f}"
            f"{r['classes_present']:>6}/10{r['class_entropy']:>9.2f}{r['seconds_per_1000']:>17.0f}"
        )
    lines.append(f"{'data floor: 1000 train vs test images':<45}{result['fid_floor']:>8.1f}")
    return lines


def load_diffusion_bench(path: str | None = None) -> dict:
    """The shipped ``course bench diffusion`` results
    (``course_utils/weights/diffusion_bench.json``): ``{"samples", "fid_floor", "machine",
    "rows"}``."""
    return _load_json("diffusion_bench.json", path)


def bench_diffusion(samples: int = 1000, save: str | None = None, workers: int = 2) -> dict:
    """Steps vs quality for the shipped MNIST diffusion model: ``samples`` unconditional
    images per sampler (``DIFFUSION_SAMPLERS``), FID against the test split next to the data
    floor (as many train images against the same split), class coverage and time."""
    import multiprocessing

    from course_utils import metrics

    cases = [(sampler, steps, eta, samples) for sampler, steps, eta in DIFFUSION_SAMPLERS]
    longest_first = sorted(cases, key=lambda case: -case[1])  # the 1000-step ones in parallel
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        done = dict(zip(longest_first, pool.map(_diffusion_case, longest_first, chunksize=1),
                        strict=True))  # fmt: skip
    rows = [done[case] for case in cases]
    x_train, _ = data.mnist("train")
    x_test, _ = data.mnist("test")
    result = {"samples": samples, "fid_floor": metrics.fid(x_train[:samples], x_test),
              "machine": _machine(), "rows": rows}  # fmt: skip
    print(f"{samples} unconditional samples per sampler, 1 thread per sampler; {_machine()}")
    print("\n".join(format_diffusion_bench(result)))
    if save:
        _save_json(result, save)
    return result


BENCHMARKS: dict[str, Callable[..., object]] = {
    "loop": bench_loop,
    "threads": bench_threads,
    "vae-digits": bench_vae_digits,
    "gan": bench_gan,
    "flow-digits": bench_flow_digits,
    "diffusion": bench_diffusion,
}
