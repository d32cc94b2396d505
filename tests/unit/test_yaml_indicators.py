"""manifest/yaml_indicators.py on its own: where a value sits (below inline members or
not) and the messages for bare `*`, `!` and `&` values, which never show a member's
identity in full."""

from __future__ import annotations

from reconciler.manifest.yaml_indicators import (
    alias_message,
    in_inline_members,
    in_secret,
    tag_message,
)
from reconciler.render.masking import reveal

TEXT = """\
apiVersion: reconciler/v1
kind: Audience
metadata: {name: vip}
spec:
  destination: prod
  members:
    inline:
      - user-secret-1
      - {userId: user-secret-2}
  listName: "*not-a-member"
---
spec:
  members:
    inline: [user-secret-3]
"""


def _at(text: str, needle: str) -> tuple[int, int]:
    for line, written in enumerate(text.splitlines()):
        if needle in written:
            return line, written.index(needle)
    raise AssertionError(needle)


def test_values_below_inline_members_are_told_from_others_in_every_document() -> None:
    assert in_inline_members(TEXT, *_at(TEXT, "user-secret-1"))
    assert in_inline_members(TEXT, *_at(TEXT, "user-secret-2"))
    assert in_inline_members(TEXT, *_at(TEXT, "user-secret-3"))
    assert not in_inline_members(TEXT, *_at(TEXT, '"*not-a-member"'))
    assert not in_inline_members(TEXT, *_at(TEXT, "prod"))


def test_a_value_past_where_the_file_cannot_be_parsed_counts_as_a_member() -> None:
    broken = "spec:\n  listName: ok\n  members: [unclosed\nmore: *alias\n"
    # The side on which nothing is shown: a member's value is masked.
    assert in_inline_members(broken, *_at(broken, "*alias"))
    assert not in_inline_members(broken, *_at(broken, "ok"))


def test_messages_mask_a_members_name_and_say_to_quote_it() -> None:
    alias = reveal(alias_message("user-secret"), show_members=False)
    assert "user-secret" not in alias and "undefined alias" in alias and "in quotes" in alias
    assert "user-secret" in reveal(alias_message("user-secret"), show_members=True)

    tag = reveal(tag_message("!user-secret", inline=True, scalar=True), show_members=False)
    assert "user-secret" not in tag and tag.startswith("tag !") and "put it in quotes" in tag
    # Outside inline members the tag is no member's, and YAML's own `!!` tags are no text.
    assert tag_message("!custom", inline=False, scalar=True).startswith("tag !custom is")
    assert tag_message("!!binary", inline=True, scalar=True) == (
        "tag !!binary is not supported here"
    )
    assert "quotes" not in tag_message("!seq", inline=True, scalar=False)


def test_values_where_the_api_key_goes_are_told_from_the_keys_around_them() -> None:
    text = (
        "spec:\n  apiKey: *one\n  region: *two\n---\nspec:\n  apiKey:\n"
        "    env: *three\n  projectType: *four\n"
    )
    assert in_secret(text, *_at(text, "*one"))
    assert in_secret(text, *_at(text, "*three"))
    assert not in_secret(text, *_at(text, "*two"))
    assert not in_secret(text, *_at(text, "*four"))
