/**
 * Is a function free of effects outside the transaction that calls it? On a database the audit does not
 * own, function-leak calls a function only when this says so: a rolled-back savepoint undoes writes, but
 * not a program run by COPY TO PROGRAM, a session killed by pg_terminate_backend, an advisory lock held by
 * the session, a NOTIFY, a row committed by dblink on another connection, or a sequence advanced.
 *
 * Default deny. SQL and PL/pgSQL bodies are parsed (PostgreSQL's parser) and every statement, expression and
 * function call in them is checked: only SELECT statements without row locks, calling functions that are
 * themselves free of effects (built-ins that are STABLE or IMMUTABLE, a short list of VOLATILE built-ins
 * that only compute a value, and user functions that pass this same test). Dynamic EXECUTE (unless its SQL
 * is a constant that passes), data-modifying statements, COPY, and anything the parser cannot read are
 * effects. Functions in other languages: trusted languages when STABLE or IMMUTABLE; untrusted languages
 * and C never.
 */
import type { FunctionInfo } from '../catalog/types.js';
import { parseStatements, type RawStmt } from './parse.js';
import { checkSql, checkStatements, deny, newWalker, routineVerdict, typeVerdict, type Walker } from './effect-walker.js';
import type { RoutineIndex } from './routine-index.js';

export type EffectVerdict = { free: true } | { free: false; reason: string };

/**
 * Judge each function: free of effects outside the transaction, or why not. One walker per call, so the
 * verdicts of shared helpers are computed once.
 */
export function functionEffects(index: RoutineIndex, functions: FunctionInfo[]): Map<number, EffectVerdict> {
  const walker = newWalker('effects', index);
  const result = new Map<number, EffectVerdict>();
  for (const fn of functions) {
    const routine = index.byOid.get(fn.oid);
    result.set(fn.oid, routine ? routineVerdict(walker, routine) : deny('it is not in pg_proc'));
  }
  return result;
}

/**
 * User SQL (the context SQL, a scenario query) as a live database would run it inside the audit's
 * transaction: free when nothing it reaches acts outside that transaction (see Mode `user`), or why not.
 * `allowSequences`: --allow-sequence-gaps.
 */
export function userSqlEffects(index: RoutineIndex, sql: string, allowSequences: boolean): EffectVerdict {
  return checkSql(newWalker('user', index, allowSequences), sql);
}

/**
 * Judges what may advance a sequence, for one audit: a routine (a trigger function), an expression (a
 * column default) or a type (a domain's default). `free: false` carries how: nextval or setval (directly or
 * through what it calls or writes), or a body that cannot be read.
 */
export class SequenceUse {
  private readonly walker: Walker;

  constructor(private readonly index: RoutineIndex) {
    this.walker = newWalker('sequences', index);
  }

  routine(oid: number): EffectVerdict {
    const routine = this.index.byOid.get(oid);
    return routine ? routineVerdict(this.walker, routine) : deny('its function is not in pg_proc');
  }

  /** A column default the audit does not fill itself: every function it calls counts. */
  expression(expression: string): EffectVerdict {
    let statements: RawStmt[];
    try {
      statements = parseStatements(`SELECT ${expression}`);
    } catch (error) {
      return deny(`its default does not parse (${error instanceof Error ? error.message : String(error)})`);
    }
    return checkStatements(this.walker, statements);
  }

  /** A column's type: a domain whose default or CHECK calls nextval, directly or through a domain under it. */
  type(oid: number): EffectVerdict {
    return typeVerdict(this.walker, oid);
  }
}

/**
 * Judges what a write of the audit (seeding, a write probe) reaches that acts outside the transaction other
 * than a sequence (sequences are SequenceUse's): a trigger, a column default, a CHECK, a column's domain.
 * Writes inside are allowed: the audit's transaction is rolled back.
 */
export class WriteEffects {
  private readonly walker: Walker;

  constructor(private readonly index: RoutineIndex) {
    this.walker = newWalker('user', index, true);
  }

  routine(oid: number): EffectVerdict {
    const routine = this.index.byOid.get(oid);
    return routine ? routineVerdict(this.walker, routine) : deny('its function is not in pg_proc');
  }

  expression(expression: string): EffectVerdict {
    return checkSql(this.walker, `SELECT ${expression}`);
  }

  type(oid: number): EffectVerdict {
    return typeVerdict(this.walker, oid);
  }
}
