"""Both Pulumi front ends name an argument one way: the core's field paths rewritten into it."""

from __future__ import annotations

from clientreg_pulumi import argnames


def test_core_field_paths_become_the_dynamic_providers_arguments() -> None:
    said = "set spec.issuer to the AS's issuer, or spec.registrationEndpoint; check spec.caBundle"
    assert argnames.in_words(said) == "set issuer to the AS's issuer, or registration_endpoint; check ca_bundle"
    assert argnames.in_words("a token is required (spec.initialAccessToken)") == \
        "a token is required (initial_access_token)"
    assert argnames.in_words("rotation.period must be a duration") == "rotation_period must be a duration"


def test_core_field_paths_become_the_plugins_camel_case_arguments() -> None:
    said = "set spec.issuer or spec.registrationEndpoint; redirectUris is required; rotation.period"
    assert argnames.in_words(said, "camel") == \
        "set issuer or registrationEndpoint; redirectUris is required; rotationPeriod"


def test_names_inside_urls_stay_as_written() -> None:
    assert argnames.in_words("https://x.example.com/redirectUris/1") == "https://x.example.com/redirectUris/1"
    assert argnames.snake_to_camel_words("see https://x.example.com/client_name#x") == \
        "see https://x.example.com/client_name#x"


def test_property_maps_are_renamed_one_level_into_nested_arguments_only() -> None:
    camel = argnames.props_in("camel", {"client_name": "Web", "kubernetes_secret": {"client_id_key": "id",
                                                                                     "labels": {"a_b": "c"}},
                                        "additional_metadata": {"client_name#ja": "ウェブ"}})
    assert camel == {"clientName": "Web", "kubernetesSecret": {"clientIdKey": "id", "labels": {"a_b": "c"}},
                     "additionalMetadata": {"client_name#ja": "ウェブ"}}
    assert argnames.props_in("snake", camel)["kubernetes_secret"]["client_id_key"] == "id"


def test_the_dynamic_providers_messages_use_the_same_table() -> None:
    from clientreg_pulumi import args

    said = "the AS does not accept anonymous registration: set spec.initialAccessToken; spec.caBundle"
    assert args.in_pulumi_words(said) == \
        "the AS does not accept anonymous registration: set initial_access_token; ca_bundle"
