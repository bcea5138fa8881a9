import { errorMessage } from '../../errors.js';
import { functionsCalled } from '../../analysis/sql-text.js';
import { connect, DEFAULT_BOUNDS, LIVE_BOUNDS } from '../../target/connect.js';
import type { Finding } from '../../findings/finding.js';
import { appStatement, comment, fix } from '../../findings/fix.js';
import type { Tenant } from '../../seed/ledger.js';
import { commentText, ident, lineComment, literal } from '../../target/sql.js';
import { actorOf, attribute, contextSetter, describeContext, runAs, sourcesOf } from '../context.js';
import { contextStatementOf } from '../../seed/actors.js';
import { plural } from '../../report/text.js';
import { readTargets, shownStatement } from '../targets.js';
import { defineProbe, type ProbeContext } from '../types.js';

interface SideObservation {
  /** current_setting(setting, true) after a transaction that set the tenant and rolled back. */
  afterRollback: string | null;
  /** The same after a transaction that set the tenant and committed. */
  afterCommit: string | null;
}

/**
 * Play a pooled connection on a connection of its own: one transaction sets the tenant the way the
 * application does and rolls back, another sets it and commits, and each time the next transaction, which
 * sets nothing, reads the setting.
 *
 * No trace: every transaction here is READ ONLY, so the COMMIT cannot write a row. set_config writes no
 * row at all (a setting lives in the backend's memory and dies with the connection, which is closed at
 * the end); a context setter that would write (say, a function that logs the request) fails in the
 * read-only transaction and the probe reports that it could not run rather than committing anything.
 */
async function observe(context: ProbeContext, tenant: Tenant): Promise<SideObservation> {
  // Bounded like the audit's own connection: connect, statement, lock and idle-in-transaction timeouts.
  const client = await connect(context.connectionString, context.disposable ? DEFAULT_BOUNDS : LIVE_BOUNDS);
  try {
    // A throwaway connection: the role is set for the session, as an application that logs in as its role.
    await client.query(`set role ${ident(context.plan.role)}`);
    const read = async () =>
      (await client.query<{ value: string | null }>(`select current_setting($1, true) as value`, [context.plan.setting])).rows[0]!.value;
    await client.query('begin read only');
    await client.query(contextStatementOf(context.plan, actorOf(context, tenant)).text, contextStatementOf(context.plan, actorOf(context, tenant)).values);
    await client.query('rollback');
    await client.query('begin read only');
    const afterRollback = await read();
    await client.query('commit');
    await client.query('begin read only');
    await client.query(contextStatementOf(context.plan, actorOf(context, tenant)).text, contextStatementOf(context.plan, actorOf(context, tenant)).values);
    await client.query('commit');
    await client.query('begin read only');
    const afterCommit = await read();
    await client.query('commit');
    return { afterRollback, afterCommit };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Rows of `tenant` a transaction sees when the setting still holds that tenant: read on the audit's own connection. */
async function visibleRows(context: ProbeContext, tenant: Tenant): Promise<{ total: number; byRelation: string[]; example: string | null }> {
  let total = 0;
  const byRelation: string[] = [];
  let example: string | null = null;
  for (const target of readTargets(context, (relation) => sourcesOf(context, relation))) {
    // The persisted setting is what the application's setter left behind: setting it again in a
    // rolled-back savepoint gives the next transaction's view without committing anything.
    const result = await runAs(context, { kind: 'tenant', tenant }, target.statement);
    if (result.error) continue;
    const rows = result.rows.filter((row) => {
      const owner = attribute(row, target.relationPlan, target.relation, context.ledger, context.plan.tenantColumns, target.sources);
      return owner.kind === 'tenant' || owner.kind === 'other-tenant';
    }).length;
    if (!rows) continue;
    total += rows;
    byRelation.push(`${target.relation.qualified}: ${rows}`);
    example ??= shownStatement(target.statement);
  }
  return { total, byRelation, example };
}

function setterSql(context: ProbeContext, tenant: Tenant): string {
  return `${contextSetter(context, actorOf(context, tenant))}  ${lineComment(tenant.label)}`;
}

export const contextPersistence = defineProbe({
  order: 90,
  meta: {
    id: 'context-persistence',
    matrix: 'outside',
    title: 'The tenant context outlives its transaction',
    severity: 'high',
    objectKind: 'setting',
    summary: 'The tenant setting survives the end of its transaction on a pooled connection.',
    example: 'After a transaction that sets tenant A with `set_config(..., false)` commits, the next transaction on the same pooled connection still reads tenant A: the context outlives its transaction.',
    explanation:
      "On a connection of its own, as the application role, the probe runs the application's context setter in a transaction and commits, " +
      'then reads the setting in a new transaction that sets nothing. A connection pool hands that connection to the next request: if the ' +
      "setting still holds the previous tenant (set_config(..., false), or SET without LOCAL), a request that sets no tenant (a background " +
      "job, an error path, a forgotten middleware) runs as the previous tenant and sees its rows. It also checks that a rolled-back transaction " +
      "leaves the setting empty (''), the state the missing-context probe reads every relation in. Set the tenant with set_config(name, value, " +
      'true) or SET LOCAL, so it ends with the transaction.',
    precondition:
      'High: on a connection of its own, after a transaction that ran the application\'s context setter ended (COMMIT, or ROLLBACK), ' +
      'the next transaction on that connection still reads the tenant in the setting: a request that sets no tenant on a pooled ' +
      'connection runs as the previous tenant (a context that outlives its transaction).',
  },
  split: 'whole',
  async run(context, report) {
    const findings: Finding[] = [];
    const tenant = context.tenants[0]!;
    const { setting, role } = context.plan;
    const shown = `begin; ${setterSql(context, tenant)} commit; begin; select current_setting(${literal(setting)}, true); commit;`;
    let observed: SideObservation;
    try {
      observed = await observe(context, tenant);
    } catch (error) {
      context.session.rethrowStop(error);
      context.record({ check: this.meta.id, relation: setting, context: tenant.label, tenant: tenant.id, sql: shown, outcome: 'skipped', rows: 0, foreignRows: 0, missingOwnRows: 0, error: `could not run the context setter on a second connection in a read-only transaction: ${errorMessage(error)}` });
      return findings;
    }
    const leftAfterRollback = observed.afterRollback === tenant.id;
    const leftAfterCommit = observed.afterCommit === tenant.id;
    context.record({ check: this.meta.id, relation: setting, context: `${tenant.label}, after rollback`, tenant: tenant.id, sql: shown.replace('commit; begin; select', 'rollback; begin; select'), outcome: leftAfterRollback ? 'leak' : 'pass', rows: 1, foreignRows: leftAfterRollback ? 1 : 0, missingOwnRows: 0 });
    context.record({ check: this.meta.id, relation: setting, context: `${tenant.label}, after commit`, tenant: tenant.id, sql: shown, outcome: leftAfterCommit ? 'leak' : 'pass', rows: 1, foreignRows: leftAfterCommit ? 1 : 0, missingOwnRows: 0 });
    if (!leftAfterCommit && !leftAfterRollback) return findings;
    const visible = await visibleRows(context, tenant);
    const ending = leftAfterCommit ? 'commit' : 'rollback';
    const roleLine = `set local role ${ident(role)};`;
    findings.push(report({
      severity: 'high',
      object: setting,
      tenant: tenant.id,
      message:
        `After a transaction that sets ${tenant.label} with ${context.plan.contextSql} ends with ${ending.toUpperCase()}, the next transaction on the same connection ` +
        `still reads ${setting} = '${tenant.id}'${visible.total ? ` and sees ${plural(visible.total, 'row')} of ${tenant.label} without setting any tenant` : ''}: the tenant context outlives its transaction.`,
      evidence: {
        sql: [
          `-- on one connection, as a connection pool reuses it for the next request`,
          `begin;`,
          roleLine,
          setterSql(context, tenant),
          `${ending};`,
          `begin;`,
          roleLine,
          `select current_setting(${literal(setting)}, true);  ${lineComment(`still ${literal(tenant.id)}`)}`,
          ...(visible.example ? [`${visible.example};  ${lineComment(`rows of ${tenant.label}, with no tenant set by this transaction`)}`] : []),
          `rollback;`,
        ].join('\n'),
        context: `${describeContext(context, { kind: 'tenant', tenant })}, set by an earlier transaction on the same connection`,
        rowCount: visible.total,
        details: `after rollback the setting reads ${observed.afterRollback === null ? 'NULL' : `'${observed.afterRollback}'`}; after commit it reads ${observed.afterCommit === null ? 'NULL' : `'${observed.afterCommit}'`}${visible.byRelation.length ? `; rows of ${tenant.label} visible with no tenant set: ${visible.byRelation.join(', ')}` : ''}`,
      },
      // Advice on the application's code: the statement it should send, not a change to the database.
      fix: fix([
        comment(`set the tenant for the transaction only (is_local = true): it then ends with the transaction, and reads '' afterwards`),
        appStatement(`select set_config(${literal(setting)}, $1, true);`),
        comment(commentText(`or, with a literal: SET LOCAL ${setting} = '...';`)),
        ...(functionsCalled(context.plan.contextSql).includes('set_config') ? [] : [comment(commentText(`(${context.plan.contextSql} keeps the tenant after the transaction: change what it runs)`))]),
      ]),
    }));
    return findings;
  },
});
