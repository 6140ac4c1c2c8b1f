// A real OpenID provider for vft's sign-in tests: oidc-provider (OpenID Certified), so the tests
// exercise vft against the protocol as a certified implementation speaks it, not against a
// stand-in of our own. Test-only; never run this in front of real users.
//
//   node provider.mjs --port 4000 --client-id vft --client-secret s3cret \
//     --redirect-uri http://127.0.0.1:8080/api/auth/oidc/callback \
//     [--accounts accounts.json] [--claims-in-id-token]
//
// Each option may come from the environment instead (OIDC_PORT, OIDC_CLIENT_ID,
// OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI, OIDC_ACCOUNTS, OIDC_CLAIMS_IN_ID_TOKEN=1).
//
// Issuer: http://127.0.0.1:<port>. Prints "ready <issuer>" on stdout once it listens. Sign-in
// uses oidc-provider's development interactions: a login form where the account's `sub` is
// typed (the password field is required by the form but ignored), then a consent form.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

// oidc-provider 9 needs crypto.hash (Node.js 20.12+); on an older Node it would fail only in
// the middle of a sign-in, so say so up front (hence the import after this check).
if (typeof (await import('node:crypto')).hash !== 'function') {
  console.error(`provider.mjs: Node.js 20.12 or later is needed (this is ${process.version})`);
  process.exit(2);
}
const { default: Provider } = await import('oidc-provider');

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.OIDC_PORT },
    'client-id': { type: 'string', default: process.env.OIDC_CLIENT_ID },
    'client-secret': { type: 'string', default: process.env.OIDC_CLIENT_SECRET },
    'redirect-uri': { type: 'string', default: process.env.OIDC_REDIRECT_URI },
    accounts: {
      type: 'string',
      default: process.env.OIDC_ACCOUNTS ?? new URL('./accounts.json', import.meta.url).pathname,
    },
    'claims-in-id-token': {
      type: 'boolean',
      default: process.env.OIDC_CLAIMS_IN_ID_TOKEN === '1',
    },
  },
});
for (const name of ['port', 'client-id', 'client-secret', 'redirect-uri']) {
  if (!opt[name]) {
    console.error(`provider.mjs: --${name} is required`);
    process.exit(2);
  }
}

// The accounts: a JSON array of claim sets, each with its `sub` (what the login form takes).
const accounts = new Map(
  JSON.parse(readFileSync(opt.accounts, 'utf8')).map((claims) => [claims.sub, claims]),
);

const issuer = `http://127.0.0.1:${opt.port}`;

// A fresh signing key on every start: no private key lives in the repository, and a restarted
// provider looks to the relying party like a provider that rotated its keys.
const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: randomBytes(8).toString('hex'),
  use: 'sig',
  alg: 'RS256',
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: opt['client-id'],
      client_secret: opt['client-secret'],
      redirect_uris: [opt['redirect-uri']],
      response_types: ['code'],
      grant_types: ['authorization_code'],
    },
  ],
  // By default PKCE is required of public clients only; vft always sends it, so demand it.
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // With the default (true), scope claims go only to the userinfo endpoint when an access token
  // is issued too (OpenID Connect Core 5.4); several real providers put them in the ID token.
  // The relying party must handle both, so the tests run both.
  conformIdTokenClaims: !opt['claims-in-id-token'],
  async findAccount(_ctx, id) {
    const claims = accounts.get(id);
    // Unknown accounts: undefined makes the provider ask for a login again.
    return claims && { accountId: id, claims: async () => claims };
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  features: { devInteractions: { enabled: true } },
});

// Why a sign-in failed is otherwise invisible to the test reading only HTTP responses.
for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
  provider.on(event, (_ctx, err) => {
    console.error(`provider.mjs: ${event}: ${err.message} ${err.error_description ?? ''}`);
  });
}

provider.listen(Number(opt.port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

// The test holds our stdin open; when it goes away (even killed), so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
