import { describe, expect, it } from 'vitest';
import { AuditError } from '../src/errors.js';
import { explainContainerFailure, startContainer, type ContainerLoader } from '../src/target/container.js';

describe('container target (testcontainers is not runnable here: its use is tested against a stand-in)', () => {
  it('starts postgres:<version>, maps the port, and stops the container on close', async () => {
    const calls: string[] = [];
    const loader: ContainerLoader = async () => ({
      GenericContainer: class {
        constructor(image: string) {
          calls.push(`image ${image}`);
        }
        withEnvironment(env: Record<string, string>) {
          calls.push(`env ${Object.keys(env).sort().join(',')}`);
          return this;
        }
        withExposedPorts(...ports: number[]) {
          calls.push(`ports ${ports.join(',')}`);
          return this;
        }
        withWaitStrategy() {
          return this;
        }
        async start() {
          return { getHost: () => 'docker.local', getMappedPort: (port: number) => port + 10_000, stop: async () => calls.push('stop') };
        }
      },
      Wait: { forLogMessage: () => 'wait' },
    });
    const target = await startContainer('16', loader);
    expect(target.connectionString).toMatch(/^postgresql:\/\/postgres:[^@]+@docker\.local:15432\/rls_audit$/);
    expect(target.description).toBe('container postgres:16 on docker.local:15432');
    expect(target.disposable).toBe(true);
    await target.close();
    expect(calls).toEqual(['image postgres:16', 'env POSTGRES_DB,POSTGRES_PASSWORD', 'ports 5432', 'stop']);
  });

  it('explains a missing runtime and a missing package', async () => {
    expect(explainContainerFailure(new Error('Could not find a working container runtime strategy')).message).toMatch(/needs a container runtime \(Docker or Podman\)/);
    await expect(startContainer('16', async () => Promise.reject(new Error('Cannot find package')))).rejects.toThrow(AuditError);
    await expect(startContainer('16', async () => Promise.reject(new Error('Cannot find package')))).rejects.toThrow(/npm install testcontainers/);
  });
});
