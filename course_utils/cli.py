"""The ``course`` command: ``build``, ``grade``, ``autograder``, ``release``, ``bench`` and
``pretrain``, each run by its own module.

course build [--check]            regenerate notebooks and exercises (or report stale ones)
course grade NB [NB ...]          grade your own notebooks: question | points | earned | hint
course grade FOLDER --source DIR [--csv F --jobs N]   grade a class, each submission sandboxed
course autograder exercises/NN_topic.ipynb -o autograder.zip   a Gradescope autograder
course release DIR                the student-facing course: no solutions, no hidden tests
course bench NAME [--seeds N --steps N --methods A,B] [--save F]  run a benchmark, print its table
course pretrain NAME [--out F --epochs N]   train a shipped checkpoint (--help lists them)

Each command has its own parser (``course COMMAND --help``) in the module that runs it,
imported only when it runs: ``course --help`` starts without torch, jupytext or a topic.
"""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "build": "regenerate notebooks and exercises from the scripts",
    "grade": "grade notebooks, or folders of submissions: question | points | earned | hint",
    "autograder": "write a Gradescope autograder (zip) for one exercise set",
    "release": "write the student-facing course to a folder: no solutions, no hidden tests",
    "bench": "run a benchmark and print its table (course bench --help lists them)",
    "pretrain": "train a shipped checkpoint (course pretrain --help lists them)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv else (None, [])
    if command == "build":
        from course_utils.build import main as run
    elif command == "grade":
        from course_utils.grading.command import main as run
    elif command == "autograder":
        from course_utils.grading.autograder import main as run
    elif command == "release":
        from course_utils.grading.release import main as run
    elif command == "bench":
        from course_utils.bench import main as run
    elif command == "pretrain":
        from course_utils.pretrain import main as run
    else:  # no command, --help, or an unknown one: the overview (argparse exits)
        parser = argparse.ArgumentParser(
            prog="course", description="Deep generative models course tools"
        )
        sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        for name, text in COMMANDS.items():
            sub.add_parser(name, help=text, add_help=False)
        parser.parse_args(argv)
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
