/**
 * A parser for the expression text PostgreSQL prints with pg_get_expr (policy USING / WITH CHECK clauses).
 * That text is normalised: keywords upper case, binary operators parenthesised, literals cast
 * (`'x'::text`), sub-selects spelled out (`( SELECT ... AS "nullif")`), outer columns qualified inside
 * sub-selects. The parser covers that grammar; anything it cannot read becomes an `opaque` node that
 * keeps its text, so callers can still fall back to looking at the words.
 */

export type ExpressionNode =
  | { kind: 'and' | 'or'; args: ExpressionNode[] }
  | { kind: 'not'; arg: ExpressionNode }
  /** Binary operator (`=`, `<>`, `~~`, `+`, `||`, ...) or prefix operator (left null). */
  | { kind: 'op'; op: string; left: ExpressionNode | null; right: ExpressionNode }
  | { kind: 'null-test'; arg: ExpressionNode; negated: boolean }
  /** IS [NOT] TRUE / FALSE / UNKNOWN. */
  | { kind: 'bool-test'; arg: ExpressionNode; test: string }
  | { kind: 'distinct'; left: ExpressionNode; right: ExpressionNode; negated: boolean }
  | { kind: 'in'; left: ExpressionNode; list: ExpressionNode[] | null; subquery: SelectNode | null; negated: boolean }
  /** `left op ANY (right)` / `ALL` / `SOME`. */
  | { kind: 'quantified'; op: string; quantifier: string; left: ExpressionNode; right: ExpressionNode | SelectNode }
  | { kind: 'exists'; subquery: SelectNode }
  | { kind: 'subquery'; subquery: SelectNode }
  | { kind: 'call'; name: string; args: ExpressionNode[] }
  | { kind: 'cast'; arg: ExpressionNode; type: string }
  | { kind: 'column'; qualifier: string | null; name: string }
  | { kind: 'literal'; value: string | null; type: 'string' | 'number' | 'boolean' | 'null' }
  /** CURRENT_USER, SESSION_USER, CURRENT_ROLE, CURRENT_DATE, ... */
  | { kind: 'keyword'; name: string }
  | { kind: 'case'; subject: ExpressionNode | null; whens: { when: ExpressionNode; then: ExpressionNode }[]; otherwise: ExpressionNode | null }
  | { kind: 'array' | 'row'; items: ExpressionNode[] }
  | { kind: 'subscript'; arg: ExpressionNode; indexes: ExpressionNode[] }
  | { kind: 'opaque'; text: string; children: ExpressionNode[] };

export interface FromItem {
  /** Relation name as printed: `messages`, `public.messages`; null for a function or sub-select in FROM. */
  relation: string | null;
  /** The name columns are qualified with: the alias, else the unqualified relation name. */
  alias: string | null;
}

export interface SelectNode {
  kind: 'select';
  targets: ExpressionNode[];
  from: FromItem[];
  /** WHERE, with the ON conditions of inner joins ANDed in. */
  where: ExpressionNode | null;
  /** Everything else (GROUP BY, HAVING, set operations, function arguments in FROM): searched, not interpreted. */
  other: ExpressionNode[];
  text: string;
}

type TokenKind = 'ident' | 'quoted' | 'string' | 'number' | 'op' | 'punct';

interface Token {
  kind: TokenKind;
  /** Identifiers: lower-cased unless quoted; strings: the unescaped value. */
  value: string;
  /** Keyword form (upper case) for unquoted identifiers. */
  upper: string;
  start: number;
  end: number;
}

const OPERATOR_CHARS = '+-*/<>=~!@#%^&|`?';

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  const push = (kind: TokenKind, value: string, start: number) => tokens.push({ kind, value, upper: kind === 'ident' ? value.toUpperCase() : value, start, end: index });
  while (index < text.length) {
    const char = text[index]!;
    const start = index;
    if (/\s/.test(char)) {
      index += 1;
      continue;
    }
    if (char === "'" || ((char === 'E' || char === 'e') && text[index + 1] === "'")) {
      const escaped = char !== "'";
      index += escaped ? 2 : 1;
      let value = '';
      while (index < text.length) {
        const next = text[index]!;
        if (next === "'" && text[index + 1] === "'") {
          value += "'";
          index += 2;
        } else if (next === "'") {
          index += 1;
          break;
        } else if (escaped && next === '\\' && index + 1 < text.length) {
          value += text[index + 1]!;
          index += 2;
        } else {
          value += next;
          index += 1;
        }
      }
      push('string', value, start);
      continue;
    }
    if (char === '"') {
      index += 1;
      let value = '';
      while (index < text.length) {
        if (text[index] === '"' && text[index + 1] === '"') {
          value += '"';
          index += 2;
        } else if (text[index] === '"') {
          index += 1;
          break;
        } else {
          value += text[index]!;
          index += 1;
        }
      }
      push('quoted', value, start);
      continue;
    }
    if (/[A-Za-z_\u0080-\uffff]/.test(char)) {
      while (index < text.length && /[A-Za-z0-9_$\u0080-\uffff]/.test(text[index]!)) index += 1;
      push('ident', text.slice(start, index).toLowerCase(), start);
      continue;
    }
    if (/[0-9]/.test(char) || (char === '.' && /[0-9]/.test(text[index + 1] ?? ''))) {
      while (index < text.length && /[0-9.eE]/.test(text[index]!)) {
        if ((text[index] === 'e' || text[index] === 'E') && /[+-]/.test(text[index + 1] ?? '')) index += 1;
        index += 1;
      }
      push('number', text.slice(start, index), start);
      continue;
    }
    if (char === ':' && text[index + 1] === ':') {
      index += 2;
      push('op', '::', start);
      continue;
    }
    if ('(),.[];:'.includes(char)) {
      index += 1;
      push('punct', char, start);
      continue;
    }
    if (OPERATOR_CHARS.includes(char)) {
      while (index < text.length && OPERATOR_CHARS.includes(text[index]!)) {
        // `-` or `/` starting a comment would end the operator; pg_get_expr never prints comments.
        index += 1;
      }
      push('op', text.slice(start, index), start);
      continue;
    }
    // Anything else ($1 parameters, stray characters): keep it as an operator-like token.
    index += 1;
    push('op', char, start);
  }
  return tokens;
}

const COMPARISON = new Set(['=', '<>', '!=', '<', '>', '<=', '>=']);
const KEYWORD_VALUES = new Set([
  'CURRENT_USER', 'SESSION_USER', 'CURRENT_ROLE', 'USER', 'CURRENT_SCHEMA', 'CURRENT_CATALOG',
  'CURRENT_DATE', 'CURRENT_TIME', 'CURRENT_TIMESTAMP', 'LOCALTIME', 'LOCALTIMESTAMP',
]);
/** Words that end an expression inside a SELECT (or a function argument list). */
const CLAUSE_WORDS = new Set([
  'FROM', 'WHERE', 'GROUP', 'HAVING', 'ORDER', 'LIMIT', 'OFFSET', 'UNION', 'INTERSECT', 'EXCEPT', 'WINDOW', 'FETCH', 'FOR',
  'AS', 'ON', 'USING', 'JOIN', 'INNER', 'LEFT', 'RIGHT', 'FULL', 'CROSS', 'NATURAL', 'THEN', 'WHEN', 'ELSE', 'END',
  'AND', 'OR', 'IS', 'IN', 'NOT', 'ISNULL', 'NOTNULL', 'BETWEEN', 'LIKE', 'ILIKE', 'SIMILAR', 'ASC', 'DESC', 'NULLS',
  'FILTER', 'OVER', 'WITHIN', 'DISTINCT', 'ALL', 'SOME', 'ANY', 'COLLATE', 'AT', 'ESCAPE',
]);
/** Clause words PostgreSQL does not reserve: pg_get_expr prints a column of that name unquoted. */
const UNRESERVED_CLAUSE_WORDS = new Set(['NULLS', 'FILTER', 'OVER', 'WITHIN', 'AT', 'ESCAPE']);
/** Words that may continue a type name after `::`. */
const TYPE_WORDS = new Set(['varying', 'precision', 'with', 'without', 'time', 'zone', 'character', 'double', 'timestamp', 'bit', 'national', 'char', 'varchar']);

class ParseError extends Error {}

class Parser {
  private position = 0;

  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  private peek(offset = 0): Token | undefined {
    return this.tokens[this.position + offset];
  }

  private atWord(...words: string[]): boolean {
    const token = this.peek();
    return Boolean(token && token.kind === 'ident' && words.includes(token.upper));
  }

  private atPunct(char: string, offset = 0): boolean {
    const token = this.peek(offset);
    return Boolean(token && token.kind === 'punct' && token.value === char);
  }

  private atOp(...ops: string[]): boolean {
    const token = this.peek();
    return Boolean(token && token.kind === 'op' && ops.includes(token.value));
  }

  private next(): Token {
    const token = this.tokens[this.position];
    if (!token) throw new ParseError('unexpected end of expression');
    this.position += 1;
    return token;
  }

  private expectPunct(char: string): void {
    if (!this.atPunct(char)) throw new ParseError(`expected ${char} at ${this.peek()?.start ?? this.text.length}`);
    this.position += 1;
  }

  private expectWord(word: string): void {
    if (!this.atWord(word)) throw new ParseError(`expected ${word} at ${this.peek()?.start ?? this.text.length}`);
    this.position += 1;
  }

  done(): boolean {
    return this.position >= this.tokens.length;
  }

  /** Skip to the matching close parenthesis of the one the parser is inside (not consuming it). */
  private skipToClose(): void {
    let depth = 0;
    while (!this.done()) {
      const token = this.peek()!;
      if (token.kind === 'punct' && (token.value === '(' || token.value === '[')) depth += 1;
      if (token.kind === 'punct' && (token.value === ')' || token.value === ']')) {
        if (depth === 0) return;
        depth -= 1;
      }
      this.position += 1;
    }
  }

  /** Parse a balanced region as opaque when the grammar inside is not understood. */
  private opaqueUntilClose(start: number): Extract<ExpressionNode, { kind: 'opaque' }> {
    this.skipToClose();
    const end = this.peek()?.start ?? this.text.length;
    return { kind: 'opaque', text: this.text.slice(start, end), children: [] };
  }

  expression(): ExpressionNode {
    return this.or();
  }

  private or(): ExpressionNode {
    const args = [this.and()];
    while (this.atWord('OR')) {
      this.next();
      args.push(this.and());
    }
    return args.length === 1 ? args[0]! : { kind: 'or', args };
  }

  private and(): ExpressionNode {
    const args = [this.not()];
    while (this.atWord('AND')) {
      this.next();
      args.push(this.not());
    }
    return args.length === 1 ? args[0]! : { kind: 'and', args };
  }

  private not(): ExpressionNode {
    if (this.atWord('NOT')) {
      this.next();
      return { kind: 'not', arg: this.not() };
    }
    return this.is();
  }

  private is(): ExpressionNode {
    let node = this.comparison();
    for (;;) {
      if (this.atWord('ISNULL', 'NOTNULL')) {
        node = { kind: 'null-test', arg: node, negated: this.next().upper === 'NOTNULL' };
        continue;
      }
      if (!this.atWord('IS')) return node;
      this.next();
      let negated = false;
      if (this.atWord('NOT')) {
        this.next();
        negated = true;
      }
      if (this.atWord('NULL')) {
        this.next();
        node = { kind: 'null-test', arg: node, negated };
      } else if (this.atWord('TRUE', 'FALSE', 'UNKNOWN')) {
        node = { kind: 'bool-test', arg: node, test: `${negated ? 'NOT ' : ''}${this.next().upper}` };
      } else if (this.atWord('DISTINCT')) {
        this.next();
        this.expectWord('FROM');
        node = { kind: 'distinct', left: node, right: this.comparison(), negated };
      } else {
        throw new ParseError(`unsupported IS form at ${this.peek()?.start ?? this.text.length}`);
      }
    }
  }

  private comparison(): ExpressionNode {
    const left = this.inLike();
    const token = this.peek();
    if (!token || token.kind !== 'op' || !COMPARISON.has(token.value)) return left;
    this.next();
    if (this.atWord('ANY', 'ALL', 'SOME') && this.atPunct('(', 1)) {
      const quantifier = this.next().upper;
      this.expectPunct('(');
      const right = this.atWord('SELECT') ? this.select() : this.expression();
      this.expectPunct(')');
      return { kind: 'quantified', op: token.value, quantifier, left, right };
    }
    return { kind: 'op', op: token.value, left, right: this.inLike() };
  }

  private inLike(): ExpressionNode {
    const left = this.other();
    let negated = false;
    if (this.atWord('NOT') && this.peek(1)?.kind === 'ident' && ['IN', 'LIKE', 'ILIKE', 'BETWEEN', 'SIMILAR'].includes(this.peek(1)!.upper)) {
      this.next();
      negated = true;
    }
    if (this.atWord('IN')) {
      this.next();
      this.expectPunct('(');
      if (this.atWord('SELECT')) {
        const subquery = this.select();
        this.expectPunct(')');
        return { kind: 'in', left, list: null, subquery, negated };
      }
      const list = this.list();
      this.expectPunct(')');
      return { kind: 'in', left, list, subquery: null, negated };
    }
    if (this.atWord('LIKE', 'ILIKE')) {
      const op = this.next().upper;
      const right = this.other();
      return { kind: 'op', op: negated ? `NOT ${op}` : op, left, right };
    }
    if (this.atWord('BETWEEN')) {
      this.next();
      if (this.atWord('SYMMETRIC', 'ASYMMETRIC')) this.next();
      const low = this.other();
      this.expectWord('AND');
      const high = this.other();
      const node: ExpressionNode = { kind: 'and', args: [{ kind: 'op', op: '>=', left, right: low }, { kind: 'op', op: '<=', left, right: high }] };
      return negated ? { kind: 'not', arg: node } : node;
    }
    if (negated) throw new ParseError('dangling NOT');
    return left;
  }

  private other(): ExpressionNode {
    let left = this.additive();
    for (;;) {
      const token = this.peek();
      if (!token || token.kind !== 'op' || COMPARISON.has(token.value) || ['+', '-', '*', '/', '%', '::'].includes(token.value)) return left;
      this.next();
      left = { kind: 'op', op: token.value, left, right: this.additive() };
    }
  }

  private additive(): ExpressionNode {
    let left = this.multiplicative();
    while (this.atOp('+', '-')) {
      const op = this.next().value;
      left = { kind: 'op', op, left, right: this.multiplicative() };
    }
    return left;
  }

  private multiplicative(): ExpressionNode {
    let left = this.unary();
    while (this.atOp('*', '/', '%', '^')) {
      const op = this.next().value;
      left = { kind: 'op', op, left, right: this.unary() };
    }
    return left;
  }

  private unary(): ExpressionNode {
    const token = this.peek();
    if (token && token.kind === 'op' && token.value !== '::') {
      this.next();
      return { kind: 'op', op: token.value, left: null, right: this.unary() };
    }
    return this.postfix();
  }

  private postfix(): ExpressionNode {
    let node = this.primary();
    for (;;) {
      if (this.atOp('::')) {
        this.next();
        node = { kind: 'cast', arg: node, type: this.typeName() };
      } else if (this.atPunct('[')) {
        this.next();
        const indexes: ExpressionNode[] = [];
        while (!this.atPunct(']')) {
          if (this.atPunct(':') || this.atPunct(',')) {
            this.next();
            continue;
          }
          indexes.push(this.expression());
        }
        this.expectPunct(']');
        node = { kind: 'subscript', arg: node, indexes };
      } else if (this.atPunct('.') && node.kind !== 'column') {
        // (composite).field
        this.next();
        const field = this.next();
        node = { kind: 'op', op: '.', left: node, right: { kind: 'column', qualifier: null, name: field.value } };
      } else if (this.atWord('COLLATE')) {
        this.next();
        this.qualifiedName();
      } else if (this.atWord('AT') && this.peek(1)?.upper === 'TIME') {
        this.next();
        this.next();
        this.expectWord('ZONE');
        node = { kind: 'op', op: 'AT TIME ZONE', left: node, right: this.primary() };
      } else {
        return node;
      }
    }
  }

  private typeName(): string {
    const parts: string[] = [];
    const first = this.next();
    if (first.kind !== 'ident' && first.kind !== 'quoted') throw new ParseError(`expected a type name at ${first.start}`);
    parts.push(first.value);
    while (this.atPunct('.')) {
      this.next();
      parts.push(`.${this.next().value}`);
    }
    while (this.peek()?.kind === 'ident' && TYPE_WORDS.has(this.peek()!.value)) parts.push(` ${this.next().value}`);
    let name = parts.join('');
    if (this.atPunct('(')) {
      const open = this.next();
      this.skipToClose();
      const close = this.peek();
      this.expectPunct(')');
      name += this.text.slice(open.start, close!.end);
    }
    while (this.atPunct('[')) {
      this.next();
      while (!this.atPunct(']')) this.next();
      this.next();
      name += '[]';
    }
    return name;
  }

  private qualifiedName(): string {
    const parts = [this.next().value];
    while (this.atPunct('.')) {
      this.next();
      parts.push(this.next().value);
    }
    return parts.join('.');
  }

  private list(): ExpressionNode[] {
    const items: ExpressionNode[] = [];
    if (this.atPunct(')')) return items;
    items.push(this.expression());
    while (this.atPunct(',')) {
      this.next();
      items.push(this.expression());
    }
    return items;
  }

  private primary(): ExpressionNode {
    const token = this.peek();
    if (!token) throw new ParseError('unexpected end of expression');
    if (token.kind === 'punct' && token.value === '(') {
      this.next();
      if (this.atWord('SELECT', 'VALUES', 'WITH')) {
        const subquery = this.select();
        this.expectPunct(')');
        return { kind: 'subquery', subquery };
      }
      const first = this.expression();
      if (this.atPunct(',')) {
        const items = [first];
        while (this.atPunct(',')) {
          this.next();
          items.push(this.expression());
        }
        this.expectPunct(')');
        return { kind: 'row', items };
      }
      this.expectPunct(')');
      return first;
    }
    if (token.kind === 'string') {
      this.next();
      return { kind: 'literal', value: token.value, type: 'string' };
    }
    if (token.kind === 'number') {
      this.next();
      return { kind: 'literal', value: token.value, type: 'number' };
    }
    if (token.kind === 'ident') {
      switch (token.upper) {
        case 'TRUE':
        case 'FALSE':
          this.next();
          return { kind: 'literal', value: token.upper.toLowerCase(), type: 'boolean' };
        case 'NULL':
          this.next();
          return { kind: 'literal', value: null, type: 'null' };
        case 'EXISTS':
          if (this.atPunct('(', 1)) {
            this.next();
            this.next();
            const subquery = this.select();
            this.expectPunct(')');
            return { kind: 'exists', subquery };
          }
          break;
        case 'CASE':
          return this.caseExpression();
        case 'ARRAY':
          if (this.atPunct('[', 1)) {
            this.next();
            this.next();
            const items: ExpressionNode[] = [];
            while (!this.atPunct(']')) {
              if (this.atPunct(',')) {
                this.next();
                continue;
              }
              items.push(this.expression());
            }
            this.expectPunct(']');
            return { kind: 'array', items };
          }
          if (this.atPunct('(', 1)) {
            this.next();
            this.next();
            const subquery = this.select();
            this.expectPunct(')');
            return { kind: 'subquery', subquery };
          }
          break;
        case 'ROW':
          if (this.atPunct('(', 1)) {
            this.next();
            this.next();
            const items = this.list();
            this.expectPunct(')');
            return { kind: 'row', items };
          }
          break;
        default:
          if (KEYWORD_VALUES.has(token.upper) && !this.atPunct('(', 1) && !this.atPunct('.', 1)) {
            this.next();
            return { kind: 'keyword', name: token.upper };
          }
      }
    }
    if (token.kind === 'ident' || token.kind === 'quoted') {
      if (token.kind === 'ident' && CLAUSE_WORDS.has(token.upper) && !UNRESERVED_CLAUSE_WORDS.has(token.upper) && !this.atPunct('(', 1) && !this.atPunct('.', 1)) {
        throw new ParseError(`unexpected ${token.upper} at ${token.start}`);
      }
      const names = [this.next().value];
      while (this.atPunct('.')) {
        this.next();
        if (this.atOp('*')) {
          this.next();
          names.push('*');
          break;
        }
        names.push(this.next().value);
      }
      if (this.atPunct('(')) return this.call(names.join('.'));
      // A type-prefixed literal such as `interval '1 day'` (pg_get_expr prints casts instead, but be lenient).
      if (this.peek()?.kind === 'string' && names.length === 1) {
        const value = this.next().value;
        return { kind: 'cast', arg: { kind: 'literal', value, type: 'string' }, type: names[0]! };
      }
      const name = names.pop()!;
      return { kind: 'column', qualifier: names.length ? names.join('.') : null, name };
    }
    if (token.kind === 'op' && token.value === '*') {
      this.next();
      return { kind: 'column', qualifier: null, name: '*' };
    }
    throw new ParseError(`unexpected ${token.value} at ${token.start}`);
  }

  private call(name: string): ExpressionNode {
    const open = this.next();
    const saved = this.position;
    try {
      const args: ExpressionNode[] = [];
      if (this.atWord('DISTINCT', 'ALL')) this.next();
      while (!this.atPunct(')')) {
        if (this.atPunct(',')) {
          this.next();
          continue;
        }
        if (this.atWord('VARIADIC')) this.next();
        if (this.atOp('*')) {
          this.next();
          continue;
        }
        // Keyword-separated arguments: EXTRACT(x FROM y), SUBSTRING(a FROM b FOR c), POSITION(a IN b), TRIM(BOTH x FROM y), ORDER BY.
        if (this.atWord('FROM', 'FOR', 'IN', 'BOTH', 'LEADING', 'TRAILING', 'ORDER', 'BY', 'PLACING', 'SIMILAR', 'ESCAPE')) {
          this.next();
          continue;
        }
        args.push(this.expression());
        if (this.atWord('AS', 'ASC', 'DESC')) throw new ParseError('named or sorted argument');
      }
      this.expectPunct(')');
      let node: ExpressionNode = { kind: 'call', name: name.toLowerCase(), args };
      if (this.atWord('FILTER', 'OVER', 'WITHIN')) {
        const start = this.peek()!.start;
        this.next();
        if (this.atWord('GROUP')) this.next();
        if (this.atPunct('(')) {
          this.next();
          this.skipToClose();
          this.expectPunct(')');
        } else {
          this.next();
        }
        node = { kind: 'opaque', text: `${name}(...) ${this.text.slice(start, this.peek(-1)!.end)}`, children: [node] };
      }
      return node;
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      this.position = saved;
      const opaque = this.opaqueUntilClose(open.end);
      this.expectPunct(')');
      return { kind: 'opaque', text: `${name}(${opaque.text})`, children: [] };
    }
  }

  private caseExpression(): ExpressionNode {
    this.expectWord('CASE');
    const subject = this.atWord('WHEN') ? null : this.expression();
    const whens: { when: ExpressionNode; then: ExpressionNode }[] = [];
    while (this.atWord('WHEN')) {
      this.next();
      const when = this.expression();
      this.expectWord('THEN');
      whens.push({ when, then: this.expression() });
    }
    let otherwise: ExpressionNode | null = null;
    if (this.atWord('ELSE')) {
      this.next();
      otherwise = this.expression();
    }
    this.expectWord('END');
    return { kind: 'case', subject, whens, otherwise };
  }

  /** `SELECT targets [FROM items] [WHERE cond] [...]`, up to (not including) the closing parenthesis. */
  select(): SelectNode {
    const start = this.peek()!.start;
    const select: SelectNode = { kind: 'select', targets: [], from: [], where: null, other: [], text: '' };
    if (!this.atWord('SELECT')) {
      // VALUES / WITH: not interpreted.
      select.other.push(this.opaqueUntilClose(start));
      select.text = this.text.slice(start, this.peek()?.start ?? this.text.length);
      return select;
    }
    this.next();
    if (this.atWord('DISTINCT')) {
      this.next();
      if (this.atWord('ON')) {
        this.next();
        this.expectPunct('(');
        select.other.push(...this.list());
        this.expectPunct(')');
      }
    }
    if (this.atWord('ALL')) this.next();
    while (!this.done() && !this.atPunct(')') && !this.atWord('FROM', 'WHERE', 'GROUP', 'HAVING', 'ORDER', 'LIMIT', 'OFFSET', 'UNION', 'INTERSECT', 'EXCEPT', 'WINDOW')) {
      if (this.atPunct(',')) {
        this.next();
        continue;
      }
      select.targets.push(this.expression());
      if (this.atWord('AS')) {
        this.next();
        this.next();
      } else if (this.peek()?.kind === 'quoted' || (this.peek()?.kind === 'ident' && !CLAUSE_WORDS.has(this.peek()!.upper))) {
        this.next();
      }
    }
    const joinConditions: ExpressionNode[] = [];
    if (this.atWord('FROM')) {
      this.next();
      this.fromList(select, joinConditions);
    }
    if (this.atWord('WHERE')) {
      this.next();
      select.where = this.expression();
    }
    if (joinConditions.length) {
      select.where = { kind: 'and', args: [...joinConditions, ...(select.where ? [select.where] : [])] };
    }
    if (!this.done() && !this.atPunct(')')) {
      const rest = this.peek()!.start;
      select.other.push(this.opaqueUntilClose(rest));
    }
    select.text = this.text.slice(start, this.peek()?.start ?? this.text.length);
    return select;
  }

  private fromList(select: SelectNode, joinConditions: ExpressionNode[]): void {
    for (;;) {
      this.fromItem(select, joinConditions);
      for (;;) {
        if (this.atPunct(',')) {
          this.next();
          break;
        }
        if (this.atWord('JOIN', 'INNER', 'LEFT', 'RIGHT', 'FULL', 'CROSS', 'NATURAL')) {
          let inner = true;
          while (!this.atWord('JOIN')) {
            if (this.atWord('LEFT', 'RIGHT', 'FULL')) inner = false;
            this.next();
          }
          this.next();
          this.fromItem(select, joinConditions);
          if (this.atWord('ON')) {
            this.next();
            const condition = this.expression();
            if (inner) joinConditions.push(condition);
            else select.other.push(condition);
          } else if (this.atWord('USING')) {
            this.next();
            this.expectPunct('(');
            this.skipToClose();
            this.expectPunct(')');
          }
          continue;
        }
        return;
      }
    }
  }

  private fromItem(select: SelectNode, joinConditions: ExpressionNode[]): void {
    if (this.atWord('LATERAL', 'ONLY')) this.next();
    if (this.atPunct('(')) {
      this.next();
      if (this.atWord('SELECT')) {
        const inner = this.select();
        this.expectPunct(')');
        select.other.push({ kind: 'subquery', subquery: inner });
        select.from.push({ relation: null, alias: this.alias() });
        return;
      }
      this.fromList(select, joinConditions);
      this.expectPunct(')');
      const alias = this.alias();
      if (alias) select.from.push({ relation: null, alias });
      return;
    }
    const name = this.qualifiedName();
    if (this.atPunct('(')) {
      const node = this.call(name);
      select.other.push(node);
      select.from.push({ relation: null, alias: this.alias() });
      return;
    }
    if (this.atOp('*')) this.next();
    const alias = this.alias();
    select.from.push({ relation: name, alias: alias ?? name.split('.').pop()! });
  }

  private alias(): string | null {
    if (this.atWord('AS')) this.next();
    const token = this.peek();
    if (!token || !(token.kind === 'quoted' || (token.kind === 'ident' && !CLAUSE_WORDS.has(token.upper)))) return null;
    this.next();
    if (this.atPunct('(')) {
      this.next();
      this.skipToClose();
      this.expectPunct(')');
    }
    return token.value;
  }
}

/** Parse pg_get_expr text. Never throws: text that does not parse becomes one opaque node. */
export function parseExpression(text: string): ExpressionNode {
  const tokens = tokenize(text);
  try {
    const parser = new Parser(text, tokens);
    const node = parser.expression();
    if (!parser.done()) throw new ParseError('trailing text');
    return node;
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    return { kind: 'opaque', text, children: [] };
  }
}

/** Direct children of a node (sub-selects included: their targets, WHERE and other parts). */
function childrenOf(node: ExpressionNode | SelectNode): (ExpressionNode | SelectNode)[] {
  switch (node.kind) {
    case 'select':
      return [...node.targets, ...(node.where ? [node.where] : []), ...node.other];
    case 'and':
    case 'or':
      return node.args;
    case 'not':
    case 'null-test':
    case 'bool-test':
      return [node.arg];
    case 'op':
      return node.left ? [node.left, node.right] : [node.right];
    case 'distinct':
      return [node.left, node.right];
    case 'in':
      return [node.left, ...(node.list ?? []), ...(node.subquery ? [node.subquery] : [])];
    case 'quantified':
      return [node.left, node.right];
    case 'exists':
    case 'subquery':
      return [node.subquery];
    case 'call':
      return node.args;
    case 'cast':
      return [node.arg];
    case 'case':
      return [...(node.subject ? [node.subject] : []), ...node.whens.flatMap((when) => [when.when, when.then]), ...(node.otherwise ? [node.otherwise] : [])];
    case 'array':
    case 'row':
      return node.items;
    case 'subscript':
      return [node.arg, ...node.indexes];
    case 'opaque':
      return node.children;
    case 'column':
    case 'literal':
    case 'keyword':
      return [];
  }
}

/** Every node under (and including) `node`, each with the chain of its ancestors (nearest last). */
export function* walk(node: ExpressionNode | SelectNode, ancestors: (ExpressionNode | SelectNode)[] = []): Generator<{ node: ExpressionNode | SelectNode; ancestors: (ExpressionNode | SelectNode)[] }> {
  yield { node, ancestors };
  for (const child of childrenOf(node)) yield* walk(child, [...ancestors, node]);
}
