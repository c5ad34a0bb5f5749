"""Options shared by the commands that load a model."""

from __future__ import annotations

import argparse


def add_mmap_arguments(p: argparse.ArgumentParser) -> None:
    """--mmap / --no-mmap, as llama.cpp's; sets args.use_mmap to True, False or None (automatic)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mmap", dest="use_mmap", action="store_const", const=True, default=None,
                   help="read the weights through the file mapping (the default where a copy would not pay "
                        "or not fit)")
    g.add_argument("--no-mmap", dest="use_mmap", action="store_const", const=False,
                   help="copy the weights into memory (huge pages on Linux: faster decode); the default "
                        "on Linux when they fit")
