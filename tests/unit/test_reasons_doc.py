"""docs/reasons.md carries the registry's table as generated: a reason added or reworded in
clientreg/reasons.py without regenerating the page fails here."""

from __future__ import annotations

from pathlib import Path

from clientreg.reasons import markdown_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "reasons.md"


def test_the_reasons_page_is_the_registry_as_generated() -> None:
    text = DOC.read_text()
    table = markdown_table().strip()
    assert table in text, "regenerate docs/reasons.md: python -m clientreg.reasons"
    assert text.count("\n| `") == table.count("\n| `"), "docs/reasons.md lists a reason the registry does not"


def test_the_troubleshooting_section_lists_every_reason_a_condition_can_carry() -> None:
    from clientreg.reasons import OPERATOR_CONDITIONS

    text = (DOC.parent / "kubernetes.md").read_text()
    start, end = "<!-- reasons: operator conditions (generated) -->\n", "<!-- /reasons -->"
    assert start in text and end in text
    block = text.split(start, 1)[1].split(end, 1)[0]
    assert block == markdown_table(**OPERATOR_CONDITIONS), "regenerate the table in docs/kubernetes.md §11"
