// The demo never shares a Temporal server: another run's worker would pick up its workflows.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { onLocalServer, readEnv } from '../config/env';
import { freePort, serverAnswers, startDevServer } from '../cli/dev-server';
import { startTestServer } from './support/temporal';

describe('the local Temporal server', () => {
  let other: TestWorkflowEnvironment;

  beforeAll(async () => {
    other = await startTestServer();
  }, 120_000);

  afterAll(async () => {
    await other?.teardown();
  });

  test('"own" starts a private server on free ports when the address is taken; "reuse" shares it', async () => {
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'dev-server-'));
    const env = { ...onLocalServer(readEnv(), other.address), dataDir, uiPort: await freePort() };
    const reused = await startDevServer(env, { share: 'reuse', headless: true });
    expect(reused).toMatchObject({ address: other.address, owned: false });

    const own = await startDevServer(env, { share: 'own', headless: true });
    try {
      expect(own.owned).toBe(true);
      expect(own.address).not.toBe(other.address);
      expect(await serverAnswers(own.address)).toBe(true);
    } finally {
      await own.stop();
    }
    expect(await serverAnswers(own.address)).toBe(false);
    expect(await serverAnswers(other.address)).toBe(true);
    await fs.rm(dataDir, { recursive: true, force: true });
  }, 120_000);
});
