import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domainCheckOnColumn, readCheck } from '../src/analysis/constraints.js';
import { loadParser } from '../src/analysis/parse.js';
import { withoutTerminator } from '../src/analysis/sql-text.js';
import { introspect } from '../src/catalog/introspect.js';
import { inlineParameters } from '../src/target/sql.js';
import type { Catalog } from '../src/catalog/types.js';
import { startEmbedded } from '../src/target/embedded.js';
import type { Target } from '../src/target/types.js';
import { applySql, withClient } from './helpers.js';

/** Catalog text the audit reads with PostgreSQL's parser and catalog, not with patterns over the text. */
beforeAll(async () => {
  await loadParser();
});

describe('a domain CHECK as a check on a column', () => {
  it('replaces the domain value and nothing that only spells VALUE', () => {
    expect(domainCheckOnColumn("CHECK ((VALUE <> 'VALUE'::text))", 'code')).toBe("CHECK ((code <> 'VALUE'::text))");
    expect(domainCheckOnColumn('CHECK ((value(VALUE) > 0))', '"Score"')).toBe('CHECK ((value("Score") > 0))');
    expect(domainCheckOnColumn('CHECK (((VALUE >= 0) AND ("VALUE" <> 1)))', '"order"')).toBe('CHECK ((("order" >= 0) AND ("VALUE" <> 1)))');
    expect(domainCheckOnColumn("CHECK ((VALUE ~ '^é+VALUE$'::text)) NOT VALID", 'naïve')).toBe("CHECK ((naïve ~ '^é+VALUE$'::text)) NOT VALID");
  });

  it('leaves a definition it cannot parse as it is (read as opaque)', () => {
    expect(domainCheckOnColumn('CHECK ((VALUE > ))', 'x')).toBe('CHECK ((VALUE > ))');
    expect(readCheck('d', 'CHECK ((VALUE > ))').alternatives[0]?.[0]?.kind).toBe('opaque');
  });
});

describe('a statement without its terminator', () => {
  it('strips the final semicolons only, as the lexer sees them', () => {
    expect(withoutTerminator("select set_config('app.tenant', $1, true);")).toBe("select set_config('app.tenant', $1, true)");
    expect(withoutTerminator('select 1 ;; \n')).toBe('select 1 ');
    expect(withoutTerminator("select ';'")).toBe("select ';'");
    expect(withoutTerminator('select 1 -- ends;')).toBe('select 1 -- ends;');
    expect(withoutTerminator('select 1')).toBe('select 1');
    expect(withoutTerminator("select 'unterminated;")).toBe("select 'unterminated;");
  });
});

describe('catalog readers on a real cluster', () => {
  let target: Target;
  let catalog: Catalog;

  beforeAll(async () => {
    target = await startEmbedded();
    await withClient(target.connectionString, async (client) => {
      await applySql(
        client,
        `
        create domain code as text check (value <> 'VALUE' and length(value) > 1);
        create sequence document_seq;
        create sequence "Other Seq";
        create table invoices (id bigint default nextval('document_seq'), number text default 'INV-' || nextval('document_seq'), c code);
        create table credit_notes (number text default 'CN-' || nextval('document_seq')::text, "order" code);
        create table lonely (id bigint default nextval('"Other Seq"'), label text default 'nextval(''document_seq''::regclass)');
        create unique index invoices_number_key on invoices (lower(number), c) where id > 0;
        create function "insert"() returns trigger language plpgsql as $$ begin return new; end $$;
        create trigger t after insert or update of number on invoices for each row execute function "insert"();
        create trigger u before delete on invoices for each row execute function "insert"();
        create trigger v after truncate on lonely for each statement execute function "insert"();
        `,
      );
      catalog = await introspect(client);
    });
  });

  afterAll(async () => {
    await target?.close();
  });

  it('reads a domain CHECK with the column in place of VALUE, string literals untouched', () => {
    const invoices = catalog.relations.find((relation) => relation.name === 'invoices')!;
    const creditNotes = catalog.relations.find((relation) => relation.name === 'credit_notes')!;
    expect(invoices.columns.find((column) => column.name === 'c')!.domainChecks).toEqual([`CHECK (((c <> 'VALUE'::text) AND (length(c) > 1)))`]);
    expect(creditNotes.columns.find((column) => column.name === 'order')!.domainChecks).toEqual([`CHECK ((("order" <> 'VALUE'::text) AND (length("order") > 1)))`]);
    const check = readCheck('order', creditNotes.columns.find((column) => column.name === 'order')!.domainChecks[0]!);
    expect(check.columns).toEqual(['order']);
    expect(check.alternatives[0]).toContainEqual({ kind: 'compare', column: 'order', op: '<>', value: 'VALUE' });
  });

  it('names every column an index mentions, in its expressions and predicate too', () => {
    const index = catalog.relations.find((relation) => relation.name === 'invoices')!.indexes.find((candidate) => candidate.name === 'invoices_number_key')!;
    expect(index.columns).toEqual([null, 'c']);
    expect([...index.mentions].sort()).toEqual(['c', 'id', 'number']);
  });

  it('reads the events of a trigger from pg_trigger', () => {
    expect(catalog.triggers.map((trigger) => [trigger.name, trigger.events])).toEqual([
      ['t', ['INSERT', 'UPDATE']],
      ['u', ['DELETE']],
      ['v', ['TRUNCATE']],
    ]);
  });

  it('finds the sequences a default names in any expression, from pg_depend', () => {
    expect(catalog.sharedSequences).toEqual([
      {
        sequence: 'document_seq',
        relations: ['public.credit_notes', 'public.invoices'],
        columns: [
          { relation: 'public.credit_notes', column: 'number' },
          { relation: 'public.invoices', column: 'id' },
          { relation: 'public.invoices', column: 'number' },
        ],
      },
    ]);
  });
});

describe('parameters inlined for evidence', () => {
  it('replaces the lexer\'s placeholders only, not $n in dollar quotes, quoted names, E strings or comments', () => {
    expect(inlineParameters(`select $1, $$ $1 $$, "$1", E'it\\'s $1', $2 -- $1`, ['a', 'b'])).toBe(`select 'a', $$ $1 $$, "$1", E'it\\'s $1', 'b' -- $1`);
    expect(inlineParameters('select $3', ['a'])).toBe('select $3');
  });
});
