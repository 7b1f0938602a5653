"""schema.json is the generator's output, never edited by hand, and says what the provider does."""

from __future__ import annotations

import json

from clientreg_pulumi import args
from clientreg_pulumi.argnames import camel
from clientreg_pulumi.plugin import schema


def test_committed_schema_is_what_the_generator_writes() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.render(), (
        "schema.json is stale: python -m clientreg_pulumi.plugin.schema > provider/clientreg_pulumi/plugin/schema.json")


def test_every_argument_of_the_dynamic_provider_is_a_camel_case_input() -> None:
    inputs = schema.schema()["resources"][schema.RESOURCE]["inputProperties"]
    for name in (*args.SPEC_ARGS, *args.ROTATION_ARGS, *args.SERVER_ARGS, *args.ADOPT_ARGS, *args.SECRET_ARGS,
                 args.ROTATION_TRIGGER, args.KUBERNETES_SECRET):
        assert camel(name) in inputs, name
    assert inputs["redirectUris"] == {"type": "array", "items": {"type": "string"}}
    assert inputs["defaultMaxAge"]["type"] == "integer" and inputs["requireAuthTime"]["type"] == "boolean"
    assert inputs["kubernetesSecret"]["$ref"].endswith("KubernetesSecret")


def test_credentials_are_secret_in_every_language() -> None:
    generated = schema.schema()
    resource = generated["resources"][schema.RESOURCE]
    for output in ("clientSecret", "registrationAccessToken", "privateKey", "record"):
        assert resource["properties"][output].get("secret") is True, output
    for given in ("initialAccessToken", "adoptRegistrationAccessToken", "softwareStatement"):
        assert resource["inputProperties"][given].get("secret") is True, given
    assert generated["config"]["variables"]["initialAccessToken"]["secret"] is True
    assert generated["config"]["variables"]["importRegistrationAccessToken"]["secret"] is True
    get_client = generated["functions"][schema.GET_CLIENT]
    assert get_client["inputs"]["properties"]["registrationAccessToken"]["secret"] is True
    assert get_client["outputs"]["properties"]["clientSecret"]["secret"] is True


def test_schema_is_valid_json_with_the_package_name() -> None:
    loaded = json.loads(schema.render())
    assert loaded["name"] == "clientreg" and set(loaded["resources"]) == {"clientreg:index:OAuthClient"}
