// OAuth clients from a TypeScript program, through the clientreg provider plugin.
//
//   pulumi package add ../../provider/clientreg_pulumi/plugin/schema.json   # the SDK, into sdks/clientreg
//   pulumi stack init dev
//   pulumi config set clientreg:issuer http://127.0.0.1:8080
//   pulumi config set --secret clientreg:initialAccessToken <token>
//   pulumi up
import * as pulumi from "@pulumi/pulumi";
import * as clientreg from "@clientreg/pulumi";

const config = new pulumi.Config();

// The server comes from the provider's configuration (clientreg:issuer, clientreg:initialAccessToken).
const web = new clientreg.OAuthClient("web", {
    clientName: "Web",
    redirectUris: ["https://app.example.com/cb"],
});

const worker = new clientreg.OAuthClient("worker", {
    clientName: "Worker",
    grantTypes: ["client_credentials"],
    // A new value rotates the worker's credentials; the old client keeps working for an hour.
    rotationTrigger: config.get("rotation") ?? "1",
    gracePeriod: "1h",
});

// What the AS holds, read back through RFC 7592. (A registered client always has these two; a Client ID
// Metadata Document client, registration: "cimd", has neither, hence the optional types.)
const registered = clientreg.getClientOutput({
    registrationClientUri: web.registrationClientUri.apply(uri => uri!),
    registrationAccessToken: web.registrationAccessToken.apply(token => token!),
});

export const webClientId = web.clientId;
export const webClientSecret = web.clientSecret; // a secret: encrypted in the state
export const webStatus = web.status;
export const webRegisteredName = registered.metadata.apply(m => m["client_name"]);
export const workerClientId = worker.clientId;
export const workerClientSecret = worker.clientSecret;
export const workerRetiringClientIds = worker.retiringClientIds;
