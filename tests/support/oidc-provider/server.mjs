// node oidc-provider as a real RFC 7591/7592 peer for clientreg's interop tests.
//
// Started by tests/support/oidc_provider.py with its settings as JSON in CLIENTREG_OP_CONFIG:
//   { port, mountPath, initialAccessToken, rotateRegistrationAccessToken, secretExpiresIn,
//     allowedScopes, clockTolerance, cimd, cimdFetchAllowLoopback }
//
// Discovery URLs: oidc-provider routes both '/.well-known/openid-configuration' and
// '/.well-known/oauth-authorization-server' relative to where it is mounted, i.e. APPENDED to the
// issuer. With an empty mountPath the issuer has no path, so appended and RFC 8414 "inserted"
// coincide. With a mountPath (e.g. '/op') only the appended forms exist
// ('/op/.well-known/oauth-authorization-server' is not RFC 8414; the RFC 8414 form
// '/.well-known/oauth-authorization-server/op' lies outside the mount, so the host app, here
// this wrapper, answers 404), which is what clientreg's discovery fallback must cope with.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

const cfg = JSON.parse(process.env.CLIENTREG_OP_CONFIG || '{}');
const port = Number(cfg.port);
const mountPath = (cfg.mountPath || '').replace(/\/+$/, '');
const issuer = `http://127.0.0.1:${port}${mountPath}`;
const POLICY = 'clientreg-test';

function isLoopbackHost(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

// oidc-provider protects its outgoing fetches (CIMD documents, sector identifiers, jwks_uri)
// against SSRF by passing an undici dispatcher that kills sockets to special-use addresses,
// loopback included. Tests serve their documents from 127.0.0.1 with a self-signed certificate,
// so for loopback targets only that dispatcher is swapped for one that skips verification.
// The Agent class is reached the same way oidc-provider itself does: Node bundles undici but
// does not export it.
let loopbackDispatcher;
function loopbackAgent() {
  if (loopbackDispatcher === undefined) {
    // eslint-disable-next-line no-unused-expressions
    Response; // touching a fetch global makes Node load undici and set its global dispatcher
    const global = globalThis[Symbol.for('undici.globalDispatcher.2')]
      ?? globalThis[Symbol.for('undici.globalDispatcher.1')];
    const Agent = global?.constructor;
    loopbackDispatcher = Agent ? new Agent({ connect: { rejectUnauthorized: false } }) : null;
  }
  return loopbackDispatcher;
}

async function fetchOverride(url, options) {
  if (cfg.cimdFetchAllowLoopback && isLoopbackHost(new URL(url).hostname)) {
    const agent = loopbackAgent();
    if (agent) {
      options.dispatcher = agent;
    } else {
      delete options.dispatcher;
    }
  }
  return globalThis.fetch(url, options);
}

function epochTime() {
  return Math.floor(Date.now() / 1000);
}

// Registration policies run on POST (from the initial access token) and again on every PUT
// (the registration access token inherits them), just before oidc-provider validates metadata.
async function clientregTestPolicy(ctx, properties) {
  if (Array.isArray(cfg.allowedScopes) && typeof properties.scope === 'string') {
    const allowed = new Set(cfg.allowedScopes);
    const kept = properties.scope.split(' ').filter((s) => s && allowed.has(s));
    if (kept.length) {
      properties.scope = kept.join(' ');
    } else {
      delete properties.scope;
    }
  }
  // Only on registration: a PUT keeps the stored expiry (oidc-provider copies it into the
  // properties first), so an expired secret stays expired, as with a real expiry policy.
  if (
    typeof cfg.secretExpiresIn === 'number'
    && ctx.method === 'POST'
    && properties.client_secret
  ) {
    properties.client_secret_expires_at = epochTime() + cfg.secretExpiresIn;
  }
}

const hasIat = typeof cfg.initialAccessToken === 'string' && cfg.initialAccessToken.length > 0;

const features = {
  // devInteractions answer the authorization endpoint with a built-in login page; handy to see
  // that a CIMD client resolves without a real login app.
  devInteractions: { enabled: true },
  clientCredentials: { enabled: true },
  introspection: { enabled: true },
  revocation: { enabled: true },
  registration: {
    enabled: true,
    // A plain string IAT cannot carry policies ("registration policies are only available in
    // conjunction with adapter-backed initial access tokens"), so the fixed value is stored as
    // an adapter-backed InitialAccessToken whose id is that value (see below).
    initialAccessToken: hasIat,
    ...(hasIat ? { policies: { [POLICY]: clientregTestPolicy } } : {}),
  },
  registrationManagement: {
    enabled: true,
    rotateRegistrationAccessToken: cfg.rotateRegistrationAccessToken !== false,
  },
};
if (cfg.cimd) {
  // Experimental (draft-02 in 9.13); left unacknowledged so that a minor bump that changes the
  // draft only logs a notice instead of refusing to start.
  features.clientIdMetadataDocument = { enabled: true };
}

const configuration = {
  clients: [],
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'family_name', 'given_name', 'updated_at'],
    email: ['email', 'email_verified'],
  },
  features,
  fetch: fetchOverride,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  ...(typeof cfg.clockTolerance === 'number' ? { clockTolerance: cfg.clockTolerance } : {}),
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
};

let provider;
try {
  provider = new Provider(issuer, configuration);
} catch (err) {
  if (cfg.cimd && /Unknown feature configuration: clientIdMetadataDocument/.test(String(err))) {
    console.error('CLIENTREG_CIMD_UNSUPPORTED: this oidc-provider version has no clientIdMetadataDocument');
    process.exit(3);
  }
  throw err;
}

if (hasIat) {
  // The opaque token value is the model's id (jti), so storing the IAT under the caller's fixed
  // string makes exactly that string the accepted Bearer value. No TTL: it never expires.
  await new provider.InitialAccessToken({ jti: cfg.initialAccessToken, policies: [POLICY] }).save();
}

const callback = provider.callback();
const server = createServer((req, res) => {
  if (!mountPath) {
    callback(req, res);
    return;
  }
  // Mounted below a path the way express's app.use(prefix, provider.callback()) does it: strip
  // the prefix and keep req.originalUrl, from which oidc-provider derives the mount path of the
  // URLs it writes into responses.
  if (req.url === mountPath || req.url.startsWith(`${mountPath}/`) || req.url.startsWith(`${mountPath}?`)) {
    req.originalUrl = req.url;
    req.url = req.url.slice(mountPath.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    callback(req, res);
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'not_found', error_description: 'outside the provider mount path' }));
});

server.listen(port, '127.0.0.1', () => {
  console.log(`CLIENTREG_OP_READY ${JSON.stringify({ issuer, port, cimd: !!cfg.cimd })}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  // Keep-alive sockets would hold close() open; the test is done with them.
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
