"""The command line: ``python -m handssca COMMAND ...``.

Each command lives in the module that owns its work; that module defines
``add_arguments(parser)`` and ``run(args) -> int``, and may define ``INTERRUPTED``: what the user
can do after Ctrl-C (e.g. how the work resumes). Modules are imported only when their command is
run, so ``python -m handssca --help`` is fast.

A package error (:class:`handssca.errors.HandsscaError`) the command does not handle itself is
printed as one line ``error: <message>`` with exit status 2; Ctrl-C prints one line and exits
with 130 (128 + SIGINT, the shell's convention) instead of a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import HandsscaError

#: the exit status after Ctrl-C: 128 + SIGINT, as a shell reports a process killed by it
EXIT_INTERRUPTED = 130

COMMANDS = {
    # name: (module, one-line help)
    "info": ("handssca.models.info", "print the per-part parameter table of the network"),
    "bench": ("handssca.bench", "benchmarks that print (and save) measured figures"),
    "data": ("handssca.data.cli", "synthetic data in the datasets' formats"),
    "train": ("handssca.engine.cli_train", "train a model"),
    "evaluate": ("handssca.engine.cli_evaluate", "evaluate a checkpoint with the official protocol"),
    "predict": ("handssca.engine.cli_predict", "reconstruct hands from images"),
    "import": ("handssca.engine.cli_import", "released weights (the authors' HandS3C) as a run folder"),
    "plan": ("handssca.engine.plan", "what a profile's book costs: images, runs, GPU hours"),
    "book": ("handssca.book", "execute the chapters and build the book"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m handssca", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if (not argv or argv[0] in ("-h", "--help")) else 2
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    cmd = argparse.ArgumentParser(prog=f"python -m handssca {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd)
    args = cmd.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        # one line, not a traceback: what was interrupted and how the work goes on
        hint = getattr(module, "INTERRUPTED", None)
        print(f"interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except HandsscaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
