"""Two OAuth clients and a lookup, through the clientreg provider plugin's Python SDK."""

import pulumi
import pulumi_clientreg as clientreg

config = pulumi.Config()

# The server comes from the provider's configuration (clientreg:issuer, clientreg:initialAccessToken).
web = clientreg.OAuthClient("web", client_name="Web", redirect_uris=["https://app.example.com/cb"])
worker = clientreg.OAuthClient(
    "worker", client_name="Worker", grant_types=["client_credentials"],
    # A new value rotates the worker's credentials; the old client keeps working for an hour.
    rotation_trigger=config.get("rotation") or "1", grace_period="1h")

# What the AS holds, read back through RFC 7592.
registered = clientreg.get_client_output(registration_client_uri=web.registration_client_uri,
                                         registration_access_token=web.registration_access_token)

pulumi.export("webClientId", web.client_id)
pulumi.export("webClientSecret", web.client_secret)  # a secret: encrypted in the state
pulumi.export("webStatus", web.status)
pulumi.export("webRegisteredName", registered.metadata.apply(lambda metadata: metadata["client_name"]))
pulumi.export("workerClientId", worker.client_id)
pulumi.export("workerClientSecret", worker.client_secret)
pulumi.export("workerRetiringClientIds", worker.retiring_client_ids)
