// The lint rules (eslint.config.mjs): the real ESLint on probe files written into the folders they speak for. A
// workflow file that imports Node built-ins or an activity implementation fails, one that imports only types
// passes, and a promise left floating fails anywhere. Lint is typed, so the probes are real files inside
// tsconfig's folders (a name given on stdin alone is in no project); all are linted in one run, as loading the
// program is most of the time.
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

type Problem = { line: number; rule: string; message: string };

const probes = {
  badWorkflow: {
    file: 'workflows',
    source: [
      "import * as fs from 'node:fs';",
      "import * as path from 'path';",
      "import { randomUUID } from 'crypto';",
      "import { spawn } from 'child_process';",
      "import { createActivities } from '../activities';",
      "import { runTrainer } from '../activities/trainer/trainer-process';",
      "import { Context } from '@temporalio/activity';",
      "import { readEnv } from '../config/env';",
      'export const used = [fs, path, randomUUID, spawn, createActivities, runTrainer, Context, readEnv];',
    ],
  },
  typeOnlyWorkflow: {
    file: 'workflows',
    source: [
      "import { proxyActivities } from '@temporalio/workflow';",
      "import type { SupertinyActivities } from '../activities';",
      "import type { PrototypeResult } from '../activities/types';",
      "import { type ArtifactRef, collectRefs } from '../artifacts/ref';",
      "import { parsePipelineConfig } from '../config/pipeline';",
      'export const used = [proxyActivities, collectRefs, parsePipelineConfig];',
      'export type Used = SupertinyActivities | PrototypeResult | ArtifactRef;',
    ],
  },
  activityWithBuiltin: { file: 'activities', source: ["import * as fs from 'node:fs';", 'export const used = fs;'] },
  activityWithUnused: { file: 'activities', source: ["import * as fs from 'node:fs';", 'const forgotten = fs;'] },
  floatingPromises: {
    file: 'runtime',
    source: [
      'async function store(): Promise<void> {}',
      'export function floating(): void {',
      '  store();',
      "  setTimeout(async () => store(), 1);",
      '  void store(); // marked: fire-and-forget on purpose',
      '  store().catch(() => undefined);',
      '}',
      'export async function awaitsAValue(): Promise<number> {',
      '  return await 1;',
      '}',
    ],
  },
};
type ProbeName = keyof typeof probes;

const fileOf = (name: ProbeName) => path.join(probes[name].file, `lint-probe-${process.pid}-${name}.ts`);
const problems = {} as Record<ProbeName, Problem[]>;

function eslint(files: string[]): Promise<{ filePath: string; messages: { line: number; ruleId: string; message: string }[] }[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), '--format', 'json', ...files],
      { cwd: root, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        // Exit code 1 means "problems found"; anything else is ESLint failing.
        if (err && err.code !== 1) return reject(new Error(`eslint failed: ${stderr || err.message}`));
        resolve(JSON.parse(stdout));
      },
    );
  });
}

beforeAll(async () => {
  const names = Object.keys(probes) as ProbeName[];
  try {
    for (const name of names) writeFileSync(path.join(root, fileOf(name)), probes[name].source.join('\n') + '\n');
    const results = await eslint(names.map(fileOf));
    for (const name of names) {
      const result = results.find((r) => r.filePath === path.join(root, fileOf(name)));
      if (!result) throw new Error(`eslint said nothing about ${fileOf(name)}`);
      problems[name] = result.messages.map((m) => ({ line: m.line, rule: m.ruleId, message: m.message }));
    }
  } finally {
    for (const name of names) rmSync(path.join(root, fileOf(name)), { force: true });
  }
});

test('a workflow file that imports Node built-ins or activity implementations fails lint, one error per import', () => {
  const found = problems.badWorkflow;
  expect(found.map((p) => [p.line, p.rule])).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((line) => [line, '@typescript-eslint/no-restricted-imports']));
  expect(found[0].message).toMatch(/deterministic sandbox: no Node built-ins/);
  expect(found[4].message).toMatch(/import type/);
});

test('type-only imports of activities and the workflow APIs pass lint in a workflow file', () => {
  expect(problems.typeOnlyWorkflow).toEqual([]);
});

test('the workflow rule applies to workflows/ only: an activity may import Node built-ins (and is linted too)', () => {
  expect(problems.activityWithBuiltin).toEqual([]);
  expect(problems.activityWithUnused.map((p) => [p.line, p.rule])).toEqual([[2, '@typescript-eslint/no-unused-vars']]);
});

test('a promise left floating, passed where a callback returns nothing, or awaited when not a promise fails lint', () => {
  expect(problems.floatingPromises.map((p) => [p.line, p.rule])).toEqual([
    [3, '@typescript-eslint/no-floating-promises'],
    [4, '@typescript-eslint/no-misused-promises'],
    [9, '@typescript-eslint/await-thenable'],
  ]);
});
