import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findConfigFile, loadScenario } from '../src/scenario/load.js';

async function scenarioFile(text: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-scenario-'));
  const file = path.join(dir, 'audit.yaml');
  await writeFile(file, text);
  return file;
}

describe('loadScenario', () => {
  it('applies the defaults from the schema and resolves schema paths against the file', async () => {
    const file = await scenarioFile('name: shop\nschema: [db/schema.sql]\nrole: app\n');
    const scenario = await loadScenario(file);
    expect(scenario.schema).toEqual([path.join(path.dirname(file), 'db/schema.sql')]);
    expect(scenario).toMatchObject({ name: 'shop', role: 'app', tenants: 3, rows: 20, failOn: 'high', target: { kind: 'embedded' }, accept: [] });
  });

  it('lets flags override the file, with flag paths relative to the cwd', async () => {
    const file = await scenarioFile('schema: [a.sql]\nrole: app\ntenants: 5\nfailOn: critical\n');
    const scenario = await loadScenario(file, { tenants: 4, role: 'other', schema: ['b.sql'], failOn: 'low', databaseUrl: 'postgresql://u:secret@h/db' }, '/work');
    expect(scenario).toMatchObject({ tenants: 4, role: 'other', schema: ['/work/b.sql'], failOn: 'low', target: { kind: 'url', url: 'postgresql://u:secret@h/db' } });
  });

  it('names the file and the field of a bad value', async () => {
    const file = await scenarioFile('schema: [a.sql]\nrole: app\ntenants: one\n');
    await expect(loadScenario(file)).rejects.toThrow(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a valid scenario:\\n  tenants:`));
  });

  it('names an unknown field', async () => {
    const file = await scenarioFile('schema: [a.sql]\nrole: app\ntenant_count: 3\n');
    await expect(loadScenario(file)).rejects.toThrow(/tenant_count/);
  });

  it('rejects invalid YAML with its line, and a context SQL without $1', async () => {
    await expect(loadScenario(await scenarioFile('schema: [a.sql\nrole: app\n'))).rejects.toThrow(/not valid YAML/);
    await expect(loadScenario(await scenarioFile("schema: [a.sql]\nrole: app\ncontextSql: select 1\n"))).rejects.toThrow(/contextSql: must use \$1/);
  });

  it('needs something to audit; the role may be left to discovery (the plan finds it in the grants)', async () => {
    await expect(loadScenario(undefined, { role: 'app' })).rejects.toThrow(/nothing to audit/);
    expect((await loadScenario(undefined, { schema: ['a.sql'] })).role).toBeUndefined();
  });

  it('validates acceptances', async () => {
    const file = await scenarioFile('schema: [a.sql]\nrole: app\naccept:\n  - { check: existence-oracle, object: public.users, reason: ok, expires: soon }\n');
    await expect(loadScenario(file)).rejects.toThrow(/accept\.0\.reason[\s\S]*accept\.0\.expires|accept\.0\.expires[\s\S]*accept\.0\.reason/);
  });

  it('finds rls-audit.yaml in the working directory or its nearest parent, and flags still override it', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-config-'));
    const nested = path.join(root, 'packages', 'api');
    await mkdir(nested, { recursive: true });
    expect(findConfigFile(nested)).toBeUndefined();
    await writeFile(path.join(root, 'rls-audit.yaml'), 'name: app\nschema: [db/schema.sql]\nrole: app_user\ntenants: 4\n');
    expect(findConfigFile(nested)).toBe(path.join(root, 'rls-audit.yaml'));
    const scenario = await loadScenario(undefined, { tenants: 2 }, nested);
    expect(scenario).toMatchObject({ name: 'app', schema: [path.join(root, 'db/schema.sql')], role: 'app_user', tenants: 2 });
    // The nearest one wins.
    await writeFile(path.join(nested, 'rls-audit.yml'), 'name: api\nschema: [schema.sql]\nrole: api_user\n');
    expect(await loadScenario(undefined, {}, nested)).toMatchObject({ name: 'api', schema: [path.join(nested, 'schema.sql')], role: 'api_user' });
  });
});
