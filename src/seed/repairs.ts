import type { CheckModel } from '../analysis/constraints.js';
import { relationOf } from '../catalog/lookup.js';
import type { Catalog, Relation } from '../catalog/types.js';
import { ident, textArrayLiteral } from '../target/sql.js';
import type { RowPlanner } from './planner.js';
import { evaluationType, type ColumnSpec } from './shapes.js';
import { stopOn, type SeedState } from './state.js';

/** What the constraint errors of a relation taught the seeder. */
export interface Learned {
  /** Columns whose values must differ from row to row (a unique index the catalog does not tie to them). */
  unique: Set<string>;
  /** Columns that must be filled (their default gives no value). */
  fill: Set<string>;
  /** Checks whose candidates PostgreSQL judges from now on. */
  verify: Set<string>;
}

/** What the seeder learned from constraint errors, per relation, so that a retry repairs them. */
export class Lessons {
  private readonly learned = new Map<string, Learned>();

  constructor(private readonly catalog: Catalog) {}

  /** What the relation's errors taught so far, if anything. */
  of(relation: Relation): Learned | undefined {
    return this.learned.get(relation.qualified);
  }

  /**
   * Read a constraint error so the retry repairs it: a unique violation names its key columns (also for
   * expression indexes such as lower(email), which the catalog does not tie to a column); a NOT NULL
   * violation names a column whose default does not produce a value; a check violation names a check
   * whose candidates PostgreSQL must judge from now on.
   */
  learn(relation: Relation, error: unknown): void {
    const failure = error as { code?: string; column?: string; constraint?: string; schema?: string; table?: string };
    const learned = this.learnedFor(relation);
    if (failure.code === '23505') for (const column of this.uniqueKeyColumns(relation, failure)) learned.unique.add(column);
    if (failure.code === '23502' && failure.column) learned.fill.add(failure.column);
    if ((failure.code === '23514' || failure.code === '23P01') && failure.constraint) learned.verify.add(failure.constraint);
  }

  /** Checks whose candidates PostgreSQL judges before the insert. */
  checksToJudge(relation: Relation, planner: RowPlanner): CheckModel[] {
    const verify = this.learned.get(relation.qualified)?.verify;
    return planner.checks.filter((check) => planner.needsDatabase.includes(check) || verify?.has(check.name));
  }

  /**
   * The columns of `relation` that the unique index a violation names (`constraint`, on `schema`.`table`, which
   * may be a partition of `relation`) reads: its key columns and, from the index's definition read with the
   * parser, the columns inside key expressions. None when the catalog has no such index.
   */
  private uniqueKeyColumns(relation: Relation, failure: { constraint?: string; schema?: string; table?: string }): string[] {
    const table = failure.schema && failure.table ? relationOf(this.catalog, `${failure.schema}.${failure.table}`) : undefined;
    const index = table?.indexes.find((candidate) => candidate.name === failure.constraint);
    if (!index) return [];
    const named = new Set(index.mentions);
    return relation.columns.filter((column) => named.has(column.name)).map((column) => column.name);
  }

  private learnedFor(relation: Relation): Learned {
    let learned = this.learned.get(relation.qualified);
    if (!learned) {
      learned = { unique: new Set<string>(), fill: new Set<string>(), verify: new Set<string>() };
      this.learned.set(relation.qualified, learned);
    }
    return learned;
  }
}

/**
 * Ask PostgreSQL which candidate rows meet the checks the planner cannot read (or that failed before):
 * evaluates each check's condition over the candidates, inserting nothing. Returns, per row, the name of
 * the first check it fails, or null.
 */
export async function judge(state: SeedState, relation: Relation, columns: ColumnSpec[], rows: (string | null)[][], checks: CheckModel[]): Promise<(string | null)[]> {
  const readable = checks.filter((check) => check.expression !== null);
  if (!readable.length || !rows.length) return rows.map(() => null);
  const filled = new Set(columns.map(({ column }) => column.name));
  const others = relation.columns.filter((column) => !filled.has(column.name));
  const sql =
    `select ${readable.map((check, index) => `((${check.expression}) is not false) as ok${index}`).join(', ')} from (` +
    `select u.ord as "rls audit ord", ${columns.map(({ column }, index) => `u.c${index + 1}::${evaluationType(column)} as ${ident(column.name)}`).join(', ')}` +
    `${others.map((column) => `, null::${evaluationType(column)} as ${ident(column.name)}`).join('')} ` +
    `from unnest($1::int[], ${columns.map((_, index) => `$${index + 2}::text[]`).join(', ')}) as u(ord, ${columns.map((_, index) => `c${index + 1}`).join(', ')})) as candidate order by "rls audit ord"`;
  try {
    state.statements += 1;
    const result = await state.session.savepoint(() => state.session.query(sql, [rows.map((_, index) => index), ...columns.map((_, index) => textArrayLiteral(rows.map((row) => row[index] ?? null)))]));
    return result.rows.map((row) => {
      const failed = readable.findIndex((_, index) => row[`ok${index}`] !== 't' && row[`ok${index}`] !== 'true');
      return failed < 0 ? null : readable[failed]!.name;
    });
  } catch (error) {
    stopOn(state.session, error);
    // A candidate that does not even cast: let the insert report it.
    return rows.map(() => null);
  }
}
