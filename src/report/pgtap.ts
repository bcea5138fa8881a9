import { AuditError } from '../errors.js';
import { commentText, ident, literal, qualifiedIdent } from '../target/sql.js';
import type { Report } from './model.js';
import type { Replay, ReplayRelation } from './replay.js';

/** `$tag$text$tag$` with a tag the text does not contain. */
function dollarQuoted(text: string, base: string): string {
  let tag = `$${base}$`;
  for (let index = 1; text.includes(tag); index += 1) tag = `$${base}_${index}$`;
  return `${tag}${text}${tag}`;
}

/** `"id" in ('a', 'b')`, or `("a", "b") in (('1', 'x'), ...)` for a composite key. */
function keyPredicate(relation: ReplayRelation, rows: ReplayRelation['rows']): string {
  const key = relation.key!;
  const positions = key.map((column) => relation.columns.indexOf(column));
  const tuple = (values: (string | null)[]) => {
    const parts = positions.map((position) => literal(values[position] ?? null));
    return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`;
  };
  const left = key.length === 1 ? ident(key[0]!) : `(${key.map(ident).join(', ')})`;
  return `${left} in (${rows.map((row) => tuple(row.values)).join(', ')})`;
}

/** The insert of a relation's seeded rows, in the order they were seeded. */
function insertOf(relation: ReplayRelation): string {
  const values = relation.rows.map((row) => `  (${row.values.map((value) => literal(value)).join(', ')})`);
  return `insert into ${qualifiedIdent(relation.relation)} (${relation.columns.map(ident).join(', ')})${relation.overridingSystemValue ? ' overriding system value' : ''} values\n${values.join(',\n')};`;
}

/** The statements that put the current transaction in `actor`'s context, as the application does. */
function contextOf(replay: Replay, actor: Replay['actors'][number]): string[] {
  if (replay.roleSwitch) return [`set local role ${ident(actor.role!)};`];
  const values = replay.contextParameters.map((parameter) => {
    const value = parameter === 'tenant' ? (actor.key !== undefined ? actor.key : actor.tenant) : parameter === 'user' ? actor.user : actor.role;
    return `${literal(value)}::text`;
  });
  const execute = `execute ${dollarQuoted(replay.contextSql, 'rls_audit_context')}${values.length ? ` using ${values.join(', ')}` : ''};`;
  return [`set local role ${ident(replay.role)};`, `do ${dollarQuoted(`begin ${execute} end`, 'rls_audit_do')};`];
}

/**
 * The audit as a pgTAP test (`rls-audit.test.sql`): in a transaction of its own that is rolled back, it
 * recreates the tenants and actors the audit seeded, then asserts, per relation and command the audit
 * probed, what isolation means: each tenant reads its own rows and no other tenant's, updates and deletes no
 * other tenant's row, and without a context (and as the anonymous role) reads no tenant's row. It runs with
 * pg_prove, and under `supabase test db` from supabase/tests/.
 */
export function renderPgtap(report: Report): string {
  const replay = report.replay;
  if (!replay) throw new AuditError('--format pgtap needs the seeded rows of a run: use it with `rls-audit run` (not lint or merge)');
  const probed = (check: string) => new Set(report.probes.filter((probe) => probe.check === check).map((probe) => probe.relation));
  const reads = probed('read-isolation');
  const updates = probed('foreign-update');
  const deletes = probed('foreign-delete');
  const missing = probed('missing-context');
  const tested = replay.relations.filter((relation) => relation.tenantOwned && relation.key && relation.rows.length);
  const lines: string[] = [];
  let count = 0;
  const assert = (line: string) => {
    count += 1;
    lines.push(line);
  };
  const counted = (sql: string, undo = false) => `pg_temp.rls_audit_count(${dollarQuoted(sql, 'rls_audit_query')}${undo ? ', true' : ''})`;
  const label = (text: string) => literal(text);

  const tenantRows = (relation: ReplayRelation) => relation.rows.filter((row) => row.tenant !== null);
  const noContextChecks = (who: string) => {
    for (const relation of tested.filter((entry) => missing.has(entry.relation))) {
      assert(`select is(${counted(`select count(*) from ${qualifiedIdent(relation.relation)} where ${keyPredicate(relation, tenantRows(relation))}`)} > 0, false, ${label(`${relation.relation}: ${who} reads no tenant's row`)});`);
    }
  };

  if (replay.setting) {
    lines.push('', `-- No context: ${commentText(replay.setting)} never set in this transaction.`, `set local role ${ident(replay.role)};`);
    noContextChecks('without a context');
    lines.push('reset role;');
  }
  if (replay.anonymousRole && replay.setting) {
    lines.push('', `-- A request without a JWT runs as ${commentText(replay.anonymousRole)}.`, `set local role ${ident(replay.anonymousRole)};`);
    noContextChecks(`the anonymous role ${replay.anonymousRole}`);
    lines.push('reset role;');
  }
  for (const actor of replay.actors) {
    lines.push('', `-- ${commentText(`${actor.label}${actor.user ? ` (user ${actor.user})` : actor.role ? ` (role ${actor.role})` : ''}`)}`, ...contextOf(replay, actor));
    for (const relation of tested) {
      const own = relation.rows.filter((row) => row.tenant === actor.tenant);
      const foreign = relation.rows.filter((row) => row.tenant !== null && row.tenant !== actor.tenant);
      const name = qualifiedIdent(relation.relation);
      // The own rows the audit saw this tenant read (a policy may show a user only some of its tenant's rows, such as its own memberships).
      const read = report.probes.find((probe) => probe.check === 'read-isolation' && probe.relation === relation.relation && probe.tenant === actor.tenant && !probe.error);
      if (read && own.length) {
        assert(`select is(${counted(`select count(*) from ${name} where ${keyPredicate(relation, own)}`)}, ${read.rows - read.foreignRows}::bigint, ${label(`${relation.relation}: ${actor.label} reads its own rows`)});`);
      }
      if (!foreign.length) continue;
      if (reads.has(relation.relation)) {
        assert(`select is(${counted(`select count(*) from ${name} where ${keyPredicate(relation, foreign)}`)}, 0::bigint, ${label(`${relation.relation}: ${actor.label} reads no row of another tenant`)});`);
      }
      if (updates.has(relation.relation) && relation.updatable) {
        const column = ident(relation.updatable);
        assert(`select is(${counted(`with changed as (update ${name} set ${column} = ${column} where ${keyPredicate(relation, foreign)} returning 1) select count(*) from changed`, true)} > 0, false, ${label(`${relation.relation}: ${actor.label} updates no row of another tenant`)});`);
      }
      if (deletes.has(relation.relation)) {
        assert(`select is(${counted(`with gone as (delete from ${name} where ${keyPredicate(relation, foreign)} returning 1) select count(*) from gone`, true)} > 0, false, ${label(`${relation.relation}: ${actor.label} deletes no row of another tenant`)});`);
      }
    }
    lines.push('reset role;');
  }

  const roles = replay.roleSwitch ? replay.actors.filter((actor) => actor.role).map((actor) => actor.role!) : [];
  const header = [
    `-- rls-audit ${report.tool.version}: the audit of ${commentText(report.scenario.name)} as a pgTAP test, written by \`rls-audit run --format pgtap\`.`,
    '-- It recreates the audit\'s tenants and actors in a transaction of its own (rolled back at the end), sets each',
    "-- tenant's context the way the application does, and asserts what the audit proved: each tenant reads its own",
    "-- rows and no other tenant's, changes no other tenant's row, and no context reads nothing.",
    '-- Run it with pg_prove (pg_prove -d DB rls-audit.test.sql) or, in a Supabase project, from supabase/tests/ with',
    '-- `supabase test db`. Run it on the schema the audit ran on, without rows that collide with these.',
    'begin;',
    'create extension if not exists pgtap;',
    `select plan(${count});`,
    '',
    '-- The number of rows a query counts; -1 when it fails (a denied statement is one that changes nothing). With',
    '-- undo, what the query changed is undone, so that a write that went through leaves the next tests intact.',
    'create function pg_temp.rls_audit_count(query text, undo boolean default false) returns bigint language plpgsql as $rls_audit_fn$',
    'declare counted bigint := -1;',
    'begin',
    '  begin',
    '    execute query into counted;',
    "    if undo then raise sqlstate 'RAUDO'; end if;",
    '  exception',
    "    when sqlstate 'RAUDO' then return counted;",
    '    when others then return -1;',
    '  end;',
    '  return counted;',
    'end',
    '$rls_audit_fn$;',
    '',
    `-- The audit's tenants (${commentText(report.tenants.map((tenant) => `${tenant.label} ${tenant.id}`).join(', '))}) and actors, as seeded.`,
    ...roles.map((role) => `do ${dollarQuoted(`begin if not exists (select from pg_roles where rolname = ${literal(role)}) then create role ${ident(role)} nologin; end if; end`, 'rls_audit_do')};\ngrant ${ident(replay.role)} to ${ident(role)};`),
    ...replay.relations.map(insertOf),
  ];
  return `${[...header, ...lines, '', 'select * from finish();', 'rollback;'].join('\n')}\n`;
}
