import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverChecks } from '../src/findings/discover.js';
import { isRule, type Rule } from '../src/rules/types.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const SRC = path.join(ROOT, 'src');
const REGISTRIES = [path.join(SRC, 'probes', 'registry.ts'), path.join(SRC, 'rules', 'registry.ts')];

/**
 * The modules a source file imports at run time: relative imports and re-exports that are not `import type`
 * (a named import used only as a type is counted too: stricter than what tsc emits), and literal `import()`s.
 */
async function runtimeImports(file: string): Promise<string[]> {
  const source = ts.createSourceFile(file, await readFile(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined && clause.namedBindings !== undefined && ts.isNamedImports(clause.namedBindings) && clause.namedBindings.elements.length > 0 && clause.namedBindings.elements.every((element) => element.isTypeOnly)));
      if (!typeOnly) specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteralLike(node.arguments[0])) {
      specifiers.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers
    .filter((specifier) => specifier.startsWith('.'))
    .map((specifier) => {
      const target = path.resolve(path.dirname(file), specifier).replace(/\.js$/, '.ts');
      if (!existsSync(target)) throw new Error(`${path.relative(ROOT, file)} imports ${specifier}: no ${path.relative(ROOT, target)}`);
      return target;
    });
}

const importsOf = new Map<string, Promise<string[]>>();
function cachedImports(file: string): Promise<string[]> {
  if (!importsOf.has(file)) importsOf.set(file, runtimeImports(file));
  return importsOf.get(file)!;
}

/** The chain of imports from a check module to a registry, or null when none leads there. */
async function pathToRegistry(start: string): Promise<string[] | null> {
  const parent = new Map<string, string | null>([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (REGISTRIES.includes(file)) {
      const chain: string[] = [];
      for (let at: string | null = file; at !== null; at = parent.get(at)!) chain.unshift(path.relative(ROOT, at));
      return chain;
    }
    for (const next of await cachedImports(file)) {
      if (parent.has(next)) continue;
      parent.set(next, file);
      queue.push(next);
    }
  }
  return null;
}

async function checkModules(): Promise<string[]> {
  const folders = [path.join(SRC, 'probes', 'checks'), path.join(SRC, 'rules', 'checks')];
  return (await Promise.all(folders.map(async (folder) => (await readdir(folder)).filter((name) => name.endsWith('.ts')).map((name) => path.join(folder, name))))).flat();
}

// The registries are imported in the tests that read them, not by this file: were a check module to import a
// registry, loading them would never end, and the import walk below must still run and name the cycle.
describe('check registries', () => {
  it('run the probes in the order they always ran, missing-context first', async () => {
    const { PROBES } = await import('../src/probes/registry.js');
    // The order before the registries found their checks (one list line per probe), written here once; by the
    // id of each module's probe (identity.ts is role-bypasses-rls, membership.ts member-of-two-tenants,
    // self-grant.ts self-join).
    expect(PROBES.map((probe) => probe.meta.id)).toEqual([
      'missing-context', 'role-bypasses-rls', 'read-isolation', 'member-of-two-tenants', 'function-leak', 'definer-trigger', 'role-graph', 'application-query',
      'context-persistence', 'spoofable-setting', 'claim-spoof', 'existence-oracle', 'error-echo', 'seq-scan',
      'foreign-insert', 'foreign-update', 'foreign-delete', 'blind-update', 'blind-delete', 'tenant-reassignment', 'self-join', 'truncate',
      'upsert-conflict', 'cross-tenant-reference',
    ]);
  });

  it('evaluate the rules in their family order', async () => {
    const { RULES } = await import('../src/rules/registry.js');
    expect(RULES.map((rule) => rule.meta.id)).toEqual([
      // Coverage
      'rls-disabled', 'rls-no-policy', 'policy-without-rls', 'partition-without-rls', 'materialized-view-exposed', 'foreign-table-exposed', 'future-partitions',
      // Policy logic
      'permissive-always-true', 'public-rows', 'command-coverage-gap', 'with-check-missing-tenant', 'fail-open-context', 'setting-without-missing-ok',
      'setting-without-nullif', 'non-tenant-setting', 'user-editable-claim', 'policy-role-scope',
      // Privilege
      'superuser-role', 'bypassrls-role', 'owner-without-force', 'dangerous-grant', 'public-grant', 'definer-view', 'definer-function', 'definer-function-search-path',
      // Integrity
      'unique-without-tenant', 'foreign-key-without-tenant', 'shared-sequence',
      // Performance
      'missing-tenant-index', 'policy-volatile-function', 'policy-per-row-setting',
    ]);
  });

  // The registry awaits every check module at load: a check module that imported the registry (even through
  // another module) would wait for the registry, which waits for it, and the process would never load.
  it('no check module imports a registry, directly or through another module', async () => {
    const modules = await checkModules();
    expect(modules.length).toBeGreaterThan(50);
    const cycles: string[] = [];
    for (const module of modules) {
      const chain = await pathToRegistry(module);
      if (chain) cycles.push(chain.join(' -> '));
    }
    expect(cycles).toEqual([]);
  });

  it('the import walk sees a registry reached through another module', async () => {
    // src/audit.ts imports both registries; findings/checks.ts imports them: a walk from a module that imports it must find the chain.
    expect(await pathToRegistry(path.join(SRC, 'report', 'html.ts'))).toEqual(expect.arrayContaining([expect.stringMatching(/registry\.ts$/)]));
  });
});

describe('discoverChecks', () => {
  const folders: string[] = [];
  afterAll(async () => {
    for (const folder of folders) await rm(folder, { recursive: true, force: true });
  });

  /** A registry file in a fresh folder, with `checks/<name>.ts` holding each given module text. */
  async function folderWith(modules: Record<string, string>): Promise<string> {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-registry-'));
    folders.push(folder);
    await mkdir(path.join(folder, 'checks'));
    await writeFile(path.join(folder, 'registry.ts'), '');
    for (const [name, text] of Object.entries(modules)) await writeFile(path.join(folder, 'checks', `${name}.ts`), text);
    return pathToFileURL(path.join(folder, 'registry.ts')).href;
  }

  const types = JSON.stringify(pathToFileURL(path.join(SRC, 'rules', 'types.ts')).href);
  const rule = (name: string, id: string, order: number) =>
    `export const ${name} = defineRule({ order: ${order}, meta: { id: '${id}', title: 't', severity: 'low', objectKind: 'table', summary: 's.', example: 'e', explanation: 'x', precondition: 'Low: p' }, evaluate: () => [] });\n`;
  const discover = (registry: string) => discoverChecks<Rule>({ registry, kind: 'rule', isCheck: isRule, ids: (check) => [check.meta.id], order: (check) => check.order });

  it('sorts by order, ties by id, skips declaration files and takes no other export for a check', async () => {
    const registry = await folderWith({
      a: `import { defineRule } from ${types};\n${rule('zeta', 'zeta', 20)}export const helper = { meta: { id: 'not-a-check' }, order: 1 };\n`,
      b: `import { defineRule } from ${types};\n${rule('beta', 'beta', 20)}${rule('alpha', 'alpha', 30)}`,
      c: `import { defineRule } from ${types};\n${rule('first', 'first', 10)}export { first as again };\n`,
      'c.d': 'export declare const nothing: number;\n',
    });
    expect((await discover(registry)).map((check) => [check.meta.id, check.order])).toEqual([['first', 10], ['beta', 20], ['zeta', 20], ['alpha', 30]]);
  });

  it('refuses a module that exports no check, and a check id declared twice', async () => {
    await expect(discover(await folderWith({ a: `import { defineRule } from ${types};\n${rule('one', 'one', 10)}`, helper: 'export const helper = 1;\n' }))).rejects.toThrow(/helper\.ts exports no rule/);
    await expect(
      discover(await folderWith({ a: `import { defineRule } from ${types};\n${rule('one', 'same', 10)}`, b: `import { defineRule } from ${types};\n${rule('two', 'same', 20)}` })),
    ).rejects.toThrow('check id same is declared twice: by a.ts and by b.ts');
  });
});
