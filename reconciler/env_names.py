"""Environment variables named in manifests, as Windows and everything else spell them.

Windows reads a variable's name in any case: `apiKey: {env: iterable_api_key}` finds
ITERABLE_API_KEY on a Windows laptop, and the same manifest then fails in Linux or macOS
CI, where the two are different variables. Lookups stay as the platform makes them (a
manifest cannot choose another variable than the one it names); what changes is the
message, and the refusals that guard secrets, which must hold whatever case a name has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from reconciler.errors import variable_name


def same_but_for_case(name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The variables set whose names differ from `name` in case alone (sorted)."""
    env = os.environ if environ is None else environ
    folded = name.upper()  # as Windows folds them
    return sorted(k for k in env if k != name and k.upper() == folded)


def case_hint(name: str, environ: Mapping[str, str] | None = None) -> str:
    """What to add to "`name` is not set" when a variable differing only in case is set
    (names only, never a value); "" when none is."""
    others = same_but_for_case(name, environ)
    if not others:
        return ""
    shown = " and ".join(variable_name(k) for k in others[:2])
    verb = "is" if len(others) == 1 else "are"
    return (
        f" ({shown} {verb} set: outside Windows a name's case makes another variable; "
        "spell it in the manifest as it is set)"
    )
