import { relationObject, type Finding } from '../../findings/finding.js';
import { comment, fix } from '../../findings/fix.js';
import type { Actor } from '../../seed/actors.js';
import type { Tenant } from '../../seed/ledger.js';
import { describeContext, reproduction, runAs, sourcesOf, visibleTenantIds } from '../context.js';
import { attributeRows } from './read-isolation.js';
import { diagnoseReadLeak } from '../../findings/diagnose.js';
import { plural } from '../../report/text.js';
import { expectedOwnRows, isIndirect, mayHideTenantRows, preparedName, readTargets, shownStatement, type ReadTarget } from '../targets.js';
import { defineProbe, type ProbeContext, type ProbeReport } from '../types.js';
import { commentText } from '../../target/sql.js';

/** What one actor saw on one relation: rows by tenant, before deciding which tenants it had to see in full. */
interface Reading {
  target: ReadTarget;
  rows: number;
  /** Rows of the actor's own tenants, by tenant id. */
  seen: Map<string, number>;
  /** Rows of tenants the actor does not belong to, by tenant id (or by the unseeded value the row carries). */
  foreign: Map<string, number>;
  samples: Record<string, string | null>[];
  /** The result held every row (no LIMIT cut it short) of seeded data: missing rows mean something. */
  complete: boolean;
  error?: string;
}

async function readAs(context: ProbeContext, target: ReadTarget, actor: Actor): Promise<Reading> {
  const { relation, statement } = target;
  const result = await runAs(context, { kind: 'actor', actor }, statement, [], { name: preparedName('read', target) });
  const complete = target.reliable && result.rows.length <= context.scenario.maxRowsPerQuery && !mayHideTenantRows(context, relation.qualified);
  if (result.error) return { target, rows: result.rows.length, seen: new Map(), foreign: new Map(), samples: [], complete: false, error: result.error.message };
  return { target, rows: result.rows.length, complete, ...attributeRows(context, target, result.rows, visibleTenantIds(actor)) };
}

/** Record what the actor saw, given the tenants whose rows it had to see in full; returns those it missed rows of (`tenant A: 3 of 5`). */
function settle(context: ProbeContext, check: string, actor: Actor, reading: Reading, expected: readonly Tenant[]): string[] {
  const { relation, statement } = reading.target;
  const base = { check, relation: relation.qualified, context: actor.label, tenant: actor.tenants[0]?.id ?? null, sql: shownStatement(statement) };
  if (reading.error) {
    context.record({ ...base, outcome: 'error', rows: 0, foreignRows: 0, missingOwnRows: 0, error: reading.error });
    return [];
  }
  const missing: string[] = [];
  let missingRows = 0;
  for (const tenant of reading.complete ? expected : []) {
    const owned = expectedOwnRows(context, relation.qualified, tenant);
    const got = reading.seen.get(tenant.id) ?? 0;
    if (owned !== null && got < owned) {
      missing.push(`${tenant.label}: ${got} of ${owned}`);
      missingRows += owned - got;
    }
  }
  const foreignRows = [...reading.foreign.values()].reduce((sum, count) => sum + count, 0);
  const outcome = foreignRows ? 'leak' : !reading.target.reliable ? 'unreliable' : missingRows ? 'hidden' : 'pass';
  context.record({ ...base, outcome, rows: reading.rows, foreignRows, missingOwnRows: missingRows });
  return missing;
}

function foreignFinding(context: ProbeContext, report: ProbeReport, check: string, actor: Actor, reading: Reading, severity: Finding['severity'], why: string): Finding {
  const { relation, relationPlan, statement } = reading.target;
  const diagnosis = diagnoseReadLeak(context, relation, relationPlan);
  const [foreignTenant, count] = [...reading.foreign][0]!;
  const name = (id: string) => context.ledger.tenant(id)?.label ?? `tenant ${id} (not seeded)`;
  const state = { kind: 'actor' as const, actor };
  return report({
    check,
    severity,
    object: relationObject(relation),
    ...(actor.tenants[0] ? { tenant: actor.tenants[0].id } : {}),
    foreignTenant,
    message: `As the ${actor.label}, ${shownStatement(statement)} returns ${plural(count, 'row')} of ${name(foreignTenant)}${reading.foreign.size > 1 ? ` and rows of ${reading.foreign.size - 1} other tenant${reading.foreign.size > 2 ? 's' : ''}` : ''}: ${why}; ${diagnosis.reason}.`,
    evidence: {
      sql: reproduction(context, state, shownStatement(statement)),
      context: describeContext(context, state),
      rowCount: reading.rows,
      sampleRows: reading.samples,
      details: `the ${actor.label} sees ${[...reading.foreign].map(([id, rows]) => `${rows} of ${name(id)}`).join(', ')}`,
    },
    fix: diagnosis.fix,
    cause: diagnosis.cause,
  });
}

/**
 * Users are not tenants: a user may belong to several tenants, or to none yet. Where the context carries a
 * user and memberships decide what it sees, two more actors read every tenant-owned relation: a user who
 * belongs to two tenants must see exactly the rows of both (when the context also names a current tenant,
 * exactly that tenant's, and never a third's), and a user who belongs to none must see no tenant's rows.
 */
export const membership = defineProbe({
  order: 40,
  meta: {
    id: 'member-of-two-tenants',
    matrix: 'read',
    title: 'A user in two tenants sees a third tenant\'s rows',
    severity: 'critical',
    objectKind: 'table',
    summary: 'A user who belongs to two tenants reads rows of a tenant it does not belong to.',
    example:
      'As the user of tenant A and tenant B, `select * from "public"."clients"` returns 5 rows of tenant C: permissive policy agency_view (using (select count(*) from team_members where user_id = auth.uid()) > 1) does not restrict rows to the current tenant.',
    explanation:
      'With a user context and a membership table, the audit seeds a user who belongs to the first two tenants. As that user, with the context the ' +
      'application sets, the probe reads every tenant-owned relation the role may select from and attributes each row to its tenant. A row of any ' +
      'tenant the user does not belong to is a leak: critical on a table, high on a partition, child or view. Policies that special-case users with ' +
      'several memberships, or that pick "the" membership with LIMIT 1, are what this finds and what single-tenant users never show.',
    precondition:
      'Critical: the context carries a user and a membership table links users to tenants; as a seeded user who belongs to two ' +
      'tenants, a read of a table returns rows of a tenant it does not belong to. High when the relation read is a partition, ' +
      'inheritance child, view or materialized view queried directly.',
  },
  related: [
    {
      id: 'no-membership-user',
      matrix: 'read',
      title: 'A user who belongs to no tenant sees tenant rows',
      severity: 'high',
      objectKind: 'table',
      summary: 'A signed-in user without any membership reads rows of tenants.',
      example:
        'As the user of no tenant, `select * from "public"."projects"` returns 5 rows of tenant A: permissive policy onboarding (using (not exists (select 1 from team_members where user_id = auth.uid()) or ...)) lets a user without a team read every team.',
      explanation:
        'The user-level missing context: a user who has signed up but joined no tenant (or was removed from every tenant) is seeded without memberships. ' +
        'Any tenant row it can read is a leak (high: every tenant\'s data is open to anyone who can create an account).',
      precondition:
        'High: as a seeded user with no membership at all (anyone who can create an account), a read of a tenant-owned relation ' +
        'returns tenant rows: the user-level missing context fails open.',
    },
    {
      id: 'member-rows-hidden',
      matrix: 'read',
      title: 'A user in two tenants misses rows of one of them',
      severity: 'low',
      objectKind: 'table',
      summary: 'A user who belongs to two tenants sees fewer rows of its tenants than they own.',
      example:
        'As the user of tenant A and tenant B, `select * from "public"."documents"` returns 0 of tenant B\'s 5 rows: policy member_docs (using (team_id = (select team_id from team_members where user_id = auth.uid() limit 1))) reads only one membership.',
      explanation:
        'A policy that reads one membership of the user (LIMIT 1, a scalar sub-select, a profile\'s single team column) hides the other tenants of a user ' +
        'who belongs to several: not a leak, but the application is broken for exactly those users, and the same policy often picks the wrong tenant.',
      precondition:
        'Low: as a user who belongs to two tenants, a read misses rows of a tenant it belongs to (a policy reads only one membership) ' +
        'while no other tenant\'s row is seen: the application is broken for those users, nothing leaks.',
    },
  ],
  split: 'whole',
  async run(context, report) {
    const actors = context.actors;
    if (!actors?.multi && !actors?.outsider) return [];
    const findings: Finding[] = [];
    const targets = readTargets(context, (relation) => sourcesOf(context, relation));
    const severityOf = (target: ReadTarget) => (isIndirect(target.relation) ? 'high' : 'critical');
    const multi = actors.multi;
    if (multi) {
      const readings: Reading[] = [];
      for (const target of targets) readings.push(await readAs(context, target, multi));
      // The user works in one tenant at a time when the context names a current tenant ($tenant beside $user)
      // and no relation showed it the second tenant's rows; otherwise it must see both tenants' rows everywhere.
      const second = multi.tenants[1]!;
      const scoped = context.plan.contextParameters.includes('tenant') && !readings.some((reading) => reading.seen.has(second.id));
      const expected = scoped ? multi.tenants.slice(0, 1) : multi.tenants;
      for (const reading of readings) {
        const missing = settle(context, this.meta.id, multi, reading, expected);
        if (reading.foreign.size) {
          findings.push(foreignFinding(context, report, this.meta.id, multi, reading, severityOf(reading.target), `the user belongs to ${multi.tenants.map((tenant) => tenant.label).join(' and ')} only`));
        } else if (missing.length) {
          const state = { kind: 'actor' as const, actor: multi };
          const shown = shownStatement(reading.target.statement);
          findings.push(report({
            check: 'member-rows-hidden',
            severity: 'low',
            object: relationObject(reading.target.relation),
            tenant: multi.tenants[0]!.id,
            message: `As the ${multi.label}, ${shown} misses rows of its ${scoped ? 'current tenant' : 'tenants'} (${missing.join('; ')}): a policy reads only one of the user's memberships.`,
            evidence: {
              sql: reproduction(context, state, shown),
              context: describeContext(context, state),
              rowCount: reading.rows,
              details: `expected every row of ${expected.map((tenant) => tenant.label).join(' and ')}${scoped ? '' : ' (other relations show this user the rows of both)'}; ${missing.join('; ')}`,
            },
            fix: fix([
              comment(`the policies on ${commentText(reading.target.relation.qualified)} must accept a row of any tenant the user belongs to, e.g.`),
              comment('using (<tenant column> in (select <tenant> from <memberships> where <user> = <current user>))'),
            ]),
          }));
        }
      }
    }
    const outsider = actors.outsider;
    if (outsider) {
      for (const target of targets) {
        const reading = await readAs(context, target, outsider);
        settle(context, 'no-membership-user', outsider, reading, []);
        if (reading.foreign.size) findings.push(foreignFinding(context, report, 'no-membership-user', outsider, reading, 'high', 'the user belongs to no tenant'));
      }
    }
    return findings;
  },
});
