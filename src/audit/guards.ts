/** Before any probe: the user SQL checked (and refused on a live database), the context SQL parsed as the role, the context confirmed on seeded data. */
import { loadParser } from '../analysis/index.js';
import type { Catalog } from '../catalog/types.js';
import { AuditError, errorMessage } from '../errors.js';
import type { TenancyPlan } from '../plan/tenancy.js';
import { planNoteText, type PlanNote } from '../plan/notes.js';
import type { ProbeContext } from '../probes/types.js';
import type { Scenario } from '../scenario/schema.js';
import { AuditSession } from '../target/session.js';
import { contextCall, userSqlProblem } from '../analysis/statements.js';
import { withoutTerminator } from '../analysis/sql-text.js';
import { userSqlEffects } from '../analysis/effects.js';
import { loadRoutineIndex } from '../analysis/routine-index.js';
import type { InconclusiveReason } from '../findings/verdict.js';
import { ownRowsPrecheck } from '../probes/precheck.js';

import type { Prepared } from './prepare.js';

/**
 * The application's context setter must parse as the application role before any probe relies on it.
 * PREPARE analyses it (names, types) without running it: running it would define the setting on this
 * connection, and the "never set" probes need a connection on which nothing has set it yet. A CALL cannot
 * be prepared: the procedure it names must exist with that many arguments, and the role may execute it.
 */
export async function checkContextSql(session: AuditSession, plan: TenancyPlan): Promise<void> {
  if (plan.roleSwitch) return;
  const failed = (why: string) =>
    new AuditError(
      `the context SQL failed as role ${plan.role} (${plan.contextSql}): ${why}. Give the SQL the application runs with --context-sql, using $tenant (or $1) for the tenant id, $user for the user id and $role for the tenant's role.`,
    );
  const call = contextCall(plan.contextSql);
  if (call) {
    const { rows } = await session.query(
      `select count(*)::int as n from pg_proc p
       join pg_namespace n on n.oid = p.pronamespace
       where p.prokind = 'p' and p.proname = $1 and ($2::text is null and n.nspname = any(current_schemas(true)) or n.nspname = $2)
         and p.pronargs >= $3::int and p.pronargs - p.pronargdefaults <= $3::int and has_function_privilege($4, p.oid, 'EXECUTE')`,
      [call.name, call.schema, call.arguments, plan.role],
    );
    if (Number(rows[0]?.n ?? 0) === 0) throw failed(`no procedure ${call.schema ? `${call.schema}.` : ''}${call.name} taking ${call.arguments} argument(s) that ${plan.role} may execute`);
    return;
  }
  try {
    await session.savepoint(
      async () => {
        await session.query(`prepare rls_audit_context(${plan.contextParameters.map(() => 'text').join(', ')}) as ${withoutTerminator(plan.contextSql)}`);
        await session.query('deallocate rls_audit_context');
      },
      false,
      [session.roleStatement(plan.role)],
    );
  } catch (error) {
    throw failed(errorMessage(error));
  }
}

/**
 * User SQL runs inside the audit's transaction: the context setter and each named query must be exactly
 * one statement of a kind that cannot end or reconfigure that transaction. Checked before anything runs.
 * On a live database, everything the SQL reaches (functions, procedures, domain CHECKs, casts, operators,
 * defaults and triggers of what it writes) must also be free of effects outside the transaction
 * (analysis/effects.ts): dblink, advisory locks, NOTIFY, COPY, settings other than the application's own,
 * sequences (unless --allow-sequence-gaps) and whatever cannot be read are refused.
 */
export async function checkUserSql(scenario: Scenario, plan: TenancyPlan, live: { session: AuditSession; catalog: Catalog } | null): Promise<void> {
  await loadParser();
  const contextProblem = plan.roleSwitch ? null : userSqlProblem(plan.contextSql, 'context');
  if (contextProblem) {
    throw new AuditError(`the context SQL (${plan.contextSql}) cannot run inside the audit's transaction: ${contextProblem}. Give one statement that sets the tenant, e.g. select set_config('app.current_tenant', $1, true).`);
  }
  for (const query of scenario.queries) {
    const problem = userSqlProblem(query.sql, 'query');
    if (problem) throw new AuditError(`the query ${query.name} (${query.sql}) cannot run inside the audit's transaction: ${problem}. Give one SELECT, INSERT, UPDATE, DELETE or MERGE.`);
  }
  if (!live) return;
  const index = await loadRoutineIndex(live.session, live.catalog.serverVersionNum);
  const hint = 'On a database the audit does not own, user SQL may not act outside the audit\'s transaction; audit a copy instead (--schema-from URL), where it may';
  if (!plan.roleSwitch) {
    const verdict = userSqlEffects(index, plan.contextSql, scenario.allowSequenceGaps);
    if (!verdict.free) throw new AuditError(`the context SQL (${plan.contextSql}) is refused on this live database: ${verdict.reason}. ${hint}.`);
  }
  for (const query of scenario.queries) {
    const verdict = userSqlEffects(index, query.sql, scenario.allowSequenceGaps);
    if (!verdict.free) throw new AuditError(`the query ${query.name} (${query.sql}) is refused on this live database: ${verdict.reason}. ${hint}.`);
  }
}
/**
 * Discovery by evidence: the planned context must let every tenant see its own seeded rows. When it lets
 * none see any, each other context the policies could mean (another setting they compare with a row column)
 * is tried on the same seeded data, and the first under which every tenant sees its own rows is kept. What
 * was chosen and why goes into the notes; the precheck's reasons for the context kept are returned.
 */
export async function confirmContext(context: ProbeContext, prepared: Prepared, log: (line: string) => void, sessions: AuditSession[]): Promise<InconclusiveReason[]> {
  const planned = context.plan;
  const first = await ownRowsPrecheck(context, { sessions });
  if (!first.blindEverywhere || !planned.contextAlternatives.length) return first.reasons;
  for (const alternative of planned.contextAlternatives) {
    const candidate: TenancyPlan = { ...planned, setting: alternative.setting, contextSql: alternative.contextSql, contextParameters: alternative.contextParameters, contextAlternatives: [] };
    context.plan = candidate;
    const trial = await ownRowsPrecheck(context, { writes: false, sessions });
    if (!trial.reasons.length) {
      const note: PlanNote = { kind: 'context', source: 'seeded-data', setting: alternative.setting, tables: trial.checked, planned: planned.setting };
      candidate.notes = [...planned.notes, note];
      prepared.plan = candidate;
      log(planNoteText(note));
      return (await ownRowsPrecheck(context, { sessions })).reasons;
    }
  }
  context.plan = planned;
  return [
    ...first.reasons.map((reason) => ({ ...reason, reason: `${reason.reason}; also tried ${planned.contextAlternatives.map((alternative) => alternative.setting).join(', ')}: no tenant saw its own rows either` })),
  ];
}
