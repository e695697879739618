import { formatEta } from '../cli/watch';

describe('progress bar eta', () => {
  const started = { at: 1_000_000, value: 100 };
  test('is the remaining work at the average rate since the bar started', () => {
    // 100 steps in 50 s, 900 to go: 450 s.
    expect(formatEta(started, 200, 1100, started.at + 50_000)).toBe('7m30s');
    expect(formatEta(started, 1000, 1100, started.at + 90_000)).toBe('10s');
    expect(formatEta(started, 101, 10_000, started.at + 1_000)).toBe('2h44m');
  });
  test('is a dash, not INF or NULL, before any progress', () => {
    expect(formatEta(started, 100, 1100, started.at + 5_000)).toBe('–');
    expect(formatEta(started, 150, 1100, started.at)).toBe('–');
  });
});
