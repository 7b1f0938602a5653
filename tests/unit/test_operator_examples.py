"""The Kubernetes examples and the chart's values are documents users copy: they must be valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from clientreg_operator.selectors import LabelSelector

from clientreg.spec import parse_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "kubernetes"


def _documents() -> list[tuple[str, dict[str, object]]]:
    out = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("clientreg.dev/"):
                out.append((f"{path.relative_to(EXAMPLES)}:{doc['metadata']['name']}", doc))
    return out


@pytest.mark.parametrize("doc", [d for _, d in _documents()], ids=[n for n, _ in _documents()])
def test_example_documents_are_valid(doc: dict[str, object]) -> None:
    parse_document(doc)


def test_every_tenant_has_a_kustomization() -> None:
    tenants = [p for p in (EXAMPLES / "tenants").iterdir() if p.name.startswith("tenant-")]
    assert tenants
    for tenant in tenants:
        kustomization = yaml.safe_load((tenant / "kustomization.yaml").read_text())
        assert kustomization["namespace"] == tenant.name
        assert "../base" in kustomization["resources"]


def test_values_schema_accepts_the_default_values() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    chart = ROOT / "charts" / "clientreg"
    schema = json.loads((chart / "values.schema.json").read_text())
    jsonschema.validate(yaml.safe_load((chart / "values.yaml").read_text()), schema)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("", {}, True),
    ("shard=a", {"shard": "a"}, True),
    ("shard=a", {"shard": "b"}, False),
    ("shard!=a", {}, True),
    ("shard in (a, b),tier", {"shard": "b", "tier": "x"}, True),
    ("shard notin (a,b)", {"shard": "a"}, False),
    ("!legacy", {"legacy": "1"}, False),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected
