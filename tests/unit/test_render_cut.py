"""render/cut.py: markdown cut to a size limit leaves no code block or <details> open."""

from __future__ import annotations

from reconciler.render.cut import cut_markdown

NOTE = "(cut: see the full plan)"


def test_text_that_fits_is_returned_as_it_is() -> None:
    text = "<details>\n```\nunclosed"
    assert cut_markdown(text, len(text), NOTE) is text


def test_a_cut_inside_a_code_block_in_details_closes_both_then_notes() -> None:
    lines = [f"+ member-{i:03d}" for i in range(200)]
    text = "# Plan\n<details>\n<summary>adds</summary>\n\n```diff\n" + "\n".join(lines) + "\n```\n"
    out = cut_markdown(text, 500, NOTE)
    assert len(out) <= 500
    assert out.endswith("\n```\n</details>\n\n" + NOTE)
    kept = out[: -len("\n```\n</details>\n\n" + NOTE)]
    # Cut at a line end: every kept line is a whole line of the text.
    assert text.startswith(kept + "\n")
    assert kept.splitlines()[-1].startswith("+ member-")


def test_only_a_fence_or_tag_starting_a_line_opens_a_block() -> None:
    text = "list `a```b` and <details> quoted\n" + "x" * 100 + "\n" + "y" * 100
    out = cut_markdown(text, 150, NOTE)
    assert out == "list `a```b` and <details> quoted\n\n" + NOTE


def test_a_closed_block_is_not_closed_twice() -> None:
    text = "```\ncode\n```\n<details>\nbody\n</details>\n" + "z" * 300
    out = cut_markdown(text, 100, NOTE)
    assert out == "```\ncode\n```\n<details>\nbody\n</details>\n\n" + NOTE


def test_a_limit_shorter_than_the_note_gives_the_note_cut() -> None:
    assert cut_markdown("a\n" * 50, 10, NOTE) == NOTE[:10]


def test_a_block_of_lines_shorter_than_its_closing_keeps_what_fits() -> None:
    # Closing a <details> and a fence takes 15 characters, more than each of these lines:
    # the cut used to drop them one by one (a pass each, seconds at 30,000) back to the
    # block's start, posting an empty block.
    rows = [f"+ m{i}" for i in range(30_000)]
    text = "<details>\n\n```\n" + "\n".join(rows) + "\n```\n</details>\n"
    out = cut_markdown(text, 60_000, NOTE)
    closing = "\n```\n</details>\n\n" + NOTE
    assert out.endswith(closing)
    kept = out[: -len(closing)]
    assert text.startswith(kept + "\n")
    # All but a closing's length of the room is used: at most one short line more.
    assert len(out) > 60_000 - len(rows[-1]) - 2
    assert len(out) <= 60_000
