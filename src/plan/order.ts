/**
 * Order relations so that every relation comes after the relations it references. Self-references are
 * ignored; a cycle is broken at a nullable reference (`optional`), and otherwise at the relation whose
 * name sorts first, so the order is always total and deterministic.
 */
export interface Dependency {
  from: string;
  to: string;
  /** True when the referencing columns are all nullable, so the edge can be left out to break a cycle. */
  optional: boolean;
}

export function foreignKeyOrder(nodes: string[], dependencies: Dependency[]): { order: string[]; deferred: Dependency[] } {
  const nodeSet = new Set(nodes);
  let edges = dependencies.filter((edge) => edge.from !== edge.to && nodeSet.has(edge.from) && nodeSet.has(edge.to));
  const deferred: Dependency[] = [];
  const order: string[] = [];
  const placed = new Set<string>();
  const remaining = [...nodes].sort();
  while (remaining.length) {
    const ready = remaining.filter((node) => !edges.some((edge) => edge.from === node && !placed.has(edge.to)));
    if (ready.length) {
      for (const node of ready) {
        order.push(node);
        placed.add(node);
        remaining.splice(remaining.indexOf(node), 1);
      }
      continue;
    }
    // A cycle: drop one optional edge among the remaining nodes, else any edge of the first node.
    const stuck = edges.filter((edge) => !placed.has(edge.from) && !placed.has(edge.to));
    const victim = stuck.find((edge) => edge.optional) ?? stuck.find((edge) => edge.from === remaining[0]) ?? stuck[0]!;
    deferred.push(victim);
    edges = edges.filter((edge) => edge !== victim);
  }
  return { order, deferred };
}
