"""key_refusal: a 401's key type is shown only when it is a plain word, and the key's
identifier (its last characters) never."""

from __future__ import annotations

import pytest

from reconciler.iterable.key_refusal import key_type, refused_key

IDENTIFIER = "ba68d5d6"


def answer(named: object) -> dict[str, object]:
    return {
        "msg": "Disabled API key or insufficient privileges",
        "code": "BadApiKey",
        "params": {"endpoint": "/api/lists", "apiKeyIdentifier": IDENTIFIER, "apiKeyType": named},
    }


def test_a_named_type_is_said_and_a_server_side_key_asked_for() -> None:
    message = refused_key("GET /api/lists", "BadApiKey", answer("Mobile"), ", and its region")
    assert "a Mobile key" in message and "server-side" in message
    assert "region" not in message and IDENTIFIER not in message


@pytest.mark.parametrize(
    "named", [None, 7, "", "Mobile\nerror: forged", "[api key]", "x" * 41, {"a": 1}]
)
def test_anything_but_a_plain_word_is_not_a_type(named: object) -> None:
    assert key_type(answer(named)) is None
    message = refused_key("GET /api/lists", None, answer(named), ", and its region")
    assert message.startswith("GET /api/lists: Iterable rejected the API key (401 BadApiKey)")
    assert message.endswith(", and its region")


@pytest.mark.parametrize("body", [None, "text", [], {"params": None}, {"params": []}])
def test_an_answer_of_another_shape_has_no_type(body: object) -> None:
    assert key_type(body) is None
