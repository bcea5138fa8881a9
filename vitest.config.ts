import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // The README's examples import the package by name; in this repository that name is the source.
    alias: [
      { find: /^rls-audit\/vitest$/, replacement: fileURLToPath(new URL('./src/library/vitest.ts', import.meta.url)) },
      { find: /^rls-audit$/, replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
