import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface CheckFolder<T> {
  /** The registry's own `import.meta.url`: its folder holds `checks/`, its extension says which files are modules (`.ts` under vitest, `.js` in dist). */
  registry: string;
  /** `probe` or `rule`, for messages. */
  kind: string;
  /** True for a value its define function made (a branded probe or rule), false for any other export. */
  isCheck: (value: unknown) => value is T;
  /** The check ids it reports (a probe's own and its related checks'). */
  ids: (check: T) => string[];
  order: (check: T) => number;
}

/**
 * Every check exported by the modules of the `checks/` folder next to a registry, by ascending order, ties
 * broken by id. Throws on a module that exports no check and on a check id reported twice. A check module
 * must not import its registry, even through another module: the registry awaits the module, which would
 * await the registry (test/registry.test.ts walks the imports).
 */
export async function discoverChecks<T>({ registry, kind, isCheck, ids, order }: CheckFolder<T>): Promise<T[]> {
  const registryFile = fileURLToPath(registry);
  const extension = path.extname(registryFile);
  const folder = path.join(path.dirname(registryFile), 'checks');
  const files = (await readdir(folder)).filter((name) => name.endsWith(extension) && !name.endsWith(`.d${extension}`)).sort();
  const modules = await Promise.all(files.map(async (name) => ({ name, exports: (await import(pathToFileURL(path.join(folder, name)).href)) as Record<string, unknown> })));
  const checks: T[] = [];
  const owner = new Map<string, string>();
  for (const { name, exports } of modules) {
    const found = [...new Set(Object.values(exports).filter(isCheck))];
    if (found.length === 0) throw new Error(`${path.join(folder, name)} exports no ${kind}: a module in ${kind}s/checks/ is a check (helpers go in ${kind}s/)`);
    for (const check of found) {
      for (const id of ids(check)) {
        const other = owner.get(id);
        if (other !== undefined) throw new Error(`check id ${id} is declared twice: by ${other} and by ${name}`);
        owner.set(id, name);
      }
      checks.push(check);
    }
  }
  return checks.sort((a, b) => order(a) - order(b) || (ids(a)[0]! < ids(b)[0]! ? -1 : ids(a)[0]! > ids(b)[0]! ? 1 : 0));
}
