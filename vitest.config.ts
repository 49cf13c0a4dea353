import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    // Real peers (servers, sockets, child processes) make tests slower than pure unit tests.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: parallel files fight over them and turn latency assertions flaky.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
