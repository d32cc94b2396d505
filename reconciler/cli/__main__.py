"""`python -m reconciler.cli`: the same entry point as the `reconciler` script."""

from reconciler.cli import main

main()
