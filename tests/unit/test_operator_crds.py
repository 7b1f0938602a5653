"""The CRDs: generated from the spec models, structural for the API server, and in the chart verbatim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from clientreg_operator import crds

CHART_CRDS = Path(__file__).resolve().parents[2] / "charts" / "clientreg" / "crds"


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out.extend(_walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}[{i}]"))
    return out


def test_chart_crds_are_current() -> None:
    generated = crds.files()
    on_disk = {p.name: p.read_text() for p in CHART_CRDS.glob("*.yaml")}
    assert set(on_disk) == set(generated), "CRD files differ: run `clientreg-operator crds --output-dir " \
        "charts/clientreg/crds`"
    for name, text in generated.items():
        assert on_disk[name] == text, f"{name} is stale: run `clientreg-operator crds --output-dir " \
            "charts/clientreg/crds`"


@pytest.mark.parametrize("crd", crds.crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_schemas_are_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node and "anyOf" not in node and "oneOf" not in node and "allOf" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node:
                assert isinstance(node[key], bool), f"{path}.{key} must be a boolean in OpenAPI v3.0"
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" not in node, path
        if ("properties" in node and path.endswith(("spec", "status"))) or path.endswith("openAPIV3Schema"):
            assert node.get("type") == "object", path


def test_kubectl_explain_has_text_for_every_spec_field() -> None:
    client = next(c for c in crds.crds() if c["spec"]["names"]["kind"] == "OAuthClient")
    spec = client["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    undocumented = [name for name, field in spec["properties"].items() if not field.get("description")]
    assert undocumented == []


def test_printer_columns_tell_the_state_at_a_glance() -> None:
    client = next(c for c in crds.crds() if c["spec"]["names"]["kind"] == "OAuthClient")
    version = client["spec"]["versions"][0]
    names = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert names == ["Ready", "Reason", "Client ID", "Server", "Expires", "Age"]
    assert version["subresources"] == {"status": {}}
    assert "oac" in client["spec"]["names"]["shortNames"]


def test_scopes_and_names() -> None:
    by_kind = {c["spec"]["names"]["kind"]: c for c in crds.crds()}
    assert by_kind["ClusterAuthorizationServer"]["spec"]["scope"] == "Cluster"
    assert by_kind["AuthorizationServer"]["spec"]["scope"] == "Namespaced"
    assert by_kind["OAuthClient"]["metadata"]["name"] == "oauthclients.clientreg.dev"


def test_rendered_yaml_round_trips() -> None:
    for text in crds.files().values():
        assert yaml.safe_load(text)["kind"] == "CustomResourceDefinition"
