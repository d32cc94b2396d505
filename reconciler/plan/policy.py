"""The safety policy's defaults, defined once: the manifest schema documents them, the
planner applies them, and a plan made without a manifest (tests, saved plans) gets them."""

from __future__ import annotations

# maxRemovalPercent when neither the audience nor its destination sets one. Compared with
# ">": removing exactly this share of a list passes.
DEFAULT_MAX_REMOVAL_PERCENT = 10.0
