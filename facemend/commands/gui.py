"""`facemend gui [FILES...]`: the desktop app (also what plain `facemend` opens)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gui",
        help="open the desktop app (the default without a command)",
        description="Open the FaceMend window: drop or open a face photo, paint over the damage, "
        "repair, compare and save. Several FILES are listed in a filmstrip.",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="photos (or folders of photos) to open")
    p.set_defaults(func=run, files=[])


def run(args) -> int:
    from gui.app import main

    return main(list(args.files or []))
