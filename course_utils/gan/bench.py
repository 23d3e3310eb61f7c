"""``course bench gan``: mode coverage of the toy GAN recipes, with and without
discriminator rejection sampling, on the 8-ring and the 25-grid; the table of its rows and
the loader of its shipped results (``course_utils/weights/gan_bench.json``).
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import torch

from course_utils import data, metrics
from course_utils.bench import load_json, machine, mean, save_json, stdev
from course_utils.gan.toy import CONFIGS, rejection_sample, train_toy_gan
from course_utils.registry import benchmark

GAN_VARIANTS = (
    "gan", "wgan", "wgan-gp", "wgan-gp + DRS", "sn-gan", "sn-gan + DRS", "r1-gan", "r1-gan + DRS"
)  # fmt: skip
# The recipes scored with DRS too, and whether DRS fine-tunes the GAN's own discriminator
# (a logistic one with no constraint) rather than training a fresh one.
_DRS_BASES = {"wgan-gp": False, "sn-gan": False, "r1-gan": True}
# Steps of fine-tuning the GAN's own discriminator (a fresh one trains
# ``rejection_sample``'s default number of steps).
DRS_FINE_TUNE_STEPS = 5000


def _gan_case(
    case: tuple[str, str, int, int | None], drs_steps: int | None = None
) -> list[dict[str, float | str | int]]:
    """Train one toy GAN (one dataset, config, seed; ``steps=None``: the recipe's own); its
    mode coverage and CPU seconds.

    For the ``_DRS_BASES`` the same generator is also scored after rejection sampling; the
    DRS time adds the discriminator fit and the sampling to the training time. Fine-tuning
    the R1-GAN's discriminator takes ``DRS_FINE_TUNE_STEPS`` instead of a fresh one's
    ``rejection_sample`` default (``drs_steps`` overrides both: a quick test)."""
    torch.set_num_threads(1)
    dataset, variant, seed, steps = case
    x = data.toy_2d(dataset, 20_000, seed=seed, device="cpu")
    centers, std = data.mode_centers(dataset), data.mode_std(dataset)
    steps = CONFIGS[variant].steps if steps is None else steps
    cpu = time.process_time()
    toy = train_toy_gan(x, variant, steps=steps, seed=seed)
    train_cpu = time.process_time() - cpu
    rows = [
        {"dataset": dataset, "variant": variant, "seed": seed, "steps": steps,
         "logit_scale": CONFIGS[variant].logit_scale, "cpu_seconds": train_cpu,
         **metrics.mode_coverage(toy.sample(2500, seed=seed), centers, std).__dict__}
    ]  # fmt: skip
    if variant in _DRS_BASES:
        cpu = time.process_time()
        own = (
            {"discriminator": toy.critic, "steps": DRS_FINE_TUNE_STEPS}
            if _DRS_BASES[variant]
            else {}
        )
        if drs_steps is not None:
            own["steps"] = drs_steps
        samples, acceptance = rejection_sample(toy.sample, x, 2500, seed=seed, **own)
        rows.append(
            {"dataset": dataset, "variant": f"{variant} + DRS", "seed": seed, "steps": steps,
             "logit_scale": CONFIGS[variant].logit_scale,
             "cpu_seconds": train_cpu + time.process_time() - cpu, "acceptance": acceptance,
             **metrics.mode_coverage(samples, centers, std).__dict__}
        )  # fmt: skip
    return rows


def format_gan_bench(rows: list[dict]) -> list[str]:
    """The table of ``bench_gan`` rows: per dataset and method, generator steps, modes
    captured and % of high-quality samples (mean ± std over seeds), CPU seconds per run,
    DRS acceptance."""
    lines = [
        f"{'data':<6}{'method':<16}{'steps':>7}{'modes':>16}{'high quality %':>18}"
        f"{'CPU s/run':>11}{'DRS accept %':>14}"
    ]
    for dataset in ("ring", "grid"):
        for variant in GAN_VARIANTS:
            sel = [r for r in rows if r["dataset"] == dataset and r["variant"] == variant]
            if not sel:
                continue
            modes = [r["modes_captured"] for r in sel]
            hq = [100 * r["high_quality_rate"] for r in sel]
            mode_text = f"{mean(modes):.1f} ± {stdev(modes):.1f}/{sel[0]['num_modes']}"
            hq_text = f"{mean(hq):.1f} ± {stdev(hq):.1f}"
            seconds = mean([r["cpu_seconds"] for r in sel])
            accept = [100 * r["acceptance"] for r in sel if "acceptance" in r]
            accept_text = f"{mean(accept):.1f}" if accept else "-"
            lines.append(
                f"{dataset:<6}{variant:<16}{sel[0]['steps']:>7}{mode_text:>16}{hq_text:>18}"
                f"{seconds:>11.1f}{accept_text:>14}"
            )
    return lines


def bench_cpu_seconds(rows: list[dict]) -> float:
    """CPU seconds the runs behind ``bench_gan`` rows took in all: a DRS row's time includes
    its generator's training, which its base row already counts."""
    base = {(r["dataset"], r["variant"], r["seed"]): r["cpu_seconds"] for r in rows}

    def own(r: dict) -> float:
        trained = (r["dataset"], r["variant"].removesuffix(" + DRS"), r["seed"])
        return r["cpu_seconds"] - (base.get(trained, 0) if r["variant"].endswith(" + DRS") else 0)

    return sum(own(r) for r in rows)


def load_gan_bench(path: str | None = None) -> dict:
    """The shipped ``course bench gan`` results (``course_utils/weights/gan_bench.json``):
    ``{"seeds", "machine", "rows"}``, each row with its own ``"steps"``."""
    return load_json("gan_bench.json", path)


@benchmark(
    "gan",
    summary="mode coverage on the ring and the grid: GAN, WGAN, WGAN-GP, SN-GAN, R1-GAN, DRS",
    options=("seeds", "steps", "save", "methods"),
    table=lambda: format_gan_bench(load_gan_bench()["rows"]),
)
def bench_gan(
    seeds: int = 5,
    steps: int | None = None,
    save: str | None = None,
    methods: str | None = None,
    workers: int = 2,
) -> list[dict]:
    """Modes captured and % high-quality samples (2500 samples, VEEGAN protocol), mean ± std
    over ``seeds``, and CPU seconds per run (1 thread), on the 8-ring and the 25-grid.

    Args:
        steps: generator steps for every method (default: each recipe's ``steps``).
        save: write ``{"seeds", "machine", "rows"}`` there as JSON.
        methods: comma-separated names in ``CONFIGS`` (default: all). With ``save`` naming
            an existing file, their rows replace theirs and the other methods' rows stay.
    """
    names = list(CONFIGS) if methods is None else methods.split(",")
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        raise ValueError(f"methods: expected names in {sorted(CONFIGS)}, got {unknown}")
    kept = []  # the rows of the methods not rerun, from the file ``save`` names
    if save and methods is not None and Path(save).exists():
        old = load_gan_bench(save)
        if old["seeds"] != seeds:
            raise ValueError(f"seeds: {save} holds {old['seeds']} seeds, got {seeds}")
        kept = [r for r in old["rows"] if r["variant"].removesuffix(" + DRS") not in names]
    cases = [
        (dataset, name, seed, steps)
        for dataset in ("ring", "grid")
        for name in names
        for seed in range(seeds)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        rows = [row for rows in pool.map(_gan_case, cases) for row in rows]
    print(f"{seeds} seeds, 2500 samples each; {machine()}")
    print("\n".join(format_gan_bench(rows)))
    if save:
        save_json({"seeds": seeds, "machine": machine(), "rows": kept + rows}, save)
    return rows
