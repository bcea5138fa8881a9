import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { loadScenario } from '../src/scenario/load.js';
import type { Report } from '../src/report/model.js';
import { allFindings, ROOT } from './helpers.js';

async function cli(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (text) => (out += text), err: (text) => (err += text), cwd });
  return { code, out, err };
}

describe('rls-audit init', () => {
  it('writes a commented scenario from what discovery found, which `run` then finds from a subdirectory', async () => {
    const project = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-init-'));
    const schema = ['scenarios/chat/schema.sql', 'scenarios/demo/leak.sql'].map((file) => path.join(ROOT, file));
    const init = await cli(['init', ...schema.flatMap((file) => ['--schema', file])], project);
    expect(init.err).toMatch(/^wrote rls-audit\.yaml: check it, then run `npx rls-audit run`\n$/);
    expect(init.code).toBe(0);
    const text = await readFile(path.join(project, 'rls-audit.yaml'), 'utf8');
    expect(init.out).toBe(text);
    expect(text).toMatch(/^role: app_user +# application role app_user: the only role granted access to tenant data \(SELECT on 5, INSERT on 3, UPDATE on 3, DELETE on 3 of 5 tenant-owned relation\(s\); owners and superusers aside\)$/m);
    expect(text).toMatch(/^setting: app\.current_tenant +# compared with a row column by 4 relation\(s\) \(discovered\)$/m);
    expect(text).toMatch(/^contextSql: "select set_config\('app\.current_tenant', \$1::text, true\)"$/m);
    expect(text).toMatch(/^tenantTable: public\.tenants +# key id \(integer\); referenced by the tenant column of 3 table\(s\) \(discovered\)$/m);
    expect(text).toMatch(/^tenantColumn: \[tenant_id\] +# discovered$/m);
    expect(text).toMatch(/^# {3}public\.recent_messages +direct: has the tenant column tenant_id$/m);
    expect(text).toMatch(/^# The static rules found 1 high on this schema/m);

    // The file is a valid scenario, with the schema paths relative to it.
    const scenario = await loadScenario(path.join(project, 'rls-audit.yaml'));
    expect(scenario).toMatchObject({ name: 'chat', schema, role: 'app_user', setting: 'app.current_tenant', tenantTable: 'public.tenants', tenantColumn: ['tenant_id'] });

    const again = await cli(['init', '--schema', schema[0]!], project);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/rls-audit\.yaml exists already: remove it, write elsewhere with --file PATH, or replace it with --force/);

    const nested = path.join(project, 'app', 'src');
    await mkdir(nested, { recursive: true });
    const out = path.join(project, 'report');
    const run = await cli(['run', '--out', out, '--seed', '1', '--tenants', '2', '--rows', '5'], nested);
    expect(run.err).toMatch(/^config: \.\.\/\.\.\/rls-audit\.yaml\n/);
    expect(run.code).toBe(1);
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as Report;
    expect(allFindings(report.findings).filter((finding) => finding.check === 'read-isolation').map((finding) => finding.object.name)).toEqual(['public.recent_messages']);
  });
});
