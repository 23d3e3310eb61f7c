"""``course bench text-to-image``: the guidance-scale sweep of the shipped small Stable
Diffusion. For each scale ``s``, 1000 samples from the test split's captions (DDIM-50, the
same noise at every scale): the share the course classifier reads as the requested digit,
the shares whose measured slant and thickness classes match the caption, FID to the test
images, and seconds of sampling. The shipped results: ``course_utils/weights/t2i_bench.json``.
"""

from __future__ import annotations

import time

from course_utils import data
from course_utils.bench import load_json, machine, save_json
from course_utils.registry import benchmark
from course_utils.text_to_image import captions, digits

SCALES = (1.0, 2.0, 3.0, 4.0, 5.0, 7.0)


def format_t2i_bench(rows: list[dict]) -> list[str]:
    """The table of ``course bench text-to-image``'s rows."""
    lines = [f"{'s':>4}{'w':>4}{'digit':>8}{'slant':>8}{'thickness':>11}{'FID':>7}{'sample s':>10}"]
    for r in rows:
        lines.append(
            f"{r['scale']:>4g}{r['scale'] - 1:>4g}{r['digit']:>8.1%}{r['slant']:>8.1%}"
            f"{r['thickness']:>11.1%}{r['fid']:>7.1f}{r['seconds']:>10.0f}"
        )
    return lines


def load_t2i_bench(path: str | None = None) -> dict:
    """The shipped ``course bench text-to-image`` results: ``{"rows", "machine"}``."""
    return load_json("t2i_bench.json", path)


@benchmark(
    "text-to-image",
    summary="the small Stable Diffusion's guidance sweep: prompt fidelity and FID per scale",
    options=("save",),
    table=lambda: format_t2i_bench(load_t2i_bench()["rows"]),
)
def bench_text_to_image(save: str | None = None) -> list[dict]:
    """Sample and measure at every scale of ``SCALES``; print and return the rows."""
    x, y = data.mnist("test")
    prompts = captions.captions(x, y)
    rows = []
    for scale in SCALES:
        start = time.perf_counter()
        images = digits.generate(prompts, scale=scale, seed=0)
        seconds = time.perf_counter() - start
        rows.append({"scale": scale, **digits.evaluate(images, (x, y)), "seconds": seconds})
        print("\n".join(format_t2i_bench(rows)[-1:]), flush=True)
    print(f"small Stable Diffusion, 1000 test captions, DDIM-50; {machine()}")
    print("\n".join(format_t2i_bench(rows)))
    if save is not None:
        save_json({"rows": rows, "machine": machine()}, save)
    return rows
