/**
 * An error the user can cause and fix: a bad scenario, an unreadable schema, an unknown role, an
 * unreachable database. The CLI prints the message (never a stack) and exits 2.
 */
export class AuditError extends Error {
  override readonly name = 'AuditError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The run's time limit (--timeout) was reached. Carries the report of what was done so far, when there is
 * one, so that the CLI writes it before it exits 2.
 */
export class AuditTimeout extends AuditError {
  report?: unknown;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
