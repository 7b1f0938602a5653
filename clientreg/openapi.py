"""CRD schemas from the pydantic models: the structural OpenAPI v3 subset the Kubernetes API server accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema (as CRDs need: no $ref, no anyOf-null) for ``model``."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                target = resolve(defs[node["$ref"].split("/")[-1]])
                extra = {k: v for k, v in node.items() if k != "$ref"}
                return {**target, **resolve(extra)}
            if "anyOf" in node:
                options = [o for o in node["anyOf"] if o.get("type") != "null"]
                rest = {k: resolve(v) for k, v in node.items() if k != "anyOf"}
                if len(options) == 1:
                    merged = {**resolve(options[0]), **rest}
                    merged.pop("default", None) if rest.get("default") is None else None
                    return merged
                return {**rest, "x-kubernetes-preserve-unknown-fields": True}
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k in ("title",) or (k == "default" and v is None):
                    continue
                if k == "const":
                    out["enum"] = [v]
                    continue
                out[k] = resolve(v)
            if out.get("type") == "object" and "properties" not in out and "additionalProperties" in out \
                    and out["additionalProperties"] is True:
                out.pop("additionalProperties")
                out["x-kubernetes-preserve-unknown-fields"] = True
            if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
                out["x-kubernetes-preserve-unknown-fields"] = True
            return out
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
