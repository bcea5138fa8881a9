/**
 * Plans whole rows of one relation so that they satisfy its CHECK constraints (and its domains' checks,
 * and a partition's bounds): per row, one alternative of every check is chosen that agrees with the values
 * already fixed (tenant, foreign keys), `num_nonnulls` decides which columns are set, values are generated
 * inside the rules, and comparisons between columns are met by ordering the values (`due_on >= issued_on`).
 * What the planner cannot read (opaque atoms) is left to PostgreSQL: see `needsDatabase`.
 */
import type { Faker } from '@faker-js/faker';
import { magnitudeBound, type Atom, type CheckModel, type Comparison } from '../analysis/constraints.js';
import type { Column } from '../catalog/types.js';
import { applyAtom, copyRules, emptyRules, epochOf, holds, isNumeric, isTemporal, type ColumnRules } from './column-rules.js';
import { checksOf, columnValue, numberRange, typeLimit } from './values.js';
import type { Relation } from '../catalog/types.js';

type RowAtom = Extract<Atom, { kind: 'columns' } | { kind: 'nonnulls' }>;

export interface RowContext {
  fixed: Map<string, string | null>;
  /** Fixed columns a check may set to NULL instead (nullable foreign keys, for `num_nonnulls` and `x IS NULL`). */
  nullable?: Set<string>;
  /** Next value of the run-wide serial (unique values). */
  serial: () => number;
  canary: string | null;
}

const FLIP: Record<Comparison, Comparison> = { '=': '=', '<>': '<>', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };

/** Whether a fixed value meets a single-column atom (NULL meets every CHECK comparison). */
function fixedMeets(column: Column, value: string | null, atom: Atom): boolean {
  switch (atom.kind) {
    case 'null':
      return (value === null) === atom.isNull;
    case 'compare':
      return value === null || holds(column, value, atom.op, atom.value);
    case 'in':
      return value === null || atom.values.includes(value) !== atom.negated;
    case 'boolean':
      return value === null || value.startsWith('t') === atom.value;
    default:
      return true;
  }
}

/** Milliseconds of a simple interval literal (`1 day`, `2 hours`, `01:00:00`); NaN otherwise. */
function intervalMs(text: string): number {
  const clock = /^(-?)(\d+):(\d\d)(?::(\d\d))?$/.exec(text.trim());
  if (clock) return (clock[1] ? -1 : 1) * ((Number(clock[2]) * 60 + Number(clock[3])) * 60 + Number(clock[4] ?? 0)) * 1000;
  const units: Record<string, number> = { sec: 1e3, second: 1e3, min: 6e4, minute: 6e4, hour: 36e5, day: 864e5, week: 6048e5, mon: 2592e6, month: 2592e6, year: 31536e6 };
  let total = 0;
  let matched = false;
  for (const part of text.trim().matchAll(/(-?\d+(?:\.\d+)?)\s*([a-z]+)/gi)) {
    const unit = units[part[2]!.toLowerCase().replace(/s$/, '')];
    if (unit === undefined) return NaN;
    total += Number(part[1]) * unit;
    matched = true;
  }
  return matched ? total : NaN;
}

/** `value + sign * offset` in the column's type; null when the types cannot be added here. */
function shifted(column: Column, value: string, offset: { sign: 1 | -1; value: string } | null, units: number): string | null {
  if (isNumeric(column)) {
    const integer = ['int2', 'int4', 'int8'].includes(column.baseType);
    const step = integer ? 1 : 10 ** -Math.min(column.numericScale ?? 2, 6);
    const base = Number(value) + (offset ? offset.sign * Number(offset.value) : 0) + units * step;
    if (!Number.isFinite(base)) return null;
    return integer ? String(Math.round(base)) : base.toFixed(Math.min(column.numericScale ?? 2, 6));
  }
  if (isTemporal(column)) {
    const delta = offset ? offset.sign * (/^-?\d+$/.test(offset.value) ? Number(offset.value) * 864e5 : intervalMs(offset.value)) : 0;
    const base = epochOf(value) + delta + units * (column.baseType === 'date' ? 864e5 : 1000);
    if (!Number.isFinite(base)) return null;
    const iso = new Date(base).toISOString();
    return column.baseType === 'date' ? iso.slice(0, 10) : iso;
  }
  if (offset === null && units >= 0) return units === 0 ? value : `${value}${'z'.repeat(units)}`;
  return null;
}

export class RowPlanner {
  readonly checks: CheckModel[];
  /** Checks none of whose alternatives the planner can fully read: candidate rows go to PostgreSQL first. */
  readonly needsDatabase: CheckModel[];
  private readonly byName: Map<string, Column>;
  private readonly baseRules: Map<string, ColumnRules>;
  private readonly rowAtoms: RowAtom[] = [];
  /** Checks with several alternatives, chosen per row. */
  private readonly choices: CheckModel[] = [];

  /**
   * @param fill the columns the seeder gives values, in insert order
   * @param unique columns whose values must be unique
   * @param pinned columns whose values must not be moved to order columns (partition keys)
   * @param extra atoms that hold for every row (a partition's bounds)
   */
  constructor(
    relation: Relation,
    private readonly fill: Column[],
    private readonly unique: Set<string>,
    private readonly pinned: Set<string> = new Set(),
    extra: Atom[] = [],
  ) {
    this.checks = checksOf(relation);
    this.byName = new Map(relation.columns.map((column) => [column.name, column]));
    this.baseRules = new Map(fill.map((column) => [column.name, emptyRules(column)]));
    this.apply(this.baseRules, extra);
    this.needsDatabase = this.checks.filter((check) => check.alternatives.length > 0 && check.alternatives.every((atoms) => atoms.some((atom) => atom.kind === 'opaque')));
    for (const check of this.checks) {
      const readable = check.alternatives.filter((atoms) => !atoms.some((atom) => atom.kind === 'opaque'));
      if (readable.length === 1) this.apply(this.baseRules, readable[0]!);
      else if (readable.length > 1) this.choices.push({ ...check, alternatives: readable });
    }
    for (const column of relation.columns) if (column.generated && column.default) this.boundInputs(column, column.default);
  }

  /**
   * Keep the inputs of a generated column small enough for its value to fit its type: `quantity *
   * unit_price_cents` in bigint overflows when both are drawn from all of bigint. The numeric columns the
   * seeder fills get one common cap, the largest under which the expression's bound stays within half the
   * type's range; never below what their CHECKs demand.
   */
  private boundInputs(generated: Column, expression: string): void {
    const limit = typeLimit(generated);
    if (limit === null) return;
    const read = new Set<string>();
    if (magnitudeBound(expression, (name) => (read.add(name), 1)) === null) return;
    // The columns the seeder fills are capped; the others (defaults, identities) count with their type's range.
    const widest = (name: string): number | null => {
      const column = this.byName.get(name);
      if (!column || !isNumeric(column)) return null;
      const rules = this.baseRules.get(name);
      if (!rules) return typeLimit(column) ?? Infinity;
      const [min, max] = numberRange(column, rules);
      return Math.max(Math.abs(min), Math.abs(max));
    };
    const fits = (cap: number) => {
      const bound = magnitudeBound(expression, (name) => {
        const value = widest(name);
        return value === null ? null : this.baseRules.has(name) ? Math.min(value, cap) : value;
      });
      return bound !== null && bound <= limit / 2;
    };
    if (fits(Infinity) || !fits(1)) return;
    let low = 1;
    let high = 1e18;
    for (let step = 0; step < 200 && high / low > 1.01; step += 1) {
      const middle = Math.sqrt(low * high);
      if (fits(middle)) low = middle;
      else high = middle;
    }
    const cap = Math.floor(low);
    for (const name of read) {
      const rules = this.baseRules.get(name);
      const column = this.byName.get(name);
      if (!rules || !column || (widest(name) ?? 0) <= cap) continue;
      const [min] = numberRange(column, rules);
      if (min > cap) continue;
      rules.max = Math.min(rules.max ?? Infinity, cap);
      if (min < -cap) rules.min = -cap;
    }
  }

  /** Apply atoms to a rules map: single-column atoms to the column's rules; row atoms to the row list. False on a contradiction. */
  private apply(rules: Map<string, ColumnRules>, atoms: Atom[], rowAtoms: RowAtom[] = this.rowAtoms): boolean {
    let ok = true;
    for (const atom of atoms) {
      if (atom.kind === 'columns' || atom.kind === 'nonnulls') {
        rowAtoms.push(atom);
        continue;
      }
      if (atom.kind === 'opaque') continue;
      const columnRules = rules.get(atom.column);
      const column = this.byName.get(atom.column);
      if (!columnRules || !column) continue;
      ok = applyAtom(columnRules, column, atom) && ok;
    }
    return ok;
  }

  /** One row of values for the `fill` columns, in order. */
  row(faker: Faker, context: RowContext): (string | null)[] {
    const serial = context.serial();
    let rules = this.baseRules;
    let rowAtoms = this.rowAtoms;
    if (this.choices.length || this.rowAtoms.some((atom) => atom.kind === 'nonnulls')) {
      rules = new Map([...this.baseRules].map(([name, value]) => [name, copyRules(value)]));
      rowAtoms = [...this.rowAtoms];
      const nullable = context.nullable ?? new Set<string>();
      const fixed = nullable.size ? new Map([...context.fixed].filter(([name]) => !nullable.has(name))) : context.fixed;
      for (const check of this.choices) this.choose(check, serial, rules, rowAtoms, fixed);
      for (const atom of rowAtoms) if (atom.kind === 'nonnulls') this.decideNulls(atom, serial, rules, fixed);
    }
    const values = new Map<string, string | null>();
    for (const column of this.fill) {
      if (context.fixed.has(column.name)) {
        values.set(column.name, context.nullable?.has(column.name) && rules.get(column.name)?.mustBeNull ? null : (context.fixed.get(column.name) ?? null));
        continue;
      }
      const columnRules = rules.get(column.name)!;
      const isUnique = this.unique.has(column.name);
      const value = columnValue(faker, column, columnRules, { serial: isUnique ? context.serial() : serial, canary: context.canary, unique: isUnique });
      values.set(column.name, value === null && !column.notNull ? null : value);
    }
    for (let pass = 0; pass < 3; pass += 1) {
      let changed = false;
      for (const atom of rowAtoms) if (atom.kind === 'columns' && this.order(atom, values, context.fixed, faker)) changed = true;
      if (!changed) break;
    }
    return this.fill.map((column) => values.get(column.name) ?? null);
  }

  /** Pick the first alternative (rotated per row, for variety) that agrees with the fixed values. */
  private choose(check: CheckModel, serial: number, rules: Map<string, ColumnRules>, rowAtoms: RowAtom[], fixed: Map<string, string | null>): void {
    const count = check.alternatives.length;
    for (let step = 0; step < count; step += 1) {
      const atoms = check.alternatives[(serial + step) % count]!;
      const agrees = atoms.every((atom) => {
        if (!('column' in atom) || !fixed.has(atom.column)) return true;
        const column = this.byName.get(atom.column);
        return !column || fixedMeets(column, fixed.get(atom.column) ?? null, atom);
      });
      if (!agrees) continue;
      const trial = new Map([...rules].map(([name, value]) => [name, copyRules(value)]));
      const trialAtoms: RowAtom[] = [];
      if (!this.apply(trial, atoms.filter((atom) => !('column' in atom) || !fixed.has(atom.column)), trialAtoms)) continue;
      for (const [name, value] of trial) rules.set(name, value);
      rowAtoms.push(...trialAtoms);
      return;
    }
  }

  /** Choose which columns of `num_nonnulls(...) op n` are set: the fixed and NOT NULL ones, then others in rotation. */
  private decideNulls(atom: Extract<Atom, { kind: 'nonnulls' }>, serial: number, rules: Map<string, ColumnRules>, fixed: Map<string, string | null>): void {
    const mandatory = atom.columns.filter((name) => (fixed.has(name) ? fixed.get(name) !== null : this.byName.get(name)?.notNull || rules.get(name)?.mustBeSet));
    const optional = atom.columns.filter((name) => !mandatory.includes(name) && !fixed.has(name));
    const satisfies = (k: number) => {
      switch (atom.op) {
        case '=': return k === atom.count;
        case '<>': return k !== atom.count;
        case '<': return k < atom.count;
        case '<=': return k <= atom.count;
        case '>': return k > atom.count;
        case '>=': return k >= atom.count;
      }
    };
    let target = mandatory.length;
    while (target <= mandatory.length + optional.length && !satisfies(target)) target += 1;
    if (target > mandatory.length + optional.length) return;
    const rotated = optional.map((_, index) => optional[(serial + index) % optional.length]!);
    const chosen = new Set(rotated.slice(0, target - mandatory.length));
    for (const name of optional) {
      const columnRules = rules.get(name);
      if (!columnRules) continue;
      if (chosen.has(name)) columnRules.mustBeSet = true;
      else columnRules.mustBeNull = true;
    }
  }

  /** Make `left op right [+ offset]` hold by moving the left value (or the right, when the left is fixed). Returns true when a value changed. */
  private order(atom: Extract<Atom, { kind: 'columns' }>, values: Map<string, string | null>, fixed: Map<string, string | null>, faker: Faker): boolean {
    const left = this.byName.get(atom.left);
    const right = this.byName.get(atom.right);
    const leftValue = values.get(atom.left);
    const rightValue = values.get(atom.right);
    if (!left || !right || leftValue == null || rightValue == null) return false;
    const target = shifted(right, rightValue, atom.offset, 0);
    if (target === null || holds(left, leftValue, atom.op, target)) return false;
    const slack = faker.number.int({ min: 0, max: 30 });
    const moveLeft = !fixed.has(atom.left) && !this.pinned.has(atom.left);
    if (moveLeft) {
      const units = { '=': 0, '<>': 1, '>=': slack, '>': 1 + slack, '<=': -slack, '<': -1 - slack }[atom.op];
      const moved = shifted(left, target, null, units);
      if (moved === null) return false;
      values.set(atom.left, moved);
      return true;
    }
    if (fixed.has(atom.right) || this.pinned.has(atom.right)) return false;
    // right + offset FLIP(op) left  =>  right = left - offset, nudged
    const op = FLIP[atom.op];
    const units = { '=': 0, '<>': 1, '>=': slack, '>': 1 + slack, '<=': -slack, '<': -1 - slack }[op];
    const inverse = atom.offset ? { sign: (atom.offset.sign * -1) as 1 | -1, value: atom.offset.value } : null;
    const moved = shifted(right, leftValue, inverse, units);
    if (moved === null) return false;
    values.set(atom.right, moved);
    return true;
  }
}
