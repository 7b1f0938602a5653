"""Pulumi dynamic provider for clientreg: OAuth clients registered and kept in shape through OAuth
Dynamic Client Registration (RFC 7591/7592), on the same engine as the CLI and the operator.

    from clientreg_pulumi import OAuthClient

    web = OAuthClient("web", issuer="https://auth.example.com", client_name="Web",
                      redirect_uris=["https://app.example.com/cb"], initial_access_token=iat)
    pulumi.export("client_id", web.client_id)
    pulumi.export("client_secret", web.client_secret)  # a secret
"""

from .provider import OAuthClientError, OAuthClientProvider
from .resource import KeyPairArgs, KubernetesSecretArgs, OAuthClient

__all__ = ["KeyPairArgs", "KubernetesSecretArgs", "OAuthClient", "OAuthClientError", "OAuthClientProvider"]
