import type { Scenario } from '../scenario/schema.js';
import { startContainer } from './container.js';
import { startEmbedded } from './embedded.js';
import { maskConnectionString, type Target } from './types.js';

export type { Target, TargetKind } from './types.js';
export { maskConnectionString } from './types.js';

export async function openTarget(scenario: Scenario): Promise<Target> {
  const { target } = scenario;
  switch (target.kind) {
    case 'url': {
      const url = target.url!;
      return { kind: 'url', connectionString: url, description: maskConnectionString(url), disposable: false, close: async () => undefined };
    }
    case 'container':
      return startContainer(target.pgVersion);
    case 'embedded':
      return startEmbedded({ pgBin: target.pgBin });
  }
}
