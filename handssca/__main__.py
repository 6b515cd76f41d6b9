"""The command line: ``python -m handssca COMMAND ...``.

Each command lives in the module that owns its work; that module defines
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
command is run, so ``python -m handssca --help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    # name: (module, one-line help)
    "info": ("handssca.models.info", "print the per-part parameter table of the network"),
    "bench": ("handssca.bench", "benchmarks that print (and save) measured figures"),
    "data": ("handssca.data.cli", "synthetic data in the datasets' formats"),
    "train": ("handssca.engine.cli_train", "train a model"),
    "evaluate": ("handssca.engine.cli_evaluate", "evaluate a checkpoint with the official protocol"),
    "predict": ("handssca.engine.cli_predict", "reconstruct hands from images"),
    "import": ("handssca.engine.cli_import", "released weights (the authors' HandS3C) as a run folder"),
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
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
