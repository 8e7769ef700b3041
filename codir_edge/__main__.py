"""``python -m codir_edge`` (and ``torchrun -m codir_edge``): the same entry point as ``codir-edge``."""

from codir_edge.cli.app import main

main()
