import { Faker, en } from '@faker-js/faker';
import type { Column, Relation } from '../catalog/types.js';

/** What the CHECK constraints of a relation (and the column's domain) say about one column. */
export interface ColumnRules {
  /** Allowed values from `col IN (...)` / `col = ANY (ARRAY[...])`. */
  allowed: string[] | null;
  min: number | null;
  max: number | null;
  /** Exclusive bounds become inclusive ones on integers; on other numbers they are nudged. */
  minLength: number | null;
  maxLength: number | null;
  /** Must not be empty / blank (e.g. `title <> ''`, `length(trim(x)) > 0`). */
  nonEmpty: boolean;
  lowercase: boolean;
  /** A regular expression the value must match (`col ~ '...'`), when one is given. */
  pattern: string | null;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Column reference as pg_get_constraintdef prints it: bare, quoted, or cast, e.g. `(status)::text`. */
function columnRef(name: string): string {
  const quoted = /^[a-z_][a-z0-9_]*$/.test(name) ? `"?${escapeRegExp(name)}"?` : `"${escapeRegExp(name.replace(/"/g, '""'))}"`;
  // Not preceded by a name character: `id` must not match inside `paid` or `t.id`.
  return `(?<![A-Za-z0-9_."])\\(*${quoted}\\)*(?:::[a-z ]+(?:\\(\\d+\\))?)?\\)*`;
}

function stringLiterals(text: string): string[] {
  return [...text.matchAll(/'((?:[^']|'')*)'/g)].map((match) => match[1]!.replace(/''/g, "'"));
}

/** Read the simple forms of CHECK constraints: IN-lists, comparisons with numbers, lengths, emptiness. */
export function columnRules(column: Column, checks: string[]): ColumnRules {
  const rules: ColumnRules = { allowed: null, min: null, max: null, minLength: null, maxLength: column.maxLength, nonEmpty: false, lowercase: false, pattern: null };
  const ref = columnRef(column.name);
  for (const check of [...checks, ...column.domainChecks]) {
    const anyList = new RegExp(`${ref}\\s*=\\s*ANY\\s*\\(+(?:ARRAY\\[([^\\]]*)\\])`, 'i').exec(check);
    if (anyList) {
      const values = stringLiterals(anyList[1]!);
      const numbers = values.length ? values : anyList[1]!.split(',').map((value) => value.trim().replace(/^\(|\)$/g, '').replace(/::.*$/, ''));
      rules.allowed = rules.allowed ? rules.allowed.filter((value) => numbers.includes(value)) : numbers;
    }
    const equals = new RegExp(`^CHECK \\(+${ref}\\s*=\\s*'((?:[^']|'')*)'`, 'i').exec(check);
    if (equals) rules.allowed = [equals[1]!.replace(/''/g, "'")];
    for (const match of check.matchAll(new RegExp(`${ref}\\s*(>=|>|<=|<)\\s*\\(?'?(-?\\d+(?:\\.\\d+)?)`, 'gi'))) {
      const value = Number(match[2]);
      if (match[1] === '>=') rules.min = Math.max(rules.min ?? -Infinity, value);
      if (match[1] === '>') rules.min = Math.max(rules.min ?? -Infinity, value + (Number.isInteger(value) ? 1 : 0.001));
      if (match[1] === '<=') rules.max = Math.min(rules.max ?? Infinity, value);
      if (match[1] === '<') rules.max = Math.min(rules.max ?? Infinity, value - (Number.isInteger(value) ? 1 : 0.001));
    }
    for (const match of check.matchAll(new RegExp(`(?:char_length|length|octet_length)\\((?:(?:btrim|trim)\\()?${ref}\\)*\\s*(>=|>|<=|<|=)\\s*(\\d+)`, 'gi'))) {
      const value = Number(match[2]);
      if (match[1] === '>=') rules.minLength = Math.max(rules.minLength ?? 0, value);
      if (match[1] === '>') rules.minLength = Math.max(rules.minLength ?? 0, value + 1);
      if (match[1] === '<=') rules.maxLength = Math.min(rules.maxLength ?? Infinity, value);
      if (match[1] === '<') rules.maxLength = Math.min(rules.maxLength ?? Infinity, value - 1);
      if (match[1] === '=') {
        rules.minLength = value;
        rules.maxLength = value;
      }
    }
    if (new RegExp(`${ref}\\s*<>\\s*''`, 'i').test(check)) rules.nonEmpty = true;
    if (new RegExp(`${ref}\\s*=\\s*lower\\(`, 'i').test(check)) rules.lowercase = true;
    const pattern = new RegExp(`${ref}\\s*~\\*?\\s*'((?:[^']|'')*)'`, 'i').exec(check);
    if (pattern) rules.pattern = pattern[1]!.replace(/''/g, "'");
  }
  return rules;
}

/** The CHECK constraint definitions of a relation that mention the column. */
export function checksFor(relation: Relation, column: Column): string[] {
  return relation.constraints
    .filter((constraint) => constraint.kind === 'check' && (constraint.columns.includes(column.name) || constraint.columns.length === 0))
    .map((constraint) => constraint.definition);
}

export function createFaker(seed: number): Faker {
  const faker = new Faker({ locale: [en] });
  faker.seed(seed);
  faker.setDefaultRefDate('2026-01-01T00:00:00.000Z');
  return faker;
}

/** Per-tenant marker placed in text values so any returned row can be attributed to its tenant. */
export function makeCanary(faker: Faker): string {
  return `zq${faker.string.alphanumeric({ length: 6, casing: 'lower' })}`;
}

const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext', 'name']);
const INTEGER_RANGES: Record<string, [number, number]> = { int2: [1, 32_000], int4: [1, 2_000_000_000], int8: [1, 9_000_000_000_000] };

export interface ValueContext {
  /** Row number within the whole seed run: unique across tables and tenants. */
  serial: number;
  /** The tenant's canary, or null for shared rows. */
  canary: string | null;
  /** Values must be unique (the column is in a unique constraint or index). */
  unique: boolean;
}

function fit(text: string, rules: ColumnRules): string {
  let value = text;
  if (rules.lowercase) value = value.toLowerCase();
  if (rules.maxLength !== null && rules.maxLength !== undefined && value.length > rules.maxLength) value = value.slice(0, rules.maxLength);
  if (rules.minLength !== null && value.length < rules.minLength) value = value.padEnd(rules.minLength, 'x');
  return value;
}

/** A text value shaped by the column's name, with the canary and, for unique columns, a serial. */
function textValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string {
  const name = column.name.toLowerCase();
  const tag = [context.canary, context.unique ? String(context.serial) : null].filter(Boolean).join('');
  const room = (rules.maxLength ?? Infinity) - (tag ? tag.length + 1 : 0);
  if (room < 3) {
    // Too short for a canary: a unique, attributable value is impossible; keep it valid.
    const length = Math.max(1, Math.min(rules.maxLength ?? 8, 8));
    return fit(context.unique ? String(context.serial).padStart(length, '0').slice(-length) : faker.string.alpha({ length, casing: 'lower' }), rules);
  }
  if (/e-?mail/.test(name)) {
    const local = `${faker.person.firstName()}.${faker.person.lastName()}`.toLowerCase().replace(/[^a-z0-9.]/g, '');
    return fit(`${local}${tag ? `.${tag}` : ''}@example.com`, rules);
  }
  let base: string;
  if (/(^|_)(first_?name|given_name)$/.test(name)) base = faker.person.firstName();
  else if (/(^|_)(last_?name|surname|family_name)$/.test(name)) base = faker.person.lastName();
  else if (/(^|_)(user_?name|handle|login|nick(name)?)$/.test(name)) base = faker.internet.username().replace(/[^A-Za-z0-9_.]/g, '');
  else if (/name$/.test(name) && /(company|org|tenant|account|workspace|team)/.test(name)) base = faker.company.name();
  else if (/(^|_)(name|display_name|full_name|author|owner)$/.test(name)) base = faker.person.fullName();
  else if (/(title|subject|headline|label|caption)/.test(name)) base = faker.lorem.sentence({ min: 3, max: 6 }).replace(/\.$/, '');
  else if (/(body|content|message|text|description|comment|note|summary|bio|details)/.test(name)) base = faker.lorem.paragraph(1);
  else if (/(url|link|website|href)/.test(name)) return fit(`${faker.internet.url()}/${tag || faker.string.alphanumeric(6)}`, rules);
  else if (/(phone|mobile|fax)/.test(name)) base = faker.phone.number();
  else if (/(city|town)/.test(name)) base = faker.location.city();
  else if (/country/.test(name)) base = faker.location.country();
  else if (/(address|street)/.test(name)) base = faker.location.streetAddress();
  else if (/(slug|key|code|token|ref)$/.test(name)) return fit(`${faker.lorem.slug(2)}-${tag || faker.string.alphanumeric(6)}`.toLowerCase(), rules);
  else if (/(color|colour)/.test(name)) base = faker.color.human();
  else if (/(status|state|kind|type|category|tier|plan|role)$/.test(name)) base = faker.word.noun();
  else base = faker.lorem.words(3);
  if (rules.lowercase) base = base.toLowerCase();
  const maxBase = Math.max(1, room);
  return fit(`${base.slice(0, maxBase).trimEnd()}${tag ? ` ${tag}` : ''}`, rules);
}

function numberValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string {
  const integer = column.baseType in INTEGER_RANGES;
  const [typeMin, typeMax] = INTEGER_RANGES[column.baseType] ?? [0, 1_000_000];
  let min = rules.min ?? (/(count|qty|quantity|age|position|rank|priority|score|amount|price|total)/i.test(column.name) ? 1 : typeMin);
  let max = rules.max ?? (/(priority|rating|stars)/i.test(column.name) ? 5 : min === 1 && rules.min === null ? 1000 : typeMax);
  if (column.numericPrecision !== null) {
    const limit = 10 ** (column.numericPrecision - (column.numericScale ?? 0)) - 1;
    max = Math.min(max, limit);
    min = Math.max(min, -limit);
  }
  if (min > max) max = min;
  if (context.unique) {
    const span = Math.max(1, Math.floor(max) - Math.ceil(min) + 1);
    return String(Math.ceil(min) + ((context.serial * 7919) % span));
  }
  if (integer) return String(faker.number.int({ min: Math.ceil(min), max: Math.floor(max) }));
  const scale = column.numericScale ?? 2;
  return faker.number.float({ min, max, fractionDigits: Math.min(scale, 6) }).toFixed(Math.min(scale, 6));
}

/**
 * A value matching a CHECK's regular expression (`col ~ '^[A-Z]{3}-\d{4}$'`): faker's generator after
 * rewriting the classes it does not know, verified against the pattern; null when that fails.
 */
export function patternValue(faker: Faker, pattern: string): string | null {
  const simplified = pattern
    .replace(/^\^/, '')
    .replace(/\$$/, '')
    .replace(/\\d/g, '[0-9]')
    .replace(/\\w/g, '[a-zA-Z0-9_]')
    .replace(/\\s/g, ' ')
    .replace(/\+/g, '{1,6}')
    .replace(/\*/g, '{0,6}');
  let check: RegExp;
  try {
    check = new RegExp(pattern);
  } catch {
    return null;
  }
  for (let attempt = 0; attempt < 20; attempt += 1) {
    try {
      const value = faker.helpers.fromRegExp(simplified);
      if (check.test(value)) return value;
    } catch {
      return null;
    }
  }
  return null;
}

/** One value for a column, as PostgreSQL input text, or null. */
export function scalarValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string | null {
  if (rules.pattern && TEXT_TYPES.has(column.baseType)) {
    const value = patternValue(faker, rules.pattern);
    if (value !== null) return value;
  }
  if (rules.allowed?.length) {
    return context.unique ? rules.allowed[context.serial % rules.allowed.length]! : faker.helpers.arrayElement(rules.allowed);
  }
  if (column.enumValues?.length) {
    return context.unique ? column.enumValues[context.serial % column.enumValues.length]! : faker.helpers.arrayElement(column.enumValues);
  }
  const base = column.baseType;
  if (TEXT_TYPES.has(base)) return textValue(faker, column, rules, context);
  if (base in INTEGER_RANGES || base === 'numeric' || base === 'float4' || base === 'float8' || base === 'money') {
    return numberValue(faker, column, rules, context);
  }
  switch (base) {
    case 'bool':
      return faker.datatype.boolean() ? 'true' : 'false';
    case 'uuid':
      return faker.string.uuid();
    case 'date':
      return faker.date.past({ years: 2 }).toISOString().slice(0, 10);
    case 'timestamp':
    case 'timestamptz': {
      const date = context.unique ? new Date(Date.UTC(2025, 0, 1) + context.serial * 1000) : faker.date.past({ years: 2 });
      return date.toISOString();
    }
    case 'time':
    case 'timetz':
      return faker.date.past().toISOString().slice(11, 19);
    case 'interval':
      return `${faker.number.int({ min: 1, max: 90 })} days`;
    case 'json':
    case 'jsonb':
      return JSON.stringify({ note: `${faker.lorem.words(2)}${context.canary ? ` ${context.canary}` : ''}`, n: context.serial });
    case 'bytea':
      return `\\x${Buffer.from(`${context.canary ?? ''}${context.serial}`).toString('hex')}`;
    case 'inet':
    case 'cidr':
      return context.unique ? `10.${(context.serial >> 16) & 255}.${(context.serial >> 8) & 255}.${context.serial & 255}` : faker.internet.ipv4();
    case 'macaddr':
      return faker.internet.mac();
    case 'tsvector':
      return `${faker.lorem.words(3)} ${context.canary ?? ''}`.trim();
    case 'xml':
      return `<note>${context.canary ?? faker.lorem.word()}</note>`;
    case 'point':
      return `(${faker.number.float({ min: -90, max: 90, fractionDigits: 4 })},${faker.number.float({ min: -180, max: 180, fractionDigits: 4 })})`;
    case 'daterange':
    case 'tstzrange':
    case 'tsrange': {
      const start = new Date(Date.UTC(2025, 0, 1) + context.serial * 86_400_000);
      const end = new Date(start.getTime() + 3_600_000);
      return base === 'daterange' ? `[${start.toISOString().slice(0, 10)},${end.toISOString().slice(0, 10)}]` : `[${start.toISOString()},${end.toISOString()})`;
    }
    case 'int4range':
    case 'int8range':
      return `[${context.serial * 10},${context.serial * 10 + 5})`;
    default:
      return column.category === 'S' ? textValue(faker, column, rules, context) : null;
  }
}

function arrayLiteral(items: (string | null)[]): string {
  return `{${items.map((item) => (item === null ? 'NULL' : `"${item.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)).join(',')}}`;
}

/** A value for a column of any supported type, arrays included. */
export function columnValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string | null {
  if (!column.isArray) return scalarValue(faker, column, rules, context);
  const element: Column = { ...column, isArray: false, maxLength: null };
  const count = faker.number.int({ min: 1, max: 3 });
  return arrayLiteral(Array.from({ length: count }, (_, index) => scalarValue(faker, element, { ...rules, allowed: null }, { ...context, serial: context.serial * 4 + index })));
}

/** Non-sequential, distinct tenant ids of the key's type. */
export function tenantIds(faker: Faker, baseType: string, count: number, maxLength: number | null = null): string[] {
  const ids = new Set<string>();
  while (ids.size < count) {
    switch (baseType) {
      case 'int2':
        ids.add(String(faker.number.int({ min: 100, max: 32_000 })));
        break;
      case 'int4':
      case 'numeric':
        ids.add(String(faker.number.int({ min: 1_000, max: 2_000_000_000 })));
        break;
      case 'int8':
        ids.add(String(faker.number.bigInt({ min: 10_000_000_000n, max: 9_000_000_000_000_000n })));
        break;
      case 'uuid':
        ids.add(faker.string.uuid());
        break;
      default: {
        const slug = `${faker.word.adjective()}-${faker.word.noun()}-${faker.string.alphanumeric({ length: 4, casing: 'lower' })}`.toLowerCase().replace(/[^a-z0-9-]/g, '');
        ids.add(maxLength ? slug.slice(0, maxLength) : slug);
      }
    }
  }
  return [...ids];
}
