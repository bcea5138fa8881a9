import { describe, expect, it } from 'vitest';
import { foreignKeyOrder } from '../src/plan/order.js';

describe('foreignKeyOrder', () => {
  it('puts parents before children', () => {
    const { order, deferred } = foreignKeyOrder(
      ['messages', 'users', 'tenants', 'conversations'],
      [
        { from: 'users', to: 'tenants', optional: false },
        { from: 'conversations', to: 'users', optional: false },
        { from: 'messages', to: 'conversations', optional: false },
        { from: 'messages', to: 'users', optional: false },
      ],
    );
    expect(order).toEqual(['tenants', 'users', 'conversations', 'messages']);
    expect(deferred).toEqual([]);
  });

  it('ignores self references and edges to relations outside the set', () => {
    const { order } = foreignKeyOrder(['comments'], [
      { from: 'comments', to: 'comments', optional: true },
      { from: 'comments', to: 'elsewhere', optional: false },
    ]);
    expect(order).toEqual(['comments']);
  });

  it('breaks a cycle at a nullable reference', () => {
    const { order, deferred } = foreignKeyOrder(['a', 'b'], [
      { from: 'a', to: 'b', optional: false },
      { from: 'b', to: 'a', optional: true },
    ]);
    expect(deferred).toEqual([{ from: 'b', to: 'a', optional: true }]);
    expect(order).toEqual(['b', 'a']);
  });

  it('always terminates on a cycle of required references', () => {
    const { order, deferred } = foreignKeyOrder(['x', 'y', 'z'], [
      { from: 'x', to: 'y', optional: false },
      { from: 'y', to: 'z', optional: false },
      { from: 'z', to: 'x', optional: false },
    ]);
    expect(order.sort()).toEqual(['x', 'y', 'z']);
    expect(deferred).toHaveLength(1);
  });
});
