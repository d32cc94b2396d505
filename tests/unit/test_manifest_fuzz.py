"""Whatever bytes sit in a manifest file, load_manifests answers with ManifestError or a result."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest import Manifests, load_manifests

# Fragments that steer random input towards the loader's interesting paths: real keys
# and values, YAML structure, anchors and tags, and characters YAML refuses.
FRAGMENTS = [
    "apiVersion: reconciler/v1\n",
    "kind: Destination\n",
    "kind: Audience\n",
    "kind: TraitMapping\n",
    "metadata: {name: a}\n",
    "metadata:\n  name: b\n",
    "spec:\n",
    "  region: us\n",
    "  region: sandbox\n",
    "  projectType: email\n",
    "  apiKey: {env: K}\n",
    "  apiKey: sk_live_x\n",
    "  destination: a\n",
    "  members:\n",
    "    inline:\n",
    "      - x@example.com\n",
    "      - {userId: 1}\n",
    "    csv: f.csv\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!binary ",
    "!x ",
    "? ",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "\t",
    "  ",
    "\n",
    "'",
    '"',
    "# ",
    "|\n",
    "2024-13-45",
    "0x1F",
    "~",
    "yes",
    "1.5e3",
    "\x07",
    "\ufeff",
    "é",
]

yaml_ish = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=40).map("".join)
file_contents = st.one_of(
    yaml_ish.map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.text().map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(file_contents, min_size=1, max_size=3))
def test_any_input_gives_manifests_or_manifest_error(contents: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        for index, content in enumerate(contents):
            Path(directory, f"m{index}.yaml").write_bytes(content)
        try:
            result = load_manifests(Path(directory))
        except ManifestError as error:
            assert error.problems
        else:
            assert isinstance(result, Manifests)
