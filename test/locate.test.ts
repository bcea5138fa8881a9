import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/parse.js';
import type { Finding, FindingObject } from '../src/findings/finding.js';
import { findingLocation, findingLocationKey, locateObjects, sourceRootDirectory, sourceRootUri } from '../src/report/locate.js';

const CWD = '/project';
const SCHEMA = path.join(CWD, 'db', 'schema.sql');
const MORE = path.join(CWD, 'db', 'more.sql');

/** A finding as the locator sees it: check, object and fix. */
function finding(object: FindingObject | string, fix = 'select 1;', check = 'some-check'): Pick<Finding, 'check' | 'object' | 'fix'> {
  return { check, object: typeof object === 'string' ? { kind: 'table', name: object } : object, fix };
}

const schema = [
  '-- Tenants, then the rest; the comment and the non-ASCII name (é: 2 bytes) shift byte offsets from characters.',
  'create role app_user nologin;',
  'create table "tenants_é" (id integer primary key);',
  'create table public.notes (',
  '  id bigserial primary key,',
  '  tenant_id integer not null,',
  '  constraint notes_tenant_fkey foreign key (tenant_id) references "tenants_é" (id)',
  ');',
  'create policy notes_isolation on notes using (tenant_id = current_setting(\'app.tenant\')::integer);',
  '  create policy notes_open on public.notes for select using (true);',
  'create function public.search(term text) returns setof notes language sql as $$ select * from notes $$;',
  'create function public.search(term integer, out hits integer) language sql as $$ select 1 $$;',
  'create view note_titles as select id from notes;',
  'set search_path = app, public;',
  'create table tasks (id integer);',
  'alter table tasks add constraint tasks_positive check (id > 0);',
  'create schema reports create table monthly (id integer) create view summary as select 1;',
  'create materialized view public.totals as select count(*) from public.notes;',
  'create table "Weird\u0007Name" (id integer);',
].join('\n');

const more = ['create sequence public.invoice_numbers;', 'create table public.audit (id integer);', 'create table reports.notes (id integer);'].join('\n');

const files = [
  { file: SCHEMA, sql: schema },
  { file: MORE, sql: more },
];

beforeAll(async () => {
  await loadParser();
});

describe('locateObjects reads the schema files with the parser', () => {
  it('finds the statement that creates each kind of object, with its line and columns', () => {
    const locations = locateObjects(
      files,
      [
        finding('public.notes'),
        finding({ kind: 'role', name: 'app_user' }),
        finding('public.tenants_é'),
        finding({ kind: 'view', name: 'public.note_titles' }),
        finding('app.tasks'),
        finding('reports.monthly'),
        finding({ kind: 'view', name: 'reports.summary' }),
        finding({ kind: 'view', name: 'public.totals' }),
        finding({ kind: 'sequence', name: 'public.notes_id_seq' }),
        finding({ kind: 'sequence', name: 'public.invoice_numbers' }),
        // regclass leaves out the schema of a relation on the search path.
        finding({ kind: 'sequence', name: 'invoice_numbers' }),
        finding({ kind: 'table', name: 'monthly' }),
        finding({ kind: 'table', name: 'notes' }),
        finding('public.audit'),
      ],
      CWD,
    );
    const at = (name: string) => locations[name] && `${locations[name]!.file}:${locations[name]!.line}:${locations[name]!.column}`;
    expect(at('public.notes')).toBe('db/schema.sql:4:1');
    // A multi-line statement ends where its last character does (exclusive column, as SARIF counts).
    expect(locations['public.notes']).toMatchObject({ endLine: 8, endColumn: 2 });
    expect(at('app_user')).toBe('db/schema.sql:2:1');
    // Byte offsets from the parser are converted to characters: the statement after é still starts at column 1.
    expect(at('public.tenants_é')).toBe('db/schema.sql:3:1');
    expect(locations['public.tenants_é']).toMatchObject({ endLine: 3, endColumn: 50 });
    expect(at('public.note_titles')).toBe('db/schema.sql:13:1');
    // Unqualified names after SET search_path go to its first schema; CREATE SCHEMA's elements to that schema.
    expect(at('app.tasks')).toBe('db/schema.sql:15:1');
    expect(at('reports.monthly')).toBe('db/schema.sql:17:1');
    expect(at('reports.summary')).toBe('db/schema.sql:17:1');
    expect(at('public.totals')).toBe('db/schema.sql:18:1');
    // A serial column's sequence is created by its table.
    expect(at('public.notes_id_seq')).toBe('db/schema.sql:4:1');
    expect(at('public.invoice_numbers')).toBe('db/more.sql:1:1');
    expect(at('invoice_numbers')).toBe('db/more.sql:1:1');
    expect(at('monthly')).toBe('db/schema.sql:17:1');
    // Two schemas have a notes table: without the schema there is no telling which, so the fallback.
    expect(at('notes')).toBe('db/schema.sql:1:undefined');
    expect(at('public.audit')).toBe('db/more.sql:2:1');
  });

  it('tells function overloads apart by their argument types, as regprocedure prints them', () => {
    const locations = locateObjects(
      files,
      [finding({ kind: 'function', name: 'public.search(text)' }), finding({ kind: 'function', name: 'public.search(integer)' }), finding({ kind: 'function', name: 'public.search(character varying)' })],
      CWD,
    );
    expect(locations['public.search(text)']).toMatchObject({ file: 'db/schema.sql', line: 11 });
    // OUT parameters are not part of the identity.
    expect(locations['public.search(integer)']).toMatchObject({ file: 'db/schema.sql', line: 12 });
    // No such overload, and the name is overloaded: nothing to choose, so the first line of the first file.
    expect(locations['public.search(character varying)']).toEqual({ file: 'db/schema.sql', line: 1 });
  });

  it('points a finding whose fix changes a policy at that CREATE POLICY, and keeps its table at CREATE TABLE', () => {
    const open = finding('public.notes', 'drop policy "notes_open" on "public"."notes";\n-- or fence it:\nalter policy notes_isolation on public.notes using (true);', 'permissive-always-true');
    const rewrite = finding('public.notes', "alter policy notes_isolation on public.notes using (tenant_id = nullif(current_setting('app.tenant', true), '')::integer);", 'setting-without-nullif');
    const disabled = finding('public.notes', 'alter table public.notes enable row level security;\ncreate policy tenant_isolation on public.notes using (true);', 'rls-disabled');
    const policy = finding({ kind: 'policy', name: 'notes_isolation', relation: 'public.notes' });
    const constraint = finding({ kind: 'constraint', name: 'notes_tenant_fkey', relation: 'public.notes', columns: ['tenant_id'] });
    const added = finding({ kind: 'constraint', name: 'tasks_positive', relation: 'app.tasks' });
    const unnamed = finding({ kind: 'constraint', name: 'notes_pkey', relation: 'public.notes' });
    const locations = locateObjects(files, [open, rewrite, disabled, policy, constraint, added, unnamed], CWD);
    const line = (entry: Pick<Finding, 'check' | 'object'>) => findingLocation(locations, entry)?.line;
    // The alternative after `-- or` is not the fix: notes_open is what permissive-always-true is about.
    expect(line(open)).toBe(10);
    expect(findingLocation(locations, open)).toMatchObject({ column: 3, endColumn: 67 });
    expect(line(rewrite)).toBe(9);
    // A new policy in the fix is not where the defect is: rls-disabled stays at the table.
    expect(locations[findingLocationKey(disabled)]).toBeUndefined();
    expect(line(disabled)).toBe(4);
    expect(line(policy)).toBe(9);
    expect(line(constraint)).toBe(4);
    expect(line(added)).toBe(16);
    // A constraint PostgreSQL named (the primary key) is created by its table's statement.
    expect(line(unnamed)).toBe(4);
  });

  it('falls back to the first line of the first file, and has nothing to point at without schema files', () => {
    const locations = locateObjects(files, [finding({ kind: 'setting', name: 'app.tenant' }), finding('public.elsewhere')], CWD);
    expect(locations['app.tenant']).toEqual({ file: 'db/schema.sql', line: 1 });
    expect(locations['public.elsewhere']).toEqual({ file: 'db/schema.sql', line: 1 });
    expect(locateObjects([], [finding('public.notes')], CWD)).toEqual({});
  });

  it('locates a quoted name that holds a control character, and the rest of its file', () => {
    const locations = locateObjects(files, [finding('public.totals'), finding('app.Weird\u0007Name')], CWD);
    expect(locations['public.totals']).toMatchObject({ line: 18 });
    // The parser's JSON escapes control characters, so the quoted name is read as written and located exactly.
    expect(locations['app.Weird\u0007Name']).toMatchObject({ file: 'db/schema.sql', line: 19, column: 1 });
  });

  it('makes paths relative to the repository that holds the working directory, else to the directory', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'rls-audit-root-'));
    try {
      const repository = path.join(outside, 'repo');
      const sub = path.join(repository, 'services', 'api');
      await mkdir(sub, { recursive: true });
      expect(sourceRootDirectory(sub)).toBe(sub);
      // A clone has a .git folder, a worktree a .git file: either marks the repository's root.
      await writeFile(path.join(repository, '.git'), 'gitdir: /elsewhere\n');
      expect(sourceRootDirectory(sub)).toBe(repository);
      const located = locateObjects([{ file: path.join(sub, 'db', 'schema.sql'), sql: 'create table public.notes (id integer);' }], [finding('public.notes')], sourceRootDirectory(sub));
      expect(located['public.notes']).toMatchObject({ file: 'services/api/db/schema.sql', line: 1 });
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
    expect(sourceRootUri('/work/my project')).toBe('file:///work/my%20project/');
    expect(sourceRootUri('/')).toBe('file:///');
  });
});
