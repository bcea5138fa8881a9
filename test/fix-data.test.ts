import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser } from '../src/analysis/parse.js';
import { appendFix, comment, enableRls, fix, forceRls, or, orInline, orTrailing, policyStatement, primaryFixText, primaryStatements, renderFix, revoke, setSearchPath } from '../src/findings/fix.js';

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
});
