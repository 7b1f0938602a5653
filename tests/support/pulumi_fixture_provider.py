"""A tiny dynamic provider for the Pulumi engine smoke test.

It lives in an importable module because dill pickles classes from importable modules by
reference: the provider process (``python -m pulumi.dynamic``) imports this module again, which
``pulumi_env`` makes possible by putting the tests folder on PYTHONPATH. A provider defined in a
test's own scope would be pickled by value along with whatever it happens to capture.

The "remote system" is one JSON file per resource in ``store_dir``, so a test can see from the
outside that create, refresh and delete really ran. The token plays the part of a client secret:
minted by the remote side, returned once, and to be kept only encrypted in Pulumi state.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

SECRET_OUTPUTS = ["token"]


def record_path(store_dir: str, label: str) -> Path:
    return Path(store_dir) / f"{label}.json"


class TokenProvider(ResourceProvider):
    # Holds no state: whatever it held would be pickled into the stack with every resource.

    def create(self, props: dict[str, Any]) -> CreateResult:
        if props.get("fail_with"):
            raise ValueError(props["fail_with"])
        label = str(props["label"])
        record = {"label": label, "greeting": f"hello {label}", "token": secrets.token_urlsafe(24)}
        record_path(props["store_dir"], label).write_text(json.dumps(record))
        return CreateResult(id_=label, outs={"store_dir": props["store_dir"], **record})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # Refresh reads the remote record back, so a refresh that loses the secret flag would show.
        record = json.loads(record_path(props["store_dir"], id_).read_text())
        return ReadResult(id_=id_, outs={"store_dir": props["store_dir"], **record})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("label", "store_dir") if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        record_path(props["store_dir"], id_).unlink(missing_ok=True)


class Token(Resource):
    label: pulumi.Output[str]
    greeting: pulumi.Output[str]
    token: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        label: pulumi.Input[str],
        store_dir: str,
        fail_with: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # The resource class marks the secret itself, so no caller can forget to.
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS)
        super().__init__(
            TokenProvider(),
            name,
            {"label": label, "store_dir": store_dir, "fail_with": fail_with, "greeting": None, "token": None},
            pulumi.ResourceOptions.merge(opts, secret_opts),
        )
