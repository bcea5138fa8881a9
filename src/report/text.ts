/** `1 row`, `3 rows`; `many` for a plural that is not the singular with an s. */
export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}
