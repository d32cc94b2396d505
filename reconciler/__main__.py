"""`python3 -m reconciler ...`: the same command line as the `reconciler` script, for a
checkout that is not installed, or a venv whose scripts directory is not on PATH."""

from reconciler.cli import main

main()
