// A real OpenID provider for the board's tests: the certified `oidc-provider`
// package on one loopback port, started by crates/testkit (`OidcProvider`).
//
//   node oidc-provider.mjs --port PORT --client-id ID --client-secret SECRET \
//        --redirect-path /auth/oidc/test/callback [--max-age SECONDS]
//
// * Issuer: http://127.0.0.1:PORT. Login page: oidc-provider's built-in
//   devInteractions (any login and password accepted; the login becomes the
//   account's `sub`), then its consent page (always shown to a native
//   client): authorize -> login form -> consent form -> back to the client.
// * The client is registered as `application_type: native`, so its redirect
//   URI `http://127.0.0.1/<redirect-path>` matches on any loopback port
//   (RFC 8252 section 7.3): the board under test may bind any free port.
// * Signing keys are made afresh at every start: restarting the provider on
//   the same port is a key rotation (a new `kid`).
// * Discovery and JWKS are served with `Cache-Control: public, max-age=N`
//   (`--max-age`, default 300) so clients can honour a lifetime.
// * Everything is in memory; logs go to stdout.
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';
import { randomBytes } from 'node:crypto';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) {
    if (fallback === undefined) {
      console.error(`missing --${name}`);
      process.exit(2);
    }
    return fallback;
  }
  return process.argv[i + 1];
}

const port = Number(arg('port'));
const clientId = arg('client-id');
const clientSecret = arg('client-secret');
const redirectPath = arg('redirect-path');
const maxAge = Number(arg('max-age', '300'));
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = await exportJWK(privateKey);
jwk.kid = randomBytes(8).toString('hex');
jwk.alg = 'RS256';
jwk.use = 'sig';

const configuration = {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    application_type: 'native',
    redirect_uris: [`http://127.0.0.1${redirectPath}`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  // As Google does: the profile and e-mail claims are in the ID token.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: `${sub}@example.test`,
          email_verified: true,
          name: sub,
          preferred_username: sub,
        };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/.well-known/openid-configuration' || ctx.path === '/jwks') {
    ctx.set('cache-control', `public, max-age=${maxAge}`);
  }
});
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer} (kid ${jwk.kid})`);
});
