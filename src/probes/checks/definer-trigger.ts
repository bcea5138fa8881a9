import type { FunctionInfo, Relation, Trigger } from '../../catalog/types.js';
import { alterFunction, comment, fix, or } from '../../findings/fix.js';
import { currentTenantExpression } from '../../findings/fixes.js';
import type { Finding, SampleRow } from '../../findings/finding.js';
import type { RelationPlan } from '../../plan/tenancy.js';
import type { Tenant } from '../../seed/ledger.js';
import type { RawRow } from '../../target/session.js';
import { commentText, ident, inlineParameters, lineComment, relationIdent } from '../../target/sql.js';
import { actorOf, attribute, contextSetter, describeContext, maskRow, personalOf, setContext, sourcesOf } from '../context.js';
import { OwnRowBuilder, CONFLICT_CODES } from '../own-row.js';
import { plural } from '../../report/text.js';
import { sequenceSkip } from '../write-targets.js';
import { defineProbe, type ProbeContext } from '../types.js';
import { relationOf, requireColumn, requireRelation } from '../../catalog/lookup.js';

/** Above this many rows a table is not compared row by row (it is named in the details instead). */
const SNAPSHOT_LIMIT = 20_000;

type WriteKind = 'INSERT' | 'UPDATE' | 'DELETE';

interface Write {
  kind: WriteKind;
  sql: string;
  params: (string | null)[];
}

interface Snapshot {
  /** Row text (JSON of the raw row) -> how many times it occurs. */
  rows: Map<string, { row: RawRow; count: number }>;
}

interface Change {
  relation: string;
  /** `changed` (same key, new values), `deleted`, `written` (a new row), `copied` (another tenant's values in a row the write produced). */
  effect: 'changed' | 'deleted' | 'written' | 'copied';
  owner: string;
  /** Tenant id of that owner (the first one, for values copied from several). */
  ownerId: string;
  row: SampleRow;
}

interface Tracked {
  relation: Relation;
  relationPlan: RelationPlan;
  sources: string[];
  /** Scan without ONLY for a partitioned table (its rows live in the partitions), with ONLY otherwise. */
  from: string;
}

/** Base tables holding tenant rows, each compared once (inheritance children separately, partitions through their parent). */
function trackedTables(context: ProbeContext): Tracked[] {
  const tracked: Tracked[] = [];
  for (const relationPlan of context.plan.relations) {
    if (relationPlan.tenancy === 'shared') continue;
    const relation = requireRelation(context.catalog, relationPlan.relation);
    if (relation.partitionOf || (relation.kind !== 'table' && relation.kind !== 'partitioned-table')) continue;
    tracked.push({ relation, relationPlan, sources: sourcesOf(context, relation), from: relation.kind === 'partitioned-table' ? relationIdent(relation) : `only ${relationIdent(relation)}` });
  }
  return tracked;
}

async function snapshot(context: ProbeContext, tables: Tracked[], skipped: Set<string>): Promise<Map<string, Snapshot>> {
  const snapshots = new Map<string, Snapshot>();
  for (const table of tables) {
    if (skipped.has(table.relation.qualified)) continue;
    const { rows } = await context.session.query(`select x.* from ${table.from} x limit ${SNAPSHOT_LIMIT + 1}`);
    if (rows.length > SNAPSHOT_LIMIT) {
      skipped.add(table.relation.qualified);
      continue;
    }
    const map = new Map<string, { row: RawRow; count: number }>();
    for (const row of rows) {
      const text = JSON.stringify(row);
      const entry = map.get(text);
      if (entry) entry.count += 1;
      else map.set(text, { row, count: 1 });
    }
    snapshots.set(table.relation.qualified, { rows: map });
  }
  return snapshots;
}

/** Rows in `a` and not (as often) in `b`. */
function minus(a: Snapshot, b: Snapshot): RawRow[] {
  const out: RawRow[] = [];
  for (const [text, entry] of a.rows) {
    const extra = entry.count - (b.rows.get(text)?.count ?? 0);
    for (let index = 0; index < extra; index += 1) out.push(entry.row);
  }
  return out;
}

/** What the write did to rows that are not the acting tenant's, table by table. */
function changesBetween(context: ProbeContext, tables: Tracked[], before: Map<string, Snapshot>, after: Map<string, Snapshot>, tenant: Tenant): Change[] {
  const changes: Change[] = [];
  // Rows of the tenants the platform made for the actor alone (a personal account) are its own, like the tenant's.
  const personal = personalOf(context, tenant);
  for (const table of tables) {
    const old = before.get(table.relation.qualified);
    const now = after.get(table.relation.qualified);
    if (!old || !now) continue;
    const key = table.relation.primaryKey ?? [];
    const keyOf = (row: RawRow) => (key.length ? JSON.stringify(key.map((column) => row[column] ?? null)) : null);
    const keep = new Set([...key, ...context.plan.tenantColumns]);
    const ownerOf = (row: RawRow) => attribute(row, table.relationPlan, table.relation, context.ledger, context.plan.tenantColumns, table.sources);
    const removed = minus(old, now);
    const written = minus(now, old);
    const rewritten = new Set(written.map(keyOf).filter((value): value is string => value !== null));
    const replaced = new Set(removed.map(keyOf).filter((value): value is string => value !== null));
    const entries: [Change['effect'], RawRow][] = [
      ...removed.filter((row) => !rewritten.has(keyOf(row) ?? '')).map((row): [Change['effect'], RawRow] => ['deleted', row]),
      ...written.map((row): [Change['effect'], RawRow] => [replaced.has(keyOf(row) ?? '') ? 'changed' : 'written', row]),
    ];
    for (const [effect, row] of entries) {
      const owner = ownerOf(row);
      if ((owner.kind === 'tenant' && owner.tenant.id !== tenant.id && !personal.has(owner.tenant.id)) || owner.kind === 'other-tenant') {
        const label = owner.kind === 'tenant' ? owner.tenant.label : `tenant ${owner.value} (not seeded)`;
        changes.push({ relation: table.relation.qualified, effect, owner: label, ownerId: owner.kind === 'tenant' ? owner.tenant.id : owner.value, row: maskRow(row, keep, context.tenants) });
        continue;
      }
      if (effect === 'deleted') continue;
      const copied = context.ledger.tenantsByCanary(row).filter((other) => other.id !== tenant.id);
      if (copied.length) changes.push({ relation: table.relation.qualified, effect: 'copied', owner: copied.map((other) => other.label).join(', '), ownerId: copied[0]!.id, row: maskRow(row, keep, context.tenants) });
    }
  }
  return changes;
}

/** The row events a trigger fires on. */
function events(trigger: Trigger): WriteKind[] {
  return trigger.events.filter((kind): kind is WriteKind => kind !== 'TRUNCATE');
}

function describeChanges(changes: Change[]): string {
  const groups = new Map<string, { count: number; describe: (count: number) => string }>();
  for (const change of changes) {
    const key = `${change.effect}\u0000${change.owner}\u0000${change.relation}`;
    const entry = groups.get(key);
    if (entry) {
      entry.count += 1;
      continue;
    }
    const describe = (count: number) =>
      change.effect === 'copied'
        ? `copied values of ${change.owner} into ${plural(count, 'row')} of ${change.relation}`
        : `${change.effect === 'written' ? 'wrote' : change.effect} ${plural(count, 'row')} of ${change.owner} in ${change.relation}`;
    groups.set(key, { count: 1, describe });
  }
  return [...groups.values()].map((entry) => entry.describe(entry.count)).join('; ');
}

export const definerTrigger = defineProbe({
  order: 60,
  meta: {
    id: 'definer-trigger',
    matrix: 'outside',
    title: "A SECURITY DEFINER trigger touches other tenants' rows",
    severity: 'high',
    objectKind: 'table',
    summary: "A SECURITY DEFINER trigger fired by a tenant's write touches other tenants' rows.",
    example: "An ordinary INSERT of tenant A's own row fires a SECURITY DEFINER trigger that changed 11 rows of tenant B in public.counters.",
    explanation:
      'For every tenant table with a trigger whose function is SECURITY DEFINER, the probe performs the ordinary writes the trigger fires on ' +
      "(insert a valid row of the tenant, update and delete one of the tenant's own rows) as the application role with the tenant set, then, in " +
      "the same rolled-back savepoint, compares every tenant table with its state before the write. The trigger runs with its owner's rights, " +
      "so the policies do not stop it: rows of other tenants it changes, deletes or writes, and other tenants' values it copies into the " +
      "tenant's rows, are reported. Fix the function to touch only rows of the row's own tenant (NEW.tenant_id), or make it SECURITY INVOKER.",
    precondition:
      'High: a tenant table has a trigger whose function is SECURITY DEFINER, and an ordinary insert, update or delete of the ' +
      'tenant\'s own row, as the application role with the tenant set, makes that trigger change, delete or write rows of another ' +
      'tenant, or copy another tenant\'s values into the tenant\'s rows (compared with the state before, in the same rolled-back ' +
      'savepoint).',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    const functions = new Map<number, FunctionInfo>(context.catalog.functions.map((fn) => [fn.oid, fn]));
    const byRelation = new Map<string, { trigger: Trigger; fn: FunctionInfo }[]>();
    for (const trigger of context.catalog.triggers) {
      const fn = functions.get(trigger.functionOid);
      if (!trigger.enabled || !fn?.securityDefiner) continue;
      byRelation.set(trigger.relation, [...(byRelation.get(trigger.relation) ?? []), { trigger, fn }]);
    }
    if (!byRelation.size) return findings;
    const tables = trackedTables(context);
    const builder = new OwnRowBuilder(context);
    const skipped = new Set<string>();
    for (const [relationName, triggers] of byRelation) {
      const relation = relationOf(context.catalog, relationName);
      const relationPlan = context.plan.relations.find((entry) => entry.relation === relationName);
      const access = context.access.get(relationName);
      if (!relation || !relationPlan || relationPlan.tenancy === 'shared' || !access) continue;
      // On a live database, a write that would advance a sequence is not made (see sequences.ts).
      const kinds = new Set(triggers.flatMap(({ trigger }) => events(trigger)).filter((kind) => !sequenceSkip(context, this.meta.id, relationName, [kind])));
      const updatable = access.update
        ? (
            await context.session.query(
              `select a.attname from pg_attribute a where a.attrelid = $2::oid and a.attnum > 0 and not a.attisdropped and has_column_privilege($1, a.attrelid, a.attnum, 'UPDATE') order by a.attnum`,
              [context.plan.role, relation.oid],
            )
          ).rows.map((row) => row.attname!)
        : [];
      const settable = relation.columns.filter((column) => updatable.includes(column.name) && !column.generated && column.identity !== 'always');
      const key = relation.primaryKey ?? [];
      let reported = false;
      for (const tenant of context.tenants) {
        if (reported) break;
        const own = key.length ? context.ledger.rows(relationName, tenant.id).slice(0, 3) : [];
        const where = key.map((column, index) => `${ident(column)} = $${index + 1}::${requireColumn(relation, column).type}`).join(' and ');
        const writes: Write[] = [];
        if (kinds.has('INSERT') && access.insert && relationPlan.tenancy !== 'tenant-table') {
          for (let attempt = 0; attempt < 3; attempt += 1) {
            const row = builder.ownRow(relation, relationPlan, tenant);
            if (row) writes.push({ kind: 'INSERT', sql: row.sql, params: row.params });
          }
        }
        if (kinds.has('UPDATE') && settable.length) {
          for (const row of own) {
            writes.push({ kind: 'UPDATE', sql: `update ${relationIdent(relation)} set ${settable.map((column) => `${ident(column.name)} = ${ident(column.name)}`).join(', ')} where ${where}`, params: key.map((column) => row.values[column] ?? null) });
          }
        }
        if (kinds.has('DELETE') && access.delete) {
          for (const row of own) writes.push({ kind: 'DELETE', sql: `delete from ${relationIdent(relation)} where ${where}`, params: key.map((column) => row.values[column] ?? null) });
        }
        const done = new Set<WriteKind>();
        for (const write of writes) {
          if (done.has(write.kind)) continue;
          const outcome = await context.session.savepoint(async () => {
            const before = await snapshot(context, tables, skipped);
            await context.session.becomeRole(context.plan.role);
            await setContext(context, actorOf(context, tenant));
            try {
              await context.session.savepoint(() => context.session.query(write.sql, write.params), true);
            } catch (error) {
              context.session.rethrowStop(error);
              const failure = error as { message?: string; code?: string };
              return { error: failure.message ?? String(error), code: failure.code };
            }
            // Back to the session user (who sees every tenant) to see what the trigger did.
            await context.session.query('reset role');
            const after = await snapshot(context, tables, skipped);
            return { changes: changesBetween(context, tables, before, after, tenant) };
          });
          const sql = inlineParameters(write.sql, write.params);
          const base = { check: this.meta.id, relation: relationName, context: tenant.label, tenant: tenant.id, sql, missingOwnRows: 0 };
          if ('error' in outcome) {
            // A fresh row may collide with a seeded one, a delete may be blocked by a child row: try the next.
            context.record({ ...base, outcome: 'error', rows: 0, foreignRows: 0, error: outcome.error });
            if (write.kind === 'INSERT' && !CONFLICT_CODES.has(outcome.code ?? '')) done.add(write.kind);
            continue;
          }
          done.add(write.kind);
          const changes = outcome.changes;
          context.record({ ...base, outcome: changes.length ? 'leak' : 'pass', rows: 1, foreignRows: changes.length });
          if (!changes.length || reported) continue;
          reported = true;
          const names = triggers.filter(({ trigger }) => events(trigger).includes(write.kind));
          const shown = names.map(({ trigger, fn }) => `${trigger.name} (${fn.signature}, SECURITY DEFINER, owner ${fn.owner})`).join(', ');
          const touched = [...new Set(changes.map((change) => change.relation))];
          const compare = touched.map((name) => `select * from ${relationIdent(requireRelation(context.catalog, name))} order by 1;`);
          const setter = `${contextSetter(context, actorOf(context, tenant))}  ${lineComment(tenant.label)}`;
          const [first] = changes;
          findings.push(report({
            severity: 'high',
            object: relationName,
            tenant: tenant.id,
            foreignTenant: first!.ownerId,
            message: `As ${tenant.label}, an ordinary ${write.kind} of its own row in ${relationName} fires ${shown}, which ${describeChanges(changes)}.`,
            evidence: {
              sql: [
                `begin;`,
                `-- as a role that sees every tenant (the session user), before:`,
                ...compare,
                `set local role ${ident(context.plan.role)};`,
                setter,
                `${sql};`,
                `reset role;`,
                lineComment(`after: ${describeChanges(changes)}`),
                ...compare,
                `rollback;`,
              ].join('\n'),
              context: describeContext(context, { kind: 'tenant', tenant }),
              rowCount: changes.length,
              sampleRows: changes.slice(0, 3).map((change) => ({ relation: change.relation, effect: change.effect, tenant: change.owner, ...change.row })),
              details: `${describeChanges(changes)}${skipped.size ? `; not compared (over ${SNAPSHOT_LIMIT} rows): ${[...skipped].join(', ')}` : ''}`,
            },
            fix: fix(
              [comment("the trigger function runs with its owner's rights, so no policy limits what it touches:"), ...names.map(({ fn }) => alterFunction(fn.signature, 'security invoker'))],
              [
                or(" keep it SECURITY DEFINER and restrict every statement in it to the row's tenant, e.g. ... where tenant_id = new.tenant_id", [
                  comment(`(or = ${commentText(currentTenantExpression(context.plan))}), and never copy values from rows of another tenant`),
                ]),
              ],
            ),
          }));
        }
      }
    }
    return findings;
  },
});
