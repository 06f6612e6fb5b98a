"""`facemend` command line.

Each subcommand lives in `facemend/commands/<name>.py` with `register(sub)`;
this module only assembles them and turns errors into the project's exit
codes (0 ok, 2 usage, 3 bad input, 4 backend/cloud unavailable, 5 cancelled).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from core.errors import FaceMendError
from facemend import __version__

# Order is the order in `--help`.
COMMANDS = ("repair", "faces", "narrate", "models", "train", "serve", "gui")

EXIT_OK, EXIT_USAGE, EXIT_BAD_INPUT, EXIT_UNAVAILABLE, EXIT_CANCELLED = 0, 2, 3, 4, 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facemend",
        description="Repair damaged face photos with DCGAN semantic inpainting. "
        "Without a command, opens the desktop app.",
        epilog="Exit codes: 0 ok, 2 usage, 3 bad input, 4 backend/cloud unavailable, 5 cancelled.",
    )
    parser.add_argument("--version", action="version", version=f"facemend {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="check this installation offline (offscreen Qt, model, face detector, a small repair); exit 0 if it works")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"facemend.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `facemend photo.jpg` (a file manager's "Open with") opens the app on it.
    if argv and "gui" in COMMANDS and argv[0] not in COMMANDS and not argv[0].startswith("-") and Path(argv[0]).exists():
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        from facemend.selftest import run_self_test

        return run_self_test()
    if args.command is None:
        if "gui" in COMMANDS:
            args = parser.parse_args(["gui"])
        else:
            parser.print_help()
            return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except FaceMendError as exc:
        print(f"facemend: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facemend: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
