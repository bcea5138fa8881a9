import type { AuditSession } from '../target/session.js';

/**
 * Types whose output text is the input text the seeder sends (it sends integers in decimal and fits text to
 * its length): their values need not be read back. Not bpchar (padded), bool (t/f), numerics.
 */
const ECHOED_TYPES = new Set(['text', 'varchar', 'int2', 'int4', 'int8']);

/** Session TimeZone names that mean UTC: timestamptz is then printed with `+00`. */
const UTC_ZONES = new Set(['utc', 'etc/utc', 'uct', 'etc/uct', 'gmt', 'etc/gmt', 'gmt0', 'etc/gmt0', 'gmt+0', 'gmt-0', 'etc/gmt+0', 'etc/gmt-0', 'greenwich', 'etc/greenwich', 'universal', 'etc/universal', 'zulu', 'etc/zulu', 'z']);

/** An ISO 8601 instant as the seeder writes it (toISOString), of a year PostgreSQL prints without an era. */
const ISO_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z$/;

/** How the session prints dates and times (DateStyle, TimeZone): enough to know the stored text of what is sent. */
export interface TimeStyle {
  iso: boolean;
  utc: boolean;
}

/** How the session prints dates and times, read from its DateStyle and TimeZone. */
export async function sessionTimeStyle(session: AuditSession): Promise<TimeStyle> {
  const settings = (await session.query(`select current_setting('DateStyle') as date_style, current_setting('TimeZone') as time_zone`)).rows[0]!;
  return { iso: /^\s*iso\b/i.test(settings.date_style ?? ''), utc: UTC_ZONES.has((settings.time_zone ?? '').toLowerCase()) };
}

/**
 * The text PostgreSQL stores and prints for a value sent to a column of `baseType`, when that can be known
 * here; undefined when it must be read back. Dates and times only under DateStyle ISO (timestamptz also
 * needs a UTC session), and only in the one shape the seeder writes them in.
 */
export function storedText(baseType: string, value: string, style: TimeStyle): string | undefined {
  if (ECHOED_TYPES.has(baseType)) return value;
  if (!style.iso) return undefined;
  if (baseType === 'date') return /^\d{4}-\d{2}-\d{2}$/.test(value) && !value.startsWith('0000') ? value : undefined;
  if (baseType !== 'timestamp' && baseType !== 'timestamptz') return undefined;
  if (baseType === 'timestamptz' && !style.utc) return undefined;
  const match = ISO_INSTANT.exec(value);
  if (!match || match[1] === '0000') return undefined;
  const fraction = (match[7] ?? '').replace(/0+$/, '');
  // Joined, not concatenated: one flat string, where a template literal keeps a tree of pieces (the ledger
  // holds tens of thousands of these; as trees they were half its memory).
  return [match[1], '-', match[2], '-', match[3], ' ', match[4], ':', match[5], ':', match[6], fraction ? `.${fraction}` : '', baseType === 'timestamptz' ? '+00' : ''].join('');
}
