// Temporal client settings as Temporal's docs and CLI read them (@temporalio/envconfig): a TOML profile
// file, TEMPORAL_PROFILE, and the TEMPORAL_* variables over it; then a real connection made from a profile.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { msToTs } from '@temporalio/common/lib/time';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { onLocalServer, readEnv, temporalConnectionOptions, type EnvVars } from '../config/env';
import { connectClient } from '../client';
import { startTestServer } from './support/temporal';
import { waitFor } from '../runtime/wait-for';

let home: string;
beforeEach(async () => {
  home = await fs.mkdtemp(path.join(os.tmpdir(), 'supertiny-envconfig-'));
});
afterEach(async () => {
  await fs.rm(home, { recursive: true, force: true });
});

/** A process environment with nothing of the caller's: no default profile file unless a test writes one. */
const vars = (extra: EnvVars = {}): EnvVars => ({ HOME: home, ...extra });

async function profileFile(toml: string, file = path.join(home, 'temporal.toml')): Promise<string> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, toml);
  return file;
}

const temporalOf = (env: ReturnType<typeof readEnv>) => ({
  address: env.temporalAddress,
  namespace: env.namespace,
  tls: env.temporalTls,
  apiKey: env.temporalApiKey,
});

describe('Temporal client settings', () => {
  test('without a profile file or variables: the local dev server, namespace default, plain', () => {
    expect(temporalOf(readEnv(vars()))).toEqual({ address: '127.0.0.1:7233', namespace: 'default', tls: undefined, apiKey: undefined });
  });

  test('a profile file named by TEMPORAL_CONFIG_FILE gives the address and namespace', async () => {
    const file = await profileFile('[profile.default]\naddress = "temporal.internal:7233"\nnamespace = "distill"\n');
    expect(temporalOf(readEnv(vars({ TEMPORAL_CONFIG_FILE: file })))).toEqual({
      address: 'temporal.internal:7233',
      namespace: 'distill',
      tls: undefined,
      apiKey: undefined,
    });
  });

  test("the default file is the user's temporalio/temporal.toml (XDG_CONFIG_HOME, else ~/.config)", async () => {
    await profileFile('[profile.default]\naddress = "from-home:7233"\n', path.join(home, '.config', 'temporalio', 'temporal.toml'));
    expect(readEnv(vars()).temporalAddress).toBe('from-home:7233');
    const xdg = path.join(home, 'xdg');
    await profileFile('[profile.default]\naddress = "from-xdg:7233"\n', path.join(xdg, 'temporalio', 'temporal.toml'));
    expect(readEnv(vars({ XDG_CONFIG_HOME: xdg })).temporalAddress).toBe('from-xdg:7233');
  });

  test('TEMPORAL_PROFILE picks a profile; an API key turns TLS on (Temporal Cloud)', async () => {
    const file = await profileFile(
      '[profile.default]\naddress = "local:7233"\n\n' +
        '[profile.cloud]\naddress = "acme.a1b2c.tmprl.cloud:7233"\nnamespace = "acme.a1b2c"\napi_key = "key-from-profile"\n',
    );
    const env = readEnv(vars({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }));
    expect(temporalOf(env)).toEqual({ address: 'acme.a1b2c.tmprl.cloud:7233', namespace: 'acme.a1b2c', tls: true, apiKey: 'key-from-profile' });
    expect(temporalConnectionOptions(env)).toEqual({ address: 'acme.a1b2c.tmprl.cloud:7233', tls: true, apiKey: 'key-from-profile', metadata: undefined });
  });

  test('TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and TEMPORAL_API_KEY override the profile; an empty one counts as unset', async () => {
    const file = await profileFile('[profile.default]\naddress = "profile:7233"\nnamespace = "profile-ns"\n');
    const overridden = readEnv(vars({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: 'env:7233', TEMPORAL_NAMESPACE: 'env-ns', TEMPORAL_API_KEY: 'env-key' }));
    expect(temporalOf(overridden)).toEqual({ address: 'env:7233', namespace: 'env-ns', tls: true, apiKey: 'env-key' });
    expect(temporalOf(readEnv(vars({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: '', TEMPORAL_NAMESPACE: '' })))).toMatchObject({
      address: 'profile:7233',
      namespace: 'profile-ns',
    });
  });

  test("mTLS from the profile's tls table: the CA certificate is read from its file, the server name kept", async () => {
    const ca = path.join(home, 'ca.pem');
    await fs.writeFile(ca, '-----BEGIN CERTIFICATE-----\nnot-a-real-one\n-----END CERTIFICATE-----\n');
    const file = await profileFile(`[profile.default]\naddress = "secure:7233"\n\n[profile.default.tls]\nserver_name = "temporal.example"\nserver_ca_cert_path = "${ca}"\n`);
    const tls = readEnv(vars({ TEMPORAL_CONFIG_FILE: file })).temporalTls;
    expect(tls).toMatchObject({ serverNameOverride: 'temporal.example' });
    expect(Buffer.from((tls as { serverRootCACertificate: Uint8Array }).serverRootCACertificate).toString()).toContain('not-a-real-one');
    // TEMPORAL_TLS=false turns it off whatever the profile says.
    expect(readEnv(vars({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_TLS: 'false' })).temporalTls).toBe(false);
  });

  test('a profile that the file lacks is refused, naming the file and the profile', async () => {
    const file = await profileFile('[profile.default]\naddress = "local:7233"\n');
    expect(() => readEnv(vars({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' }))).toThrow(
      new RegExp(`Temporal client config \\(${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, profile prod\\): .*'prod' not found`),
    );
  });

  test('a local dev server the process started is reached plainly, without the profile key or TLS', async () => {
    const file = await profileFile('[profile.default]\naddress = "cloud:7233"\napi_key = "secret"\n');
    const local = onLocalServer(readEnv(vars({ TEMPORAL_CONFIG_FILE: file })), '127.0.0.1:7999');
    expect(temporalConnectionOptions(local)).toEqual({ address: '127.0.0.1:7999', tls: undefined, apiKey: undefined, metadata: undefined });
  });
});

describe('connectClient on a real Temporal dev server', () => {
  let server: TestWorkflowEnvironment;
  beforeAll(async () => {
    server = await startTestServer();
  }, 120_000);
  afterAll(async () => {
    await server?.teardown();
  });

  test("connects to the profile's address and works in the profile's namespace", async () => {
    const namespace = `profile-ns-${Date.now()}`;
    await server.client.connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs('1 day') });
    const file = await profileFile(`[profile.dev]\naddress = "${server.address}"\nnamespace = "${namespace}"\n`);
    const client = await connectClient(readEnv(vars({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'dev' })));
    try {
      const workflowId = `profile-${Date.now()}`;
      // A new namespace takes a moment to reach the frontend's cache.
      const handle = await waitFor('the new namespace to accept workflows', () =>
        client.workflow.start('distillationPipeline', { taskQueue: 'nobody-polls', workflowId, args: [{}] }).catch(() => undefined),
      { timeoutMs: 30_000, intervalMs: 250 });
      expect((await handle.describe()).status.name).toBe('RUNNING');
      // It lives in the profile's namespace, not in the server's default one.
      await expect(server.client.workflow.getHandle(workflowId).describe()).rejects.toThrow(/not found/i);
      await handle.terminate('test done');
    } finally {
      await client.connection.close();
    }
  });
});
