import { identity } from './identity.js';
import { missingContext } from './missing-context.js';
import { readIsolation } from './read-isolation.js';
import type { Probe } from './types.js';

/**
 * Every probe, in the order they run. missing-context is first: its "never set" state needs a connection
 * on which no probe has set a tenant yet.
 */
export const PROBES: readonly Probe[] = [missingContext, identity, readIsolation];
