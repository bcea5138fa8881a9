import { discoverChecks } from '../findings/discover.js';
import { isProbe, type Probe } from './types.js';

/**
 * Every probe, in the order they run: each module of probes/checks/ is read at load and every probe it exports
 * (defineProbe) taken, sorted by the `order` it declares, ties broken by id. missing-context is first: its
 * "never set" state needs a connection on which no probe has set a tenant yet.
 */
export const PROBES: readonly Probe[] = await discoverChecks({
  registry: import.meta.url,
  kind: 'probe',
  isCheck: isProbe,
  ids: (probe) => [probe.meta.id, ...probe.related.map((related) => related.id)],
  order: (probe) => probe.order,
});
