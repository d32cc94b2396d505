"""Carrying out a plan: the executor, its journal and run record, the apply lock and Ctrl-C."""
