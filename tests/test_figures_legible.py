"""Every figure function the lectures and widgets use is legible where the student sees it
(issue 34, item 6).

Each public function of ``course_utils`` annotated ``-> Figure`` has cases below (a test
fails when a new one has none), drawn with the inputs the lectures give it or small
stand-ins, on the Agg canvas at the figure's own size and dpi: what ``widgets.figure_png``
and the inline backend send to the browser. The browser shows a PNG at one image pixel per
CSS pixel, scaled down only when it is wider than the output area (``viz.MAX_WIDTH_PX``).
Checked per figure:

* every drawn text (titles, suptitle, axis and tick labels, legends, annotations) lies
  inside the canvas and overlaps no other drawn text;
* every drawn text is at least ``MIN_FONT_PX`` pixels tall (its font size) as displayed;
* no image panel is under ``MIN_IMAGE_PX`` on a side (a strip), and none is blank
  (near-constant rendered pixels) unless the figure declares it (``viz.allow_blank``),
  saying so in its title;
* an image in pixel coordinates (image grids, digits) has no ticks and no axis labels,
  unless its ticks name its rows and columns (an attention map's characters);
* integer-valued data (bars at integer positions, a colorbar of integer values) gets
  integer ticks.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FixedFormatter, FuncFormatter
from matplotlib.transforms import Bbox

import course_utils
from course_utils import viz

# The smallest text a figure may show, in CSS pixels of font size. Matplotlib's default
# font (DejaVu Sans) has an x-height of 0.55 em: at 9 px a lower-case letter is 5 pixels
# tall, the least at which e/c/o and a/s stay distinct on a standard-density screen; 9 px
# is 6.5 pt at matplotlib's 100 dpi, below every size the course sets (7 pt and up).
MIN_FONT_PX = 9.0
# A panel whose rendered luminance spans less than this (1st to 99th percentile, on 0..1)
# is blank: an almost-white decode (below 5% grey) or a uniform fill.
BLANK_SPREAD = 0.05
# An image panel smaller than this on either side (as displayed) is a strip, not a picture:
# 12 digits in a row on a 3-inch canvas came out 22 pixels tall.
MIN_IMAGE_PX = 40.0
OVERLAP_PX = 1.0  # texts may touch, not overlap by more than this in both directions


# ------------------------------------------------------------------------ the checks


@dataclass
class DrawnText:
    text: str
    bbox: Bbox
    size_px: float  # font size as displayed


def _render(fig: Figure) -> tuple[FigureCanvasAgg, list[DrawnText]]:
    """Draw ``fig`` as ``widgets.figure_png`` does; return the canvas and every text drawn
    (recorded at the renderer, so texts outside an axis' range or hidden are left out)."""
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    seen: dict[int, tuple] = {}
    draw_text = renderer.draw_text

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if s.strip() and mtext is not None:
            seen.setdefault(id(mtext), (mtext, prop.get_size_in_points()))
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = record
    canvas.draw()
    scale = min(1.0, viz.MAX_WIDTH_PX / fig.bbox.width)  # the output area scales it down
    texts = [
        DrawnText(t.get_text(), t.get_window_extent(renderer), size * fig.dpi / 72 * scale)
        for t, size in seen.values()
    ]
    return canvas, texts


def _overlap(a: Bbox, b: Bbox) -> bool:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w > OVERLAP_PX and h > OVERLAP_PX


def _luminance(canvas: FigureCanvasAgg, box: Bbox) -> np.ndarray:
    rgba = np.asarray(canvas.buffer_rgba())[..., :3] / 255.0
    height = rgba.shape[0]
    # 3 pixels in from each edge: the frame (spines) is drawn on the border
    x0, x1 = int(np.ceil(box.x0)) + 3, int(np.floor(box.x1)) - 3
    y0, y1 = height - int(np.floor(box.y1)) + 3, height - int(np.ceil(box.y0)) - 3
    return (rgba[max(y0, 0) : y1, max(x0, 0) : x1] @ [0.299, 0.587, 0.114]).ravel()


def _pixel_image(ax) -> bool:
    """The axes shows an image in its own pixel coordinates (no ``extent``)."""
    for im in ax.images:
        h, w = im.get_array().shape[:2]
        left, right, bottom, top = im.get_extent()
        if {left, right} == {-0.5, w - 0.5} and {bottom, top} == {-0.5, h - 0.5}:
            return True
    return False


def _visible_ticks(axis) -> list[float]:
    """The labelled ticks an axis draws (after a draw)."""
    if not axis.axes.axison or not axis.get_visible():
        return []
    low, high = sorted(axis.get_view_interval())
    labels = [t.get_text() for t in axis.get_ticklabels()]
    return [
        float(loc)
        for loc, text in zip(axis.get_ticklocs(), labels, strict=False)
        if low <= loc <= high and text
    ]


def _integral(values) -> bool:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return values.size > 0 and bool(np.all(values == np.round(values)))


def legibility_problems(fig: Figure) -> list[str]:
    """What a student could not read in ``fig`` (empty when nothing)."""
    canvas, texts = _render(fig)
    width, height = fig.bbox.width, fig.bbox.height
    problems = []
    for t in texts:
        b = t.bbox
        if b.x0 < 0 or b.y0 < 0 or b.x1 > width or b.y1 > height:
            problems.append(f"text {t.text!r} leaves the {width:.0f}x{height:.0f} canvas: {b}")
        if t.size_px < MIN_FONT_PX - 1e-6:
            problems.append(f"text {t.text!r} is {t.size_px:.1f} px, under {MIN_FONT_PX} px")
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if _overlap(a.bbox, b.bbox):
                problems.append(f"texts {a.text!r} and {b.text!r} overlap")
    for ax in fig.axes:
        where = f"panel {ax.get_title()!r}"
        for im in ax.images:
            box = Bbox.intersection(im.get_window_extent(), ax.bbox)
            scale = min(1.0, viz.MAX_WIDTH_PX / width)
            if box is None or min(box.width, box.height) * scale < MIN_IMAGE_PX:
                side = 0 if box is None else min(box.width, box.height) * scale
                problems.append(f"{where}: its image is {side:.0f} px on its short side")
            if im.get_gid() == viz.BLANK_OK:
                continue
            lum = _luminance(canvas, box) if box is not None else np.zeros(0)
            if lum.size == 0 or np.percentile(lum, 99) - np.percentile(lum, 1) < BLANK_SPREAD:
                problems.append(f"{where}: its image is blank (near-constant pixels)")
        if _pixel_image(ax):
            named = all(  # ticks set with labels: each row and column named
                isinstance(a.get_major_formatter(), (FixedFormatter, FuncFormatter))
                for a in (ax.xaxis, ax.yaxis)
            )
            if not named:
                if _visible_ticks(ax.xaxis) or _visible_ticks(ax.yaxis):
                    problems.append(f"{where}: an image in pixel coordinates has ticks")
                for label in (ax.get_xlabel(), ax.get_ylabel()):
                    if label:
                        problems.append(f"{where}: an image has the axis label {label!r}")
        bars = [p for c in ax.containers for p in c if isinstance(p, Rectangle)]
        if bars and _integral([p.get_x() + p.get_width() / 2 for p in bars]):
            ticks = _visible_ticks(ax.xaxis)
            if ticks and not _integral(ticks):
                problems.append(f"{where}: bars at integers, ticks at {ticks}")
        colorbar = getattr(ax, "_colorbar", None)
        if colorbar is not None:
            data = colorbar.mappable.get_array()
            if data is not None and _integral(np.ma.filled(np.asarray(data, float), 0)):
                ticks = colorbar.get_ticks()
                low, high = colorbar.mappable.get_clim()
                ticks = [t for t in ticks if low <= t <= high]
                if not _integral(ticks):
                    problems.append(f"colorbar of integer values with ticks at {ticks}")
    return problems


# ------------------------------------------------------------------------ the cases
# Each case draws one figure as a lecture or widget does; slow inputs are built once.


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _digits(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` of the course's 8x8 digits, grey levels 0..16, ``[n, 8, 8]`` (long)."""
    from course_utils import data

    return data.digits("test")[0][seed : seed + n].view(-1, 8, 8).long()


def _mnist(n: int) -> torch.Tensor:
    from course_utils import data

    return data.mnist("test")[0][:n]


def _decoder(side: int = 28) -> Callable[[torch.Tensor], torch.Tensor]:
    x = _mnist(64).flatten(1)

    def decode(z: torch.Tensor) -> torch.Tensor:  # a digit per code, [B, d] -> [B, 784]
        idx = (z.abs().sum(1) * 7).long() % len(x)
        return x[idx]

    return decode


def _toy_run(landscape: str) -> SimpleNamespace:
    extent = (-3.0, 3.0, -3.0, 3.0)
    snapshots = [
        SimpleNamespace(
            step=s,
            samples=torch.randn(500, 2, generator=_gen(s)),
            landscape=torch.linspace(0, 1, 80)[None].repeat(80, 1) * (s + 1) / 3,
        )
        for s in range(3)
    ]
    return SimpleNamespace(
        snapshots=snapshots, extent=extent, config=SimpleNamespace(landscape=landscape)
    )


def _cycle_run() -> SimpleNamespace:
    return SimpleNamespace(G=lambda x: x.flip(1) * 0.5, F=lambda y: y.flip(1) * 2)


def _steps(n: int) -> list:
    from course_utils.diffusion import DenoisingStep

    x = _mnist(16) * 2 - 1
    return [
        DenoisingStep(
            t=999 - 100 * k, x_t=x + torch.randn(x.shape, generator=_gen(k)), x0_hat=x
        )  # fmt: skip
        for k in range(n)
    ]


def _vq():
    from course_utils import checkpoints

    vq = checkpoints.load_pretrained("vqvae_mnist")
    x = _mnist(1000)
    return vq, vq.encode(x), x


_cache: dict[str, object] = {}


def _once(name: str, build: Callable[[], object]) -> object:
    if name not in _cache:
        _cache[name] = build()
    return _cache[name]


def _cases() -> dict[str, list[tuple[str, Callable[[], Figure]]]]:
    from course_utils import (
        autoregressive,
        diffusion,
        flow_matching,
        flows,
        foundations,
        vae,
        vqvae,
    )
    from course_utils import language_models as lm
    from course_utils.gan import figures as gan_fig
    from course_utils.text_to_image import figures as t2i

    digits12 = lambda: _digits(12)  # noqa: E731
    ring = flow_matching.ring()
    probs = torch.softmax(torch.randn(64, 17, generator=_gen()), 1)
    betas = {
        b: {
            "samples": _mnist(32).flatten(1),
            "reconstructions": _mnist(32).flatten(1),
            "kl": 10 / b,
            "reconstruction": 20 * b,
        }  # fmt: skip
        for b in (0.25, 0.5, 1.0, 2.0, 4.0)
    }
    text = "ROMEO:\nBut soft, what light through yonder window breaks?"
    letters = text[:24]
    maps = torch.softmax(torch.randn(2, 4, 24, 24, generator=_gen()), -1).tril()
    sixteen = _mnist(16) * 2 - 1
    return {
        "viz.show_images": [
            (
                "lecture 06 temperature widget, 12 digits in a row",
                lambda: viz.show_images(
                    digits12(), "PixelCNN samples, temperature 0.6, top-k: all 17 levels", nrow=12
                ),
            ),
            (
                "64 MNIST digits",
                lambda: viz.show_images(_mnist(64), "DCGAN samples (shipped weights)"),
            ),
            (
                "lecture 02 truncation widget",
                lambda: viz.show_images(
                    _mnist(32),
                    "DCGAN, z' = psi z with psi = 0.75: FID 12.3, class entropy 2.21",
                    nrow=16,
                ),
            ),
            (
                "lecture 04 guidance widget",
                lambda: viz.show_images(
                    _mnist(40), "guidance w = 3: one column per digit 0 … 9", nrow=10
                ),
            ),
            ("one digit", lambda: viz.show_images(_mnist(1), "one test digit")),
        ],  # fmt: skip
        "viz.scatter_2d": [
            (
                "centers",
                lambda: viz.scatter_2d(
                    torch.randn(300, 2, generator=_gen()), "points", centers=ring.means, lim=3
                ),
            ),
            (
                "coloured",
                lambda: viz.scatter_2d(
                    torch.randn(300, 2), "coloured", color=torch.randn(300), label="samples"
                ),
            ),
        ],  # fmt: skip
        "viz.density_heatmap": [
            ("ring", lambda: viz.density_heatmap(ring.log_prob, "ring density", resolution=60)),
        ],
        "viz.plot_history": [
            (
                "two curves",
                lambda: viz.plot_history(
                    {
                        "step": list(range(0, 1000, 10)),
                        "loss": list(np.linspace(3, 1, 100)),
                        "kl": list(np.linspace(0, 1, 100)),
                    },
                    smooth=5,
                ),
            ),
        ],  # fmt: skip
        "viz.plot_trajectories": [
            ("paths", lambda: viz.plot_trajectories(torch.randn(10, 40, 2).cumsum(0), "paths")),
        ],
        "foundations.kl_fit_figure": [
            (f"mu {m}, sigma {s}", lambda m=m, s=s: foundations.kl_fit_figure(m, s))
            for m, s in ((0.0, 1.0), (-4.0, 0.2), (4.0, 4.0))
        ],
        "vae.latent_explorer_figure": [
            (
                "2-d codes",
                lambda: vae.latent_explorer_figure(
                    _decoder(),
                    torch.randn(500, 2, generator=_gen()),
                    torch.randint(0, 10, (500,), generator=_gen()),
                    1.3,
                    -0.7,
                ),
            ),
        ],  # fmt: skip
        "vae.interpolation_figure": [
            (
                method,
                lambda method=method: vae.interpolation_figure(
                    _decoder(),
                    torch.randn(16, generator=_gen(1)),
                    torch.randn(16, generator=_gen(2)),
                    0.35,
                    method,
                ),
            )
            for method in ("linear", "slerp")
        ],  # fmt: skip
        "vae.beta_figure": [("beta 1", lambda: vae.beta_figure(betas, 1.0))],
        "gan.figures.gan_snapshot_figure": [
            (
                "two runs",
                lambda: gan_fig.gan_snapshot_figure(
                    {"GAN (non-saturating)": _toy_run("probability"), "WGAN-GP": _toy_run("score")},
                    1,
                    torch.randn(300, 2),
                ),
            ),
        ],  # fmt: skip
        "gan.figures.cyclegan_figure": [
            (
                "two runs",
                lambda: gan_fig.cyclegan_figure(
                    {"CycleGAN": _cycle_run(), "no cycle loss": _cycle_run()},
                    ring.sample(300),
                    torch.randn(300, 2),
                    ring.means,
                    torch.randn(4, 2),
                ),
            ),
        ],  # fmt: skip
        "gan.figures.dirac_gan_figure": [
            (update, lambda update=update: gan_fig.dirac_gan_figure(update, 0.3, 0.1))
            for update in gan_fig.DIRAC_UPDATES
        ],
        "flows.flow_layers_figure": [
            (
                f"k = {k}",
                lambda k=k: flows.flow_layers_figure(
                    _once("flow", lambda: flows.realnvp_2d(4, 32)), torch.randn(300, 2), k
                ),
            )
            for k in (0, 2, 4)
        ],  # fmt: skip
        "diffusion.noising_figure": [
            (
                f"t = {t}",
                lambda t=t: diffusion.noising_figure(
                    _mnist(1)[0] * 2 - 1,
                    t,
                    {
                        "linear": diffusion.alpha_bar_of(diffusion.linear_beta_schedule(1000)),
                        "cosine": diffusion.cosine_alpha_bar(1000),
                    },
                ),
            )
            for t in (1, 500, 1000)
        ],  # fmt: skip
        "diffusion.denoising_figure": [
            (
                "step 3",
                lambda: diffusion.denoising_figure(
                    {"DDPM": _steps(5), "DDIM": _steps(5)}, 3, nrow=4
                ),
            ),
        ],  # fmt: skip
        "flow_matching.langevin_figure": [
            (
                "two chains",
                lambda: flow_matching.langevin_figure(
                    {
                        "Langevin (exact score)": torch.randn(3, 300, 2),
                        "annealed Langevin, sigma = 3 ... 0": torch.randn(3, 300, 2),
                    },
                    1,
                    flow_matching.GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.5),
                ),
            ),
        ],  # fmt: skip
        "flow_matching.probability_path_figure": [
            (
                "t = 0.5",
                lambda: flow_matching.probability_path_figure(
                    torch.randn(300, 2),
                    ring.sample(300),
                    0.5,
                    {"learned $v_\\theta$": ring.velocity, "exact $u_t$": ring.velocity},
                ),
            ),
        ],  # fmt: skip
        "flow_matching.steps_figure": [
            (
                "four samplers",
                lambda: flow_matching.steps_figure(
                    {
                        "Euler": {4: sixteen},
                        "Heun": {4: sixteen},
                        "DPM-Solver++(2M)": {4: sixteen},
                        "DDIM (eta = 0)": {4: None},
                    },
                    4,
                ),
            ),
        ],  # fmt: skip
        "autoregressive.generation_figure": [
            (f"step {s}", lambda s=s: autoregressive.generation_figure(_digits(1)[0], probs, s))
            for s in (0, 30, 64)
        ],
        "autoregressive.completion_figure": [
            (
                f"{r} rows",
                lambda r=r: autoregressive.completion_figure(_digits(1)[0], _digits(4, 5), r),
            )
            for r in (2, 6)
        ],  # fmt: skip
        "vqvae.codebook_figure": [
            (f"code {c}", lambda c=c: vqvae.codebook_figure(*_once("vq", _vq), c))
            for c in (31, 32, 5, 63)
        ],
        "language_models.figures.tokens_figure": [
            (
                "bpe",
                lambda: lm.tokens_figure(
                    [text[i : i + 3] for i in range(0, len(text), 3)] * 3,
                    "after 40 merges: 57 tokens; merge 40: 'the'",
                ),
            ),
        ],  # fmt: skip
        "language_models.figures.text_figure": [
            (
                "samples",
                lambda: lm.text_figure(
                    text * 3, "T 0.8, top-k 10: distinct-2 0.93, real words 0.71, model NLL 1.52"
                ),
            ),
            (
                "maskgit",
                lambda: lm.text_figure(
                    text, "MaskGIT decoding, after round 3 of 8: 40 of 128 still masked", columns=64
                ),
            ),
        ],  # fmt: skip
        "language_models.figures.attention_figure": [
            ("layer 1", lambda: lm.attention_figure(maps, letters, 0)),
        ],
        "text_to_image.figures.captioned_images": [
            (
                "captions",
                lambda: t2i.captioned_images(
                    _mnist(12),
                    ["a thick seven leaning right"] * 12,
                    "Training digits and their captions",
                ),
            ),
            (
                "prompt widget",
                lambda: t2i.captioned_images(
                    _mnist(8),
                    [""] * 8,
                    "\u201ca thin seven leaning left\u201d, guidance s = 4",
                    ncol=4,
                ),
            ),
        ],  # fmt: skip
        "text_to_image.figures.word_maps": [
            (
                "words",
                lambda: t2i.word_maps(
                    _mnist(1)[0],
                    ["a", "thick", "seven"],
                    torch.rand(3, 7, 7, generator=_gen()),
                    "where each word is attended",
                ),
            ),
        ],  # fmt: skip
    }


def _figure_functions() -> set[str]:
    """Every public ``course_utils`` function annotated to return a ``Figure``."""
    found = set()
    for info in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        if ".grading" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, f in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(f):
                continue
            takes_figure = any(v in ("Figure", Figure) for k, v in f.__annotations__.items()
                               if k != "return")  # fmt: skip
            if takes_figure:  # lays out a figure it is given (viz.tidy), draws none
                continue
            if f.__module__ == module.__name__ and f.__annotations__.get("return") in (
                "Figure",
                Figure,
            ):
                found.add(f"{info.name.removeprefix('course_utils.')}.{name}")
    return found


CASES = [(name, case, draw) for name, cases in _cases().items() for case, draw in cases]


def test_every_figure_function_has_a_case():
    assert _figure_functions() == set(_cases()), (
        "figure functions without legibility cases (add them to _cases) or cases of "
        "functions that no longer exist"
    )


@pytest.mark.parametrize("name, case, draw", CASES, ids=[f"{n}[{c}]" for n, c, _ in CASES])
def test_figure_is_legible(name: str, case: str, draw: Callable[[], Figure]) -> None:
    fig = draw()
    assert isinstance(fig, Figure), f"{name}: expected a Figure, got {type(fig).__name__}"
    try:
        problems = legibility_problems(fig)
    finally:
        plt.close(fig)
    assert not problems, f"{name} ({case}):\n  " + "\n  ".join(problems)


# ------------------------------------------------------------------------ the checker's own tests


def _bad_figure(kind: str) -> Figure:
    fig, ax = plt.subplots(figsize=(3, 2))
    if kind == "clipped":
        ax.set_title("a title far too long for a figure three inches wide, cut at both ends")
    elif kind == "overlap":
        ax.text(0.5, 0.5, "one")
        ax.text(0.5, 0.5, "two")
    elif kind == "tiny":
        ax.set_title("small", fontsize=5)
    elif kind == "blank":
        ax.imshow(np.full((8, 8), 0.01), cmap="gray_r", vmin=0, vmax=1)
        ax.set_axis_off()
    elif kind == "labelled image":
        ax.imshow(np.eye(8))
        ax.set_xlabel("image column")
    elif kind == "strip":
        ax.imshow(np.random.default_rng(0).random((2, 60)))
        ax.set_axis_off()
    elif kind == "half levels":
        ax.bar(range(17), np.ones(17))
        ax.set_xticks([0, 2.5, 5, 7.5])
    if kind != "clipped":
        fig.tight_layout()
    return fig


@pytest.mark.parametrize(
    "kind, match",
    [
        ("clipped", "leaves the"),
        ("overlap", "overlap"),
        ("tiny", "under"),
        ("blank", "blank"),
        ("labelled image", "axis label|has ticks"),
        ("half levels", "ticks at"),
        ("strip", "short side"),
    ],
)
def test_the_checker_finds_each_problem(kind: str, match: str) -> None:
    import re

    problems = legibility_problems(_bad_figure(kind))
    assert any(re.search(match, p) for p in problems), problems


def test_a_declared_blank_panel_passes() -> None:
    fig, ax = plt.subplots(figsize=(3, 2))
    viz.allow_blank(ax.imshow(np.zeros((8, 8)), cmap="gray_r", vmin=0, vmax=1))
    ax.set_axis_off()
    assert legibility_problems(fig) == []
