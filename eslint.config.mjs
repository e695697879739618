// Lint: what the type checker cannot say. Workflow code runs in Temporal's deterministic sandbox and is
// replayed from history, so (as in Temporal's samples) it imports no Node built-in and nothing that does
// I/O or reads the clock: activities, runtimes and workers are reached through `import type` only.
// The workflow bundler also refuses built-ins anywhere below workflows/; this names the line at once.
import { builtinModules } from 'node:module';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const sandbox = 'workflow code is replayed in a deterministic sandbox';

export default defineConfig(
  { ignores: ['node_modules/**', 'dist/**', '.tools/**', '.venv/**', '.data/**', 'coverage/**', 'trainer/**'] },
  {
    // Everywhere: typescript-eslint's recommended set, relaxed as in Temporal's samples, and (as there) typed
    // lint for the promise rules: a promise nobody awaits loses its rejection, in an activity or a server alike.
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: builtinModules.map((name) => ({
            name,
            message: `${sandbox}: no Node built-ins; do the I/O in an activity.`,
          })),
          patterns: [
            {
              // node:fs and the built-ins that exist only with the prefix (node:test, node:sqlite).
              group: ['node:*'],
              message: `${sandbox}: no Node built-ins; do the I/O in an activity.`,
            },
            {
              group: ['@temporalio/activity', '@temporalio/client', '@temporalio/worker', '@temporalio/testing', 'openai', 'onnxruntime-*'],
              message: `${sandbox}: only @temporalio/workflow and @temporalio/common run there.`,
            },
            {
              // Implementations do I/O; their types are erased, so `import type` is fine.
              group: ['**/activities', '**/activities/**', '**/runtime/**', '**/workers/**', '**/client', '**/client/**', '**/cli/**', '**/artifacts/store', '**/config/env', '**/config/logger'],
              allowTypeImports: true,
              message: `${sandbox}: import activities, runtimes and workers with \`import type\`; call activities through proxyActivities.`,
            },
          ],
        },
      ],
    },
  },
);
