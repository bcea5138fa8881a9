import type { Rule } from './types.js';

/** Every static rule, in the order they are evaluated. */
export const RULES: readonly Rule[] = [];
