import { AuditError, errorMessage } from '../errors.js';
import type { Target } from './types.js';

/** Minimal shape of the parts of `testcontainers` we use; the package is imported only when asked for. */
interface StartedContainer {
  getHost(): string;
  getMappedPort(port: number): number;
  stop(): Promise<unknown>;
}
interface ContainerBuilder {
  withEnvironment(env: Record<string, string>): ContainerBuilder;
  withExposedPorts(...ports: number[]): ContainerBuilder;
  withWaitStrategy(strategy: unknown): ContainerBuilder;
  start(): Promise<StartedContainer>;
}
interface TestcontainersModule {
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: RegExp, times: number): unknown };
}

export type ContainerLoader = () => Promise<TestcontainersModule>;

const loadTestcontainers: ContainerLoader = async () => (await import('testcontainers')) as unknown as TestcontainersModule;

/** Explain a failure to start a container in terms of what the user can do. */
export function explainContainerFailure(error: unknown): AuditError {
  const message = errorMessage(error);
  if (/container runtime|docker|socket|ENOENT|ECONNREFUSED/i.test(message)) {
    return new AuditError(
      `the container target needs a container runtime (Docker or Podman) and none is available here (${message.split('\n')[0]}). ` +
        'Use the default embedded target, or local binaries with --pg-bin DIR.',
    );
  }
  return new AuditError(`could not start a PostgreSQL container: ${message.split('\n')[0]}`);
}

/** A PostgreSQL container of the given major version, started with testcontainers. */
export async function startContainer(pgVersion: string, load: ContainerLoader = loadTestcontainers): Promise<Target> {
  let module: TestcontainersModule;
  try {
    module = await load();
  } catch (error) {
    throw new AuditError(`the container target needs the optional package testcontainers (npm install testcontainers): ${errorMessage(error)}`);
  }
  const password = 'rls-audit';
  let container: StartedContainer;
  try {
    container = await new module.GenericContainer(`postgres:${pgVersion}`)
      .withEnvironment({ POSTGRES_PASSWORD: password, POSTGRES_DB: 'rls_audit' })
      .withExposedPorts(5432)
      .withWaitStrategy(module.Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
  } catch (error) {
    throw explainContainerFailure(error);
  }
  const host = container.getHost();
  const port = container.getMappedPort(5432);
  return {
    kind: 'container',
    connectionString: `postgresql://postgres:${password}@${host}:${port}/rls_audit`,
    description: `container postgres:${pgVersion} on ${host}:${port}`,
    disposable: true,
    close: async () => {
      await container.stop();
    },
  };
}
