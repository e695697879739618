// The project's layers, checked on its import graph (read with the TypeScript compiler's parser, nothing run).
// Floors, ground first: a file imports its own floor or a lower one, and no import circle exists, not even
// through `import type` (a circle of types still ties two modules that should each make sense alone).
//
//   1 config/       schema, env, endpoints, logger, failure types, stage ids
//   2 artifacts/    content-addressed store
//   3 tasks/        defineTask, call format, metrics, the built-in tasks
//   4 runtime/      ONNX student, teacher client, teacher simulator, student server
//   5 activities/   stage activities (prototype/, transfer/, compress/, evaluate/) and what they share
//                   (teacher/, trainer/, and the files at the folder's top)
//   6 workflows/    deterministic workflow code
//   7 workers/, client/
//   8 cli/
//   9 scripts/
//
// The one way up: activities/ may `import type` from workflows/ (the messages' types), never a value.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..');
const FLOORS: Record<string, number> = {
  config: 1,
  artifacts: 2,
  tasks: 3,
  runtime: 4,
  activities: 5,
  workflows: 6,
  workers: 7,
  client: 7,
  cli: 8,
  scripts: 9,
};

interface Import {
  from: string;
  to: string;
  typeOnly: boolean;
}

async function sourceFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const room of Object.keys(FLOORS)) {
    for (const entry of await fs.readdir(path.join(ROOT, room), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts')) files.push(path.relative(ROOT, path.join(entry.parentPath, entry.name)));
    }
  }
  return files.sort();
}

/** The relative imports of a file (static, re-exports, `import()`, `require()`), with whether each is type-only. */
function importsOf(file: string, text: string): { specifier: string; typeOnly: boolean }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, false);
  const found: { specifier: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const bindings = clause?.namedBindings;
      const allNamedTypes = !!bindings && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
      const typeOnly = !!clause && (clause.isTypeOnly || (!clause.name && allNamedTypes));
      found.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.exportClause;
      const allNamedTypes = !!clause && ts.isNamedExports(clause) && clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly);
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: node.isTypeOnly || allNamedTypes });
    } else if (ts.isCallExpression(node) && node.arguments.length === 1 && ts.isStringLiteral(node.arguments[0])) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) {
        found.push({ specifier: node.arguments[0].text, typeOnly: false });
      }
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push({ specifier: node.argument.literal.text, typeOnly: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found.filter((i) => i.specifier.startsWith('.'));
}

async function importGraph(): Promise<{ files: string[]; imports: Import[] }> {
  const files = await sourceFiles();
  const known = new Set(files);
  const resolve = (from: string, specifier: string) => {
    const base = path.join(path.dirname(from), specifier);
    return [`${base}.ts`, path.join(base, 'index.ts')].find((candidate) => known.has(candidate));
  };
  const imports: Import[] = [];
  for (const file of files) {
    for (const { specifier, typeOnly } of importsOf(file, await fs.readFile(path.join(ROOT, file), 'utf8'))) {
      const to = resolve(file, specifier);
      if (to) imports.push({ from: file, to, typeOnly });
    }
  }
  return { files, imports };
}

/** Every group of files that reach each other through imports (strongly connected, more than one file). */
function circles(files: readonly string[], imports: readonly Import[]): string[][] {
  const next = new Map(files.map((f) => [f, [] as string[]]));
  for (const { from, to } of imports) next.get(from)?.push(to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) found.push(group.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return found;
}

const room = (file: string) => file.split(path.sep)[0];

/** The imports that climb: to a higher floor, except activities' `import type` from workflows. */
function climbs(imports: readonly Import[]): string[] {
  return imports
    .filter(({ from, to, typeOnly }) => FLOORS[room(to)] > FLOORS[room(from)] && !(room(from) === 'activities' && room(to) === 'workflows' && typeOnly))
    .map(({ from, to, typeOnly }) => `${from} -> ${to}${typeOnly ? ' (type)' : ''}`);
}

describe('the import graph', () => {
  let graph: { files: string[]; imports: Import[] };
  beforeAll(async () => {
    graph = await importGraph();
  });

  test('reads the source: files of every floor, and imports of each kind', () => {
    expect(new Set(graph.files.map(room))).toEqual(new Set(Object.keys(FLOORS)));
    expect(graph.imports).toContainEqual({ from: 'runtime/serve/cascade.ts', to: 'runtime/teacher/teacher-client.ts', typeOnly: true });
    expect(graph.imports).toContainEqual({ from: 'activities/index.ts', to: 'activities/prototype/stage-activities.ts', typeOnly: false });
  });

  test('the checks see a circle and a climb when there is one', () => {
    const a = 'activities/a.ts';
    const b = 'activities/b.ts';
    expect(circles([a, b], [{ from: a, to: b, typeOnly: true }, { from: b, to: a, typeOnly: false }])).toEqual([[a, b]]);
    expect(climbs([{ from: 'runtime/x.ts', to: 'activities/y.ts', typeOnly: true }])).toEqual(['runtime/x.ts -> activities/y.ts (type)']);
    expect(climbs([{ from: 'activities/x.ts', to: 'workflows/y.ts', typeOnly: false }])).toHaveLength(1);
    expect(climbs([{ from: 'activities/x.ts', to: 'workflows/y.ts', typeOnly: true }])).toEqual([]);
  });

  test('has no import circle', () => {
    expect(circles(graph.files, graph.imports)).toEqual([]);
  });

  test('never imports a higher floor: config, artifacts, tasks and runtime import no activities, workflows, workers, client or cli', () => {
    expect(climbs(graph.imports)).toEqual([]);
  });

  test('activities import workflows with `import type` only', () => {
    const values = graph.imports.filter(({ from, to, typeOnly }) => room(from) === 'activities' && room(to) === 'workflows' && !typeOnly);
    expect(values).toEqual([]);
  });
});
