import type { Scenario } from '../scenario/schema.js';
import { startContainer } from './container.js';
import { startEmbedded } from './embedded.js';
import { copySchema } from './schema-from.js';
import { clientConfig } from './connect.js';
import { maskConnectionString, type Target } from './types.js';

export type { Target, TargetKind } from './types.js';
export { maskConnectionString } from './types.js';

/**
 * The database named by the environment when no URL is given: DATABASE_URL, else the PG* variables as
 * libpq reads them ('' stands for them). Undefined when neither is set.
 */
export function connectionFromEnvironment(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.DATABASE_URL) return env.DATABASE_URL;
  return env.PGHOST || env.PGDATABASE || env.PGUSER || env.PGPORT ? '' : undefined;
}

/** Where a connection goes, without its password. */
export function describeConnection(connection: string, env: NodeJS.ProcessEnv = process.env): string {
  if (connection.trim() === '') {
    return `the database of the PG* environment (host ${env.PGHOST ?? 'localhost'}, port ${env.PGPORT ?? '5432'}, database ${env.PGDATABASE ?? env.PGUSER ?? 'default'}, user ${env.PGUSER ?? 'default'})`;
  }
  return maskConnectionString(connection);
}

export async function openTarget(scenario: Scenario, log?: (line: string) => void): Promise<Target> {
  const { target } = scenario;
  switch (target.kind) {
    case 'url': {
      const connection = target.url ?? connectionFromEnvironment() ?? '';
      clientConfig(connection); // refuse a malformed URL here, with a message that does not repeat it
      return { kind: 'url', connectionString: connection, description: describeConnection(connection), disposable: false, close: async () => undefined };
    }
    case 'container':
      return startContainer(target.pgVersion);
    case 'embedded': {
      const embedded = await startEmbedded({ pgBin: target.pgBin });
      if (target.schemaFrom === undefined) return embedded;
      const source = target.schemaFrom || connectionFromEnvironment() || '';
      try {
        const copy = await copySchema(source, embedded.connectionString, { pgBin: target.pgBin, log });
        return { ...embedded, description: `${embedded.description}, holding a copy of the schema, roles and grants of ${describeConnection(source)}`, notes: copy.notes, copyFailures: copy.failures };
      } catch (error) {
        await embedded.close();
        throw error;
      }
    }
  }
}
