"""The client cuts its API key out of server text in every spelling an answer can use
(issue 15.7); the HTTP paths are tested against the emulator in test_secrets."""

from __future__ import annotations

import json

from reconciler.iterable import IterableClient
from reconciler.iterable.client import REDACTED

KEY = "sk-Fake/Key+7f3a9c2e51d0"


def test_every_spelling_of_the_key_is_cut_out_of_server_text():
    with IterableClient("http://127.0.0.1:9", KEY) as client:
        raw = json.dumps({"msg": f"bad key {KEY}"}).replace("/", "\\/")  # JSON may escape /
        escaped = '{"msg": "key \\u0073k-Fake\\/Key+7f3a9c2e51d0"}'  # \\u escapes
        url = "GET /api?key=sk-Fake%2FKey%2B7f3a9c2e51d0"
        for text in (raw, url, f"plain {KEY} text"):
            assert "7f3a9c2e51d0" not in client._scrub(text), text
        assert client._scrub(json.loads(escaped)) == {"msg": f"key {REDACTED}"}
        assert client._scrub(["a", ("b", KEY)]) == ["a", ("b", REDACTED)]


def test_the_project_id_names_the_project_without_the_key():
    ids = []
    for base_url in ("https://api.iterable.com/", "https://api.iterable.com", "https://x.test"):
        with IterableClient(base_url, KEY) as client:
            ids.append(client.project_id)
    assert ids[0] == ids[1] != ids[2]
    assert KEY not in ids[0] and len(ids[0]) == 32
