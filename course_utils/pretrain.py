"""``course pretrain NAME``: produce the checkpoints shipped in ``course_utils/weights``
from the recipes the topics register.

    python -m course_utils.pretrain NAME [--out FILE] [--epochs N]   (or: course pretrain)

NAME is a checkpoint or a group of them; ``--help`` lists both, from the recipes the topic
modules register (``course_utils.registry``). Each recipe trains from a fixed seed on the
CPU (or GPU when there is one), prints the metrics it reaches and stores them in the
checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_utils import checkpoints, registry


def _targets() -> str:
    recipes, groups = registry.recipes(), registry.groups()
    width = max(map(len, [*recipes, *groups])) + 2
    lines = [f"  {name:<{width}}{r.summary}" for name, r in recipes.items()]
    lines += [f"  {name:<{width}}{', '.join(names)}" for name, names in groups.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    recipes, groups = registry.recipes(), registry.groups()
    parser = argparse.ArgumentParser(
        prog="course pretrain",
        description=__doc__.split("\n\n")[0],
        epilog="checkpoints and groups:\n" + _targets(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted([*recipes, *groups]), help="what to produce")
    parser.add_argument("--out", type=Path, default=None, help="default: the package weights")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's own")
    args = parser.parse_args(argv)
    names = groups.get(args.name, [args.name])
    if args.out is not None and len(names) > 1:
        parser.error(f"--out: {args.name!r} writes {len(names)} checkpoints ({', '.join(names)})")
    if args.out is not None and (args.out.is_dir() or not args.out.parent.is_dir()):
        # before training, not after it: a recipe can train for half an hour
        parser.error(f"--out: expected a file path in an existing folder, got {str(args.out)!r}")
    options = {} if args.epochs is None else {"epochs": args.epochs}
    for name in names:
        out = args.out or checkpoints.WEIGHTS_DIR / f"{name}.pt"
        results = recipes[name].make(out, **options)
        print(f"wrote {out}")
        for key, value in results.items():
            print(f"  {key}: {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
