"""``python -m codir_edge.cli``: the same entry point as the ``codir-edge`` script."""

from codir_edge.cli.app import main

main()
