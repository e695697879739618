// The lint rule that keeps workflow code replayable (eslint.config.mjs): the real ESLint on a workflow
// file that imports Node built-ins or an activity implementation, and on one that imports only types.
import { execFile } from 'node:child_process';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');

/** Lints `source` as if it were the file at `file` (relative to the repo root); returns the rules it broke, by line. */
function lint(file: string, source: string): Promise<{ line: number; rule: string; message: string }[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [path.join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), '--format', 'json', '--stdin', '--stdin-filename', file],
      { cwd: root },
      (err, stdout, stderr) => {
        // Exit code 1 means "problems found"; anything else is ESLint failing.
        if (err && err.code !== 1) return reject(new Error(`eslint failed: ${stderr || err.message}`));
        const [result] = JSON.parse(stdout) as { messages: { line: number; ruleId: string; message: string }[] }[];
        resolve(result.messages.map((m) => ({ line: m.line, rule: m.ruleId, message: m.message })));
      },
    );
    child.stdin!.end(source);
  });
}

test('a workflow file that imports Node built-ins or activity implementations fails lint, one error per import', async () => {
  const source = [
    "import * as fs from 'node:fs';",
    "import * as path from 'path';",
    "import { randomUUID } from 'crypto';",
    "import { spawn } from 'child_process';",
    "import { createActivities } from '../activities';",
    "import { runTrainer } from '../activities/transfer/trainer-process';",
    "import { Context } from '@temporalio/activity';",
    "import { readEnv } from '../config/env';",
    'export const used = [fs, path, randomUUID, spawn, createActivities, runTrainer, Context, readEnv];',
  ].join('\n');
  const problems = await lint('workflows/probe.ts', source);
  expect(problems.map((p) => [p.line, p.rule])).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((line) => [line, '@typescript-eslint/no-restricted-imports']));
  expect(problems[0].message).toMatch(/deterministic sandbox: no Node built-ins/);
  expect(problems[4].message).toMatch(/import type/);
});

test('type-only imports of activities and the workflow APIs pass lint in a workflow file', async () => {
  const source = [
    "import { proxyActivities } from '@temporalio/workflow';",
    "import type { SupertinyActivities } from '../activities';",
    "import type { PrototypeResult } from '../activities/types';",
    "import { type ArtifactRef, collectRefs } from '../artifacts/ref';",
    "import { parsePipelineConfig } from '../config/pipeline';",
    'export const used = [proxyActivities, collectRefs, parsePipelineConfig];',
    'export type Used = SupertinyActivities | PrototypeResult | ArtifactRef;',
  ].join('\n');
  expect(await lint('workflows/probe.ts', source)).toEqual([]);
});

test('the workflow rule applies to workflows/ only: an activity may import Node built-ins (and is linted too)', async () => {
  expect(await lint('activities/probe.ts', "import * as fs from 'node:fs';\nexport const used = fs;\n")).toEqual([]);
  const unused = await lint('activities/probe.ts', "import * as fs from 'node:fs';\nconst forgotten = fs;\n");
  expect(unused.map((p) => [p.line, p.rule])).toEqual([[2, '@typescript-eslint/no-unused-vars']]);
});
