import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/parse.js';
import {
  alterDefaultPrivileges,
  alterView,
  appendFix,
  appStatement,
  comment,
  createSequence,
  createView,
  dropIndex,
  dropPolicy,
  enableRls,
  fix,
  forceRls,
  or,
  orInline,
  orTrailing,
  policyStatement,
  primaryFixText,
  primaryStatements,
  renderFix,
  revoke,
  setSearchPath,
} from '../src/findings/fix.js';

beforeAll(loadParser);

describe('fix as data', () => {
  const table = '"public"."notes"';
  const isolation = [
    enableRls(table),
    forceRls(table),
    policyStatement('create-policy', { name: 'tenant_isolation', table: 'public.notes' }, `create policy tenant_isolation on ${table} for all to "app"\n  using (true);`, table),
  ];

  it('renders steps, notes and alternatives of every placement as the text a report shows', () => {
    const rendered = renderFix(
      fix(
        [comment('confine it:'), revoke('all', table, '"app"', 'reach it through the parent'), ...isolation],
        [orInline(', if app should not use it:', revoke('select', table, '"app"')), or(' fence it:', [comment('with a restrictive policy')])],
      ),
    );
    expect(rendered).toBe(
      [
        '-- confine it:',
        `revoke all on ${table} from "app";  -- reach it through the parent`,
        `alter table ${table} enable row level security;`,
        `alter table ${table} force row level security;`,
        `create policy tenant_isolation on ${table} for all to "app"\n  using (true);`,
        `-- or, if app should not use it: revoke select on ${table} from "app";`,
        '-- or fence it:',
        '-- with a restrictive policy',
      ].join('\n'),
    );
    expect(renderFix(fix([revoke('"admin"', null, '"app"')], [orTrailing(' from the role app is a member through', [])]))).toBe('revoke "admin" from "app";  -- or from the role app is a member through');
  });

  it('appends after the last alternative, so the text reads as the concatenation and the statements to run stay those before it', () => {
    const first = fix([setSearchPath('public.f()', 'pg_catalog, pg_temp')], [or(' stop exposing it:', [revoke('execute', 'function public.f()', 'public')])]);
    const second = fix([comment('and also:'), ...isolation]);
    const joined = appendFix(first, second);
    expect(renderFix(joined)).toBe(`${renderFix(first)}\n${renderFix(second)}`);
    expect(primaryStatements(joined).map((step) => step.kind)).toEqual(['alter-function']);
    expect(primaryStatements(appendFix(fix([comment('first')]), second)).map((step) => step.kind)).toEqual(['enable-rls', 'force-rls', 'create-policy']);
  });

  it('reads the statements to run from the data, and from the first `-- or` comment only for a fix without data', () => {
    const data = fix(isolation, [orInline(' stop direct access:', revoke('all', table, '"app"'))]);
    const text = renderFix(data);
    expect(primaryFixText({ fix: text, fixSteps: data })).toBe(isolation.map((step) => step.sql).join('\n'));
    expect(primaryFixText({ fix: text }).trim()).toBe(isolation.map((step) => step.sql).join('\n'));
    // Data decides: a comment that merely starts with "or" in a step is not an alternative.
    const literal = fix([comment('or else: nothing'), forceRls(table)]);
    expect(primaryFixText({ fix: renderFix(literal), fixSteps: literal })).toContain('force row level security');
    expect(primaryFixText({ fix: renderFix(literal) })).toBe('');
  });

  it('types each statement with the object it changes: views, indexes, sequences, default privileges, policies', () => {
    const steps = [
      alterView('"public"."v"', 'set (security_invoker = true)'),
      createView('"public"."v_for_tenant"', 'with (security_barrier) as\n  select * from "public"."m" where "tenant_id" = 1'),
      dropIndex('"public"."notes_key"'),
      createSequence('"public"."notes_id_seq"', '"public"."notes"."id"'),
      alterDefaultPrivileges('"public"', 'revoke execute on functions from "anon"'),
      alterDefaultPrivileges(null, 'revoke execute on functions from public'),
      dropPolicy({ name: 'Open all', table: 'public.notes' }, table),
    ];
    expect(renderFix(fix(steps))).toBe(
      [
        'alter view "public"."v" set (security_invoker = true);',
        'create view "public"."v_for_tenant" with (security_barrier) as\n  select * from "public"."m" where "tenant_id" = 1;',
        'drop index "public"."notes_key";',
        'create sequence "public"."notes_id_seq" owned by "public"."notes"."id";',
        'alter default privileges in schema "public" revoke execute on functions from "anon";',
        'alter default privileges revoke execute on functions from public;',
        `drop policy "Open all" on ${table};`,
      ].join('\n'),
    );
    expect(steps.map((step) => [step.kind, step.target])).toEqual([
      ['alter-view', '"public"."v"'],
      ['create-view', '"public"."v_for_tenant"'],
      ['drop-index', '"public"."notes_key"'],
      ['create-sequence', '"public"."notes_id_seq"'],
      ['alter-default-privileges', '"public"'],
      ['alter-default-privileges', undefined],
      ['drop-policy', table],
    ]);
    expect(steps[6]!.policy).toEqual({ name: 'Open all', table: 'public.notes' });
    // Advice on the application's code is typed as such, not as a change to the database.
    expect(appStatement("select set_config('app.tenant', $1, true);").kind).toBe('app-statement');
  });
});
