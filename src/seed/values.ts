/**
 * Values for seeding and probes: a Faker of the audit's own, the tenants' canaries and ids, the CHECKs of a
 * relation, and a value for a column that meets what they say about it (column-rules.ts).
 */
import type { Faker, LocaleDefinition } from '@faker-js/faker';
import { faker as english } from '@faker-js/faker/locale/en';
import randexpModule from 'randexp';
import { readCheck, type CheckModel } from '../analysis/constraints.js';
import type { Column, Relation } from '../catalog/types.js';
import { textArrayLiteral } from '../target/sql.js';
import { emptyRules, epochOf, INTEGER_RANGES, isText, NUMERIC_TYPES, TEMPORAL_TYPES, TEXT_TYPES, type ColumnRules } from './column-rules.js';

/** randexp is CommonJS whose module.exports is the class; its typings describe an ES default export. */
type RandExpClass = typeof randexpModule.default;
const RandExp: RandExpClass = (randexpModule as unknown as { default?: RandExpClass }).default ?? (randexpModule as unknown as RandExpClass);

const checkCache = new WeakMap<Relation, CheckModel[]>();

/** The relation's CHECK constraints and its columns' domain checks, read from the parse tree (once per relation). */
export function checksOf(relation: Relation): CheckModel[] {
  let checks = checkCache.get(relation);
  if (!checks) {
    checks = [
      ...relation.constraints.filter((constraint) => constraint.kind === 'check').map((constraint) => readCheck(constraint.name, constraint.definition)),
      ...relation.columns.flatMap((column) => column.domainChecks.map((definition, index) => readCheck(`${column.name} domain check${column.domainChecks.length > 1 ? ` ${index + 1}` : ''}`, definition))),
    ];
    checkCache.set(relation, checks);
  }
  return checks;
}

export function createFaker(seed: number): Faker {
  // A Faker of its own per audit, with the English definitions only: the package's main entry loads every
  // locale, which made 13 MB of the audit's live memory.
  const EnglishFaker = english.constructor as new (options: { locale: LocaleDefinition }) => Faker;
  const faker = new EnglishFaker({ locale: english.rawDefinitions });
  faker.seed(seed);
  faker.setDefaultRefDate('2026-01-01T00:00:00.000Z');
  return faker;
}

/** Per-tenant marker placed in text values so any returned row can be attributed to its tenant. */
export function makeCanary(faker: Faker): string {
  return `zq${faker.string.alphanumeric({ length: 6, casing: 'lower' })}`;
}

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
  if (rules.uppercase) value = value.toUpperCase();
  if (rules.maxLength !== null && rules.maxLength !== undefined && value.length > rules.maxLength) value = value.slice(0, rules.maxLength);
  const minLength = Math.max(rules.minLength ?? 0, rules.nonEmpty ? 1 : 0);
  if (value.length < minLength) value = value.padEnd(minLength, rules.uppercase ? 'X' : 'x');
  return value;
}

function fitsText(value: string, rules: ColumnRules): boolean {
  const minLength = Math.max(rules.minLength ?? 0, rules.nonEmpty ? 1 : 0);
  if (value.length < minLength || value.length > (rules.maxLength ?? Infinity)) return false;
  if (rules.lowercase && value !== value.toLowerCase()) return false;
  if (rules.uppercase && value !== value.toUpperCase()) return false;
  if (rules.excluded.includes(value)) return false;
  return rules.patterns.every((pattern) => new RegExp(pattern.source, pattern.flags).test(value) !== pattern.negated);
}

/**
 * A text value meeting the patterns of the rules: the natural value when it already matches, else strings
 * generated from the pattern (randexp), with the canary kept where the pattern allows it. Null when no
 * candidate meets every rule.
 */
export function patternValue(faker: Faker, rules: ColumnRules, natural: string, context: ValueContext): string | null {
  if (fitsText(natural, rules)) return natural;
  const positive = rules.patterns.filter((pattern) => !pattern.negated);
  const source = positive[0];
  const tag = [context.canary, context.unique ? String(context.serial) : null].filter(Boolean).join('');
  for (let attempt = 0; attempt < 24; attempt += 1) {
    let generated = natural;
    if (source) {
      const generator = new RandExp(source.source, source.flags);
      generator.max = Math.max(4, Math.min(12, rules.maxLength ?? 12));
      generator.randInt = (low: number, high: number) => faker.number.int({ min: low, max: high });
      generated = generator.gen();
    } else {
      generated = faker.string.alpha({ length: 8, casing: 'lower' });
    }
    const candidates = attempt < 12 && tag ? [`${generated}${tag}`, `${tag}${generated}`, generated] : [generated];
    for (const candidate of candidates) {
      if (fitsText(candidate, rules)) return candidate;
      const fitted = fit(candidate, rules);
      if (fitsText(fitted, rules)) return fitted;
    }
  }
  return null;
}

/**
 * A surname from the locale's list. faker's person.lastName() and person.fullName() resolve a weighted
 * template on every call, which costs ten times as much and took a tenth of the time of seeding 100,000 rows.
 */
function surname(faker: Faker): string {
  const list = faker.definitions.person?.last_name?.generic;
  return list?.length ? faker.helpers.arrayElement(list) : faker.person.lastName();
}

/** What a text column's name asks for (see textKind). */
type TextKind =
  | 'email' | 'first-name' | 'last-name' | 'username' | 'company' | 'person' | 'title' | 'paragraph' | 'url' | 'phone'
  | 'city' | 'country' | 'address' | 'slug' | 'color' | 'noun' | 'words';

const textKinds = new Map<string, TextKind>();

/** The kind of text a column's name asks for, read once per name (the name's tests ran for every value). */
function textKind(columnName: string): TextKind {
  let kind = textKinds.get(columnName);
  if (kind !== undefined) return kind;
  const name = columnName.toLowerCase();
  if (/e-?mail/.test(name)) kind = 'email';
  else if (/(^|_)(first_?name|given_name)$/.test(name)) kind = 'first-name';
  else if (/(^|_)(last_?name|surname|family_name)$/.test(name)) kind = 'last-name';
  else if (/(^|_)(user_?name|handle|login|nick(name)?)$/.test(name)) kind = 'username';
  else if (/name$/.test(name) && /(company|org|tenant|account|workspace|team)/.test(name)) kind = 'company';
  else if (/(^|_)(name|display_name|full_name|author|owner)$/.test(name)) kind = 'person';
  else if (/(title|subject|headline|label|caption)/.test(name)) kind = 'title';
  else if (/(body|content|message|text|description|comment|note|summary|bio|details)/.test(name)) kind = 'paragraph';
  else if (/(url|link|website|href)/.test(name)) kind = 'url';
  else if (/(phone|mobile|fax)/.test(name)) kind = 'phone';
  else if (/(city|town)/.test(name)) kind = 'city';
  else if (/country/.test(name)) kind = 'country';
  else if (/(address|street)/.test(name)) kind = 'address';
  else if (/(slug|key|code|token|ref)$/.test(name)) kind = 'slug';
  else if (/(color|colour)/.test(name)) kind = 'color';
  else if (/(status|state|kind|type|category|tier|plan|role)$/.test(name)) kind = 'noun';
  else kind = 'words';
  textKinds.set(columnName, kind);
  return kind;
}

/** A text value shaped by the column's name, with the canary and, for unique columns, a serial. */
function textValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string {
  const tag = (context.canary ?? '') + (context.unique ? String(context.serial) : '');
  const room = (rules.maxLength ?? Infinity) - (tag ? tag.length + 1 : 0);
  if (room < 3) {
    // Too short for a canary: a unique, attributable value is impossible; keep it valid.
    const length = Math.max(1, Math.min(rules.maxLength ?? 8, 8));
    return fit(context.unique ? String(context.serial).padStart(length, '0').slice(-length) : faker.string.alpha({ length, casing: 'lower' }), rules);
  }
  let base: string;
  switch (textKind(column.name)) {
    case 'email': {
      const local = `${faker.person.firstName()}.${surname(faker)}`.toLowerCase().replace(/[^a-z0-9.]/g, '');
      return fit(`${local}${tag ? `.${tag}` : ''}@example.com`, rules);
    }
    case 'first-name':
      base = faker.person.firstName();
      break;
    case 'last-name':
      base = surname(faker);
      break;
    case 'username':
      base = faker.internet.username().replace(/[^A-Za-z0-9_.]/g, '');
      break;
    case 'company':
      base = faker.company.name();
      break;
    case 'person':
      base = `${faker.person.firstName()} ${surname(faker)}`;
      break;
    case 'title':
      base = faker.lorem.sentence({ min: 3, max: 6 }).replace(/\.$/, '');
      break;
    case 'paragraph':
      base = faker.lorem.paragraph(1);
      break;
    case 'url':
      return fit(`${faker.internet.url()}/${tag || faker.string.alphanumeric(6)}`, rules);
    case 'phone':
      base = faker.phone.number();
      break;
    case 'city':
      base = faker.location.city();
      break;
    case 'country':
      base = faker.location.country();
      break;
    case 'address':
      base = faker.location.streetAddress();
      break;
    case 'slug':
      return fit(`${faker.lorem.slug(2)}-${tag || faker.string.alphanumeric(6)}`.toLowerCase(), rules);
    case 'color':
      base = faker.color.human();
      break;
    case 'noun':
      base = faker.word.noun();
      break;
    case 'words':
      base = faker.lorem.words(3);
      break;
  }
  if (rules.lowercase) base = base.toLowerCase();
  const maxBase = Math.max(1, room);
  return fit(`${base.slice(0, maxBase).trimEnd()}${tag ? ` ${tag}` : ''}`, rules);
}

/** The range numbers of a column are generated in: the rules' bounds, else one shaped by the column's name and type. */
export function numberRange(column: Column, rules: ColumnRules): [number, number] {
  const [typeMin, typeMax] = INTEGER_RANGES[column.baseType] ?? [0, 1_000_000];
  let min = rules.min ?? (/(count|qty|quantity|age|position|rank|priority|score|amount|price|total)/i.test(column.name) ? 1 : typeMin);
  let max = rules.max ?? (/(priority|rating|stars)/i.test(column.name) && min <= 5 ? 5 : rules.min === null && min === 1 ? 1000 : typeMax);
  if (rules.max !== null && rules.min === null && min > max) min = max - 1000;
  if (column.numericPrecision !== null) {
    const limit = 10 ** (column.numericPrecision - (column.numericScale ?? 0)) - 1;
    max = Math.min(max, limit);
    min = Math.max(min, -limit);
  }
  if (min > max) max = min;
  return [min, max];
}

/** The largest absolute value a numeric column's type holds (integers, numeric(p, s)); null when there is no practical limit. */
export function typeLimit(column: Column): number | null {
  const integers: Record<string, number> = { int2: 32_767, int4: 2_147_483_647, int8: 9_223_372_036_854_775_807 };
  if (column.baseType in integers) return integers[column.baseType]!;
  if (column.baseType === 'numeric' && column.numericPrecision !== null) return 10 ** (column.numericPrecision - (column.numericScale ?? 0));
  return null;
}

function numberValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string {
  const integer = column.baseType in INTEGER_RANGES;
  const [min, max] = numberRange(column, rules);
  const scale = Math.min(column.numericScale ?? 2, 6);
  for (let attempt = 0; attempt < 8; attempt += 1) {
    let value: string;
    if (context.unique && integer) {
      const span = Math.max(1, Math.floor(max) - Math.ceil(min) + 1);
      value = String(Math.ceil(min) + ((context.serial * 7919 + attempt) % span));
    } else if (integer) value = String(faker.number.int({ min: Math.ceil(min), max: Math.floor(max) }));
    else if (context.unique) value = (min + (((context.serial * 7919 + attempt) % 1_000_000) / 1_000_000) * (max - min)).toFixed(scale);
    else value = faker.number.float({ min, max, fractionDigits: scale }).toFixed(scale);
    if (!integer && (Number(value) < min || Number(value) > max)) value = min.toFixed(scale);
    if (!rules.excluded.some((excluded) => Number(excluded) === Number(value))) return value;
  }
  return String(integer ? Math.ceil(min) : min);
}

const DAY = 86_400_000;
const TWO_YEARS = 730 * DAY;
const REFERENCE = Date.UTC(2026, 0, 1);

/** A date or timestamp inside the rules' bounds (a CHECK, a range partition). */
function temporalValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string {
  const unit = column.baseType === 'date' ? DAY : 1000;
  const low = rules.low ? epochOf(rules.low.value) : NaN;
  const high = rules.high ? epochOf(rules.high.value) : NaN;
  let start = Number.isFinite(low) ? low : Number.isFinite(high) ? high - TWO_YEARS : REFERENCE - TWO_YEARS;
  let end = Number.isFinite(high) ? high : Number.isFinite(low) ? low + TWO_YEARS : REFERENCE;
  // In whole units, honouring exclusive ends.
  let first = Math.ceil(start / unit);
  if (rules.low && !rules.low.inclusive && first * unit === low) first += 1;
  let last = Math.floor(end / unit);
  if ((!rules.high || !rules.high.inclusive) && last * unit === end && Number.isFinite(high)) last -= 1;
  if (last < first) last = first;
  start = first;
  end = last;
  const span = end - start + 1;
  const offset = context.unique ? (context.serial * 7919) % span : faker.number.int({ min: 0, max: span - 1 });
  const iso = new Date((start + offset) * unit).toISOString();
  return column.baseType === 'date' ? iso.slice(0, 10) : iso;
}

/** One value for a column, as PostgreSQL input text, or null. */
export function scalarValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string | null {
  if (rules.mustBeNull) return null;
  if (rules.allowed || column.enumValues) {
    const allowed = (rules.allowed ?? column.enumValues!).filter((value) => !rules.excluded.includes(value));
    if (!allowed.length) return null;
    return context.unique ? allowed[context.serial % allowed.length]! : faker.helpers.arrayElement(allowed);
  }
  const base = column.baseType;
  if (isText(column) && TEXT_TYPES.has(base)) {
    const natural = fit(textValue(faker, column, rules, context), rules);
    return rules.patterns.length || rules.excluded.length ? patternValue(faker, rules, natural, context) : natural;
  }
  if (NUMERIC_TYPES.has(base)) return numberValue(faker, column, rules, context);
  if (TEMPORAL_TYPES.has(base)) return temporalValue(faker, column, rules, context);
  switch (base) {
    case 'bool':
      return rules.boolean !== null ? String(rules.boolean) : faker.datatype.boolean() ? 'true' : 'false';
    case 'uuid':
      return faker.string.uuid();
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
    default: {
      if (column.category !== 'S') return null;
      const natural = fit(textValue(faker, column, rules, context), rules);
      return rules.patterns.length ? patternValue(faker, rules, natural, context) : natural;
    }
  }
}

/** A value for a column of any supported type, arrays included. */
export function columnValue(faker: Faker, column: Column, rules: ColumnRules, context: ValueContext): string | null {
  if (!column.isArray || rules.mustBeNull) return scalarValue(faker, column, rules, context);
  const element: Column = { ...column, isArray: false, maxLength: null };
  const { within, required, overlaps, minCount, maxCount } = rules.elements;
  // The elements the CHECKs ask for (`@>`, one of each `&&` list), then generated ones up to the count.
  const chosen: string[] = [...required];
  for (const list of overlaps) {
    if (list.some((value) => chosen.includes(value))) continue;
    const candidates = list.filter((value) => !within || within.includes(value));
    if (candidates.length) chosen.push(faker.helpers.arrayElement(candidates));
  }
  const low = Math.max(1, minCount ?? 0, chosen.length);
  const high = Math.max(low, Math.min(maxCount ?? Infinity, chosen.length + 3, within ? Math.max(within.length, chosen.length) : Infinity));
  const count = faker.number.int({ min: low, max: Math.max(low, Math.min(high, low + 2)) });
  const values: (string | null)[] = [...chosen];
  const spare = within ? faker.helpers.shuffle(within.filter((value) => !chosen.includes(value))) : null;
  for (let index = 0; values.length < count; index += 1) {
    if (spare) {
      if (!spare.length) break;
      values.push(spare.pop()!);
      continue;
    }
    values.push(scalarValue(faker, element, { ...emptyRules(element), allowed: element.enumValues }, { ...context, serial: context.serial * 4 + index }));
  }
  return textArrayLiteral(values);
}

/** The integer range a cast of the tenant id accepts, by type name. */
const CAST_INTEGER: Record<string, string> = { int2: 'int2', smallint: 'int2', int4: 'int4', integer: 'int4', int: 'int4', int8: 'int8', bigint: 'int8' };

/**
 * The type tenant ids are generated as: the key's type, narrowed by the casts policies apply to the tenant
 * setting (a bigint key read as `::int` gets ids within int4; a text key read as `::uuid` gets uuids).
 */
export function tenantIdType(keyType: string, casts: string[]): string {
  const order = ['int2', 'int4', 'int8'];
  let type = keyType;
  for (const cast of casts.map((name) => name.toLowerCase())) {
    const integer = CAST_INTEGER[cast];
    if (integer) {
      if (order.includes(type)) type = order[Math.min(order.indexOf(type), order.indexOf(integer))]!;
      else if (type === 'numeric' || TEXT_TYPES.has(type)) type = integer;
    } else if (cast === 'uuid' && TEXT_TYPES.has(type)) type = 'uuid';
  }
  return type;
}

/** Non-sequential, distinct tenant ids of the key's type (see tenantIdType for casts). */
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
