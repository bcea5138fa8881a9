import type { Analysis } from '../analysis/model.js';
import { columnType } from '../catalog/lookup.js';
import type { Catalog, Relation } from '../catalog/types.js';
import type { RelationPlan } from '../plan/tenancy.js';
import type { AuditSession, RawRow } from '../target/session.js';
import { ident, relationIdent } from '../target/sql.js';
import { contextStatementOf } from './actors.js';
import type { Ledger, LedgerRow, Tenant } from './ledger.js';
import type { SeedResult } from './outcome.js';
import type { Partitions } from './partitions.js';
import { stopOn, type SeedState } from './state.js';

/**
 * Relations with an enabled insert trigger whose function reads the tenant setting, directly or through a
 * function it calls (as the analysis read their bodies), and the names of those triggers.
 */
function contextTriggers(catalog: Catalog, analysis: Analysis, setting: string): Map<string, string[]> {
  const bodies = new Map(analysis.functions.map((body) => [body.name, body]));
  const byOid = new Map(catalog.functions.map((fn) => [fn.oid, fn]));
  const named = (call: string) => catalog.functions.filter((fn) => call === fn.name.toLowerCase() || call === `${fn.schema}.${fn.name}`.toLowerCase());
  const reads = (signature: string, seen: Set<string>): boolean => {
    if (seen.has(signature)) return false;
    seen.add(signature);
    const body = bodies.get(signature);
    if (!body) return false;
    return body.settings.includes(setting) || body.calls.some((call) => named(call).some((fn) => reads(fn.signature, seen)));
  };
  const found = new Map<string, string[]>();
  for (const trigger of catalog.triggers) {
    if (!trigger.enabled || !trigger.events.includes('INSERT')) continue;
    const fn = byOid.get(trigger.functionOid);
    if (!fn || !reads(fn.signature, new Set())) continue;
    found.set(trigger.relation, [...(found.get(trigger.relation) ?? []), trigger.name]);
  }
  return found;
}

/**
 * The tenant context while seeding. Relations with an insert trigger that reads the tenant setting
 * (`plan.setting`) get their rows tenant by tenant, with that tenant's context set as the application sets
 * it (see Seeder.seedRows).
 */
export class TenantContext {
  /** The relations with such triggers, and the names of the triggers. */
  private readonly contextual: Map<string, string[]>;
  /** Whether the seeder set the tenant context on the session (the never-set state is then gone there). */
  set = false;

  constructor(
    private readonly state: SeedState,
    private readonly partitions: Partitions,
    analysis: Analysis,
    /** Whether the tenant context may be set while seeding (see contextual). */
    private readonly setContext: boolean,
  ) {
    this.contextual = contextTriggers(state.catalog, analysis, state.plan.setting);
  }

  /** The insert triggers of the relation (or of its partitions) that read the tenant setting. */
  triggers(relation: Relation): string[] {
    return [relation.qualified, ...this.partitions.leavesOf(relation.qualified).map((leaf) => leaf.qualified)].flatMap((name) => this.contextual.get(name) ?? []);
  }

  /**
   * Why the tenant context cannot be set while seeding the relation, whose insert triggers read it, or null
   * when it can: only for actors that are tenants (a user or role per tenant does not exist yet), and only
   * where the audit may set it (on a cluster of its own; see `setContext`).
   */
  refusal(relation: Relation): { reason: string; hint: string } | null {
    const triggers = this.triggers(relation);
    if (!triggers.length) return null;
    const plan = this.state.plan;
    const what = `insert trigger${triggers.length > 1 ? 's' : ''} ${[...new Set(triggers)].join(', ')} read${triggers.length > 1 ? '' : 's'} ${plan.setting}`;
    if (plan.roleSwitch || plan.contextParameters.some((parameter) => parameter !== 'tenant')) {
      return { reason: `${what}, and the context names a user or role, which does not exist while seeding`, hint: 'seed these rows in the scenario\'s setup, or accept the relation in `unseeded`' };
    }
    if (!this.setContext) {
      return { reason: `${what}; on a database that is not the audit's own, seeding does not set the tenant context (the never-set state would be lost)`, hint: 'audit a copy with --schema-from URL' };
    }
    return null;
  }

  /** Set `tenant`'s context as the application does (its context SQL, checked to leave the transaction alone). */
  async enter(relation: Relation, tenant: Tenant | null): Promise<void> {
    if (!tenant || !this.triggers(relation).length || this.refusal(relation)) return;
    const actor = { label: tenant.label, tenants: [tenant], user: null, role: null };
    const statement = contextStatementOf(this.state.plan, actor, tenant.id);
    this.state.statements += 1;
    this.set = true;
    await this.state.session.userQuery(statement.text, statement.values, 'the context SQL');
  }
}

// -------------------------------------------------------------------------------------------------
// Rows made by triggers

/**
 * Rows of a tenant-owned relation that the seeder did not insert but that belong to its tenants (a trigger
 * made them while other rows went in): added to the ledger. Only our tenants' rows can match: their ids are new.
 */
export async function adopt(state: SeedState, relation: Relation, relationPlan: RelationPlan, result: SeedResult): Promise<void> {
  let adopted: LedgerRow[] | null;
  try {
    adopted = await rowsMadeByTriggers(state.session, relation, relationPlan, state.ledger, state.ledger.tenants.map((tenant) => tenant.id));
  } catch (error) {
    stopOn(state.session, error);
    return;
  }
  if (adopted === null) return;
  state.statements += 1;
  if (!adopted.length) return;
  state.ledger.add(relation.qualified, relation.primaryKey, adopted);
  result.adopted += adopted.length;
}

/**
 * Rows of a tenant-owned relation that are not in the ledger but belong to one of the `owners` tenants (a
 * trigger made them while other rows went in), attributed by the tenant column or by the first foreign key of
 * the relation's path (to a parent in the ledger). Only read, in a savepoint: the caller adopts them into the
 * ledger. Null when there was nothing to ask (no tenant column, no parent in the ledger).
 */
export async function rowsMadeByTriggers(session: AuditSession, relation: Relation, relationPlan: RelationPlan, ledger: Ledger, owners: readonly string[]): Promise<LedgerRow[] | null> {
  if (relationPlan.tenancy === 'shared' || !owners.length) return null;
  const typeOf = (owner: Relation, name: string) => columnType(owner, name) ?? 'text';
  const select = relation.columns.map((column) => `${ident(column.name)}::text as ${ident(column.name)}`).join(', ');
  const wanted = new Set(owners);
  let sql: string;
  let params: unknown[];
  let attribute: (row: RawRow) => string | null;
  if (relationPlan.tenantColumn) {
    const column = relationPlan.tenantColumn;
    // Compared in the column's own type, so that an index on the tenant column serves (not ::text, which reads every row).
    sql = `select ${select} from ${relationIdent(relation)} where ${ident(column)} = any($1::${typeOf(relation, column)}[]) limit 10000`;
    params = [[...wanted]];
    attribute = (row) => row[column] ?? null;
  } else if (relationPlan.path?.length) {
    const hop = relationPlan.path[0]!;
    const parents = ledger.rows(hop.references).filter((parent) => parent.tenant !== null && wanted.has(parent.tenant));
    if (!parents.length) return null;
    const owner = new Map(parents.map((parent) => [hop.referencedColumns.map((column) => parent.values[column] ?? '').join('\u0001'), parent.tenant]));
    sql = `select ${select} from ${relationIdent(relation)} where (${hop.columns.map((column) => ident(column)).join(', ')}) in (select * from unnest(${hop.columns.map((column, index) => `$${index + 1}::${typeOf(relation, column)}[]`).join(', ')})) limit 10000`;
    params = hop.referencedColumns.map((column) => parents.map((parent) => parent.values[column] ?? null));
    attribute = (row) => owner.get(hop.columns.map((column) => row[column] ?? '').join('\u0001')) ?? null;
  } else return null;
  const rows = (await session.savepoint(() => session.query(sql, params), true)).rows;
  const known = relation.primaryKey?.length ? null : new Set(ledger.rows(relation.qualified).map((row) => JSON.stringify(row.values)));
  const adopted: LedgerRow[] = [];
  for (const row of rows) {
    if (known ? known.has(JSON.stringify(row)) : ledger.tenantByKey(relation.qualified, row) !== undefined) continue;
    const tenant = attribute(row);
    if (tenant === null || !wanted.has(tenant)) continue;
    adopted.push({ tenant, values: row });
  }
  return adopted;
}
