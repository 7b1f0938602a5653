"""The Pulumi resource's arguments: validation in the user's vocabulary, and comparison as the AS compares."""

from __future__ import annotations

from typing import Any

import pytest
from clientreg_pulumi import args
from hypothesis import given
from hypothesis import strategies as st

from clientreg.spec import WIRE_NAMES

BASE: dict[str, Any] = {"issuer": "https://auth.example.com", "client_name": "Web",
                        "redirect_uris": ["https://app.example.com/cb"]}


def problems_of(**overrides: Any) -> dict[str, str]:
    return dict(args.problems({**BASE, **overrides}))


def test_valid_arguments_have_no_problems() -> None:
    assert args.problems(BASE) == []


def test_every_typed_metadata_field_is_an_argument() -> None:
    from clientreg_pulumi.resource import OAuthClient

    params = set(OAuthClient.__init__.__code__.co_varnames)
    assert {args.wire_name(a) for a in args.METADATA_ARGS} == set(WIRE_NAMES.values())
    missing = set(args.ECHOED_ARGS + args.ADOPT_ARGS + args.SECRET_ARGS) - params
    assert not missing, f"arguments the resource class does not accept: {missing}"


@pytest.mark.parametrize(("overrides", "prop", "words"), [
    ({"redirect_uris": ["http://app.example.com/cb"]}, "redirect_uris", "redirect_uris[0]: 'http://app"),
    ({"grant_types": ["magic"]}, "grant_types", "grant_types[0]: Input should be 'authorization_code'"),
    ({"default_max_age": -1}, "default_max_age", "greater than or equal"),
    ({"rotation_period": "soon"}, "rotation_period", "not a duration"),
    ({"rotate_before": "2 days"}, "rotate_before", "not a duration"),
    ({"timeout_seconds": 0}, "timeout_seconds", "greater than"),
    ({"issuer": "ftp://auth.example.com"}, "issuer", "https"),
    ({"deletion_policy": "Keep"}, "deletion_policy", "Delete"),
])
def test_a_bad_value_is_reported_at_its_argument(overrides: dict[str, Any], prop: str, words: str) -> None:
    found = problems_of(**overrides)
    assert prop in found, found
    assert words in found[prop]


def test_rules_across_fields_name_an_argument_in_snake_case() -> None:
    found = problems_of(redirect_uris=None)
    assert "redirect_uris" in found
    assert "redirectUris" not in found["redirect_uris"] and "grant_types" in found["redirect_uris"]


def test_a_server_is_required() -> None:
    found = dict(args.problems({k: v for k, v in BASE.items() if k != "issuer"}))
    (prop, rule), = found.items()
    assert prop == "registration_endpoint" and "issuer" in rule and "registration_endpoint" in rule


def test_unknown_values_are_not_judged_before_they_are_known() -> None:
    # In preview an input from another resource is unknown: neither its own rules nor rules across
    # fields may fail on it; `up` checks again with the value.
    assert args.problems({**BASE, "redirect_uris": args.UNKNOWN}) == []
    assert args.problems({**BASE, "redirect_uris": [args.UNKNOWN]}) == []
    assert dict(args.problems({**BASE, "redirect_uris": args.UNKNOWN, "default_max_age": -2})).keys() == {
        "default_max_age"}


def test_adoption_needs_all_three_values() -> None:
    found = problems_of(adopt_client_id="abc")
    assert "adopt_registration_access_token" in found or "adopt_registration_client_uri" in found
    assert problems_of(adopt_client_id="abc", adopt_registration_client_uri="https://auth.example.com/r/abc",
                       adopt_registration_access_token="rat") == {}


def test_the_desired_state_matches_the_core_spec() -> None:
    want = args.desired({**BASE, "scope": "openid profile", "additional_metadata": {"client_name#ja": "ウェブ"},
                         "rotate_before": "72h", "grace_period": "5m", "rotation_trigger": {"n": 2}})
    assert want.metadata == {"client_name": "Web", "redirect_uris": ["https://app.example.com/cb"],
                             "scope": "openid profile", "client_name#ja": "ウェブ"}
    assert want.rotation is not None and want.rotation.rotate_before == "72h"
    assert want.rotation.grace_period == "5m"
    assert want.rotation_request == '{"n":2}'


@given(st.permutations(["https://a.example.com/cb", "https://b.example.com/cb", "https://c.example.com/cb"]))
def test_order_of_set_valued_arguments_is_not_a_change(uris: list[str]) -> None:
    old = {**BASE, "redirect_uris": ["https://a.example.com/cb", "https://b.example.com/cb",
                                     "https://c.example.com/cb"], "scope": "openid email profile"}
    new = {**old, "redirect_uris": uris, "scope": "profile openid email"}
    assert args.changed_args(old, new, args.ECHOED_ARGS) == []


def test_changes_are_found_per_argument() -> None:
    old = {**BASE, "scope": "openid"}
    assert args.changed_args(old, {**old, "client_name": "Other"}, args.ECHOED_ARGS) == ["client_name"]
    assert args.changed_args(old, {**old, "scope": "openid email"}, args.ECHOED_ARGS) == ["scope"]
    assert args.changed_args(old, {**old, "client_name": args.UNKNOWN}, args.ECHOED_ARGS) == ["client_name"]
    # An unset token_endpoint means "discover it": the discovered value in the outputs is no change.
    assert args.changed_args({**old, "token_endpoint": "https://auth.example.com/t"}, old, args.ECHOED_ARGS) == []
    assert args.changed_args(old, {**old, "token_endpoint": "https://x.example.com/t"}, args.ECHOED_ARGS) == [
        "token_endpoint"]


def test_core_field_names_are_rewritten_for_pulumi_users() -> None:
    assert args.in_pulumi_words("set redirectUris or grantTypes: [client_credentials]") == \
        "set redirect_uris or grant_types: [client_credentials]"
    # Whole words only: a URL path that happens to contain a field name stays as it is.
    assert args.in_pulumi_words("https://x.example.com/clientName/1") == "https://x.example.com/clientName/1"
