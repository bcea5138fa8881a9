import type { Report } from './model.js';
import { planNoteText, type PlanNote } from '../plan/notes.js';

/**
 * A note of a report, as data: renderers choose notes by kind, never by their words, and put them into words
 * with `noteText` (report.json carries both: `notes` in words, `structuredNotes` as data).
 */
export type Note =
  /** A relation the audit could not seed, or seeded only in part: its probe results are unreliable. */
  | { kind: 'seeding'; relation: string; status: 'failed' | 'partial'; reason: string | null }
  /** A relation seeded for some tenants only; `accepted` is the scenario's reason when it accepts that. */
  | { kind: 'coverage'; relation: string; tenants: string[]; reason: string; accepted: string | null }
  /** What planning chose and why (the tenant setting, table and columns, the role, the actors). */
  | { kind: 'plan'; note: PlanNote }
  /**
   * What the target, sampling, sequences, a time limit or a merge said, in words already.
   * `seeding`: a note about seeding known only by its words (a report written before notes carried data).
   */
  | { kind: 'remark'; text: string; seeding?: true };

export function remark(text: string): Note {
  return { kind: 'remark', text };
}

export function noteText(note: Note): string {
  switch (note.kind) {
    case 'seeding':
      return `${note.relation} was ${note.status === 'failed' ? 'not seeded' : 'partly seeded'}: ${note.reason}. Its probe results are marked unreliable, not passed.`;
    case 'coverage':
      return note.accepted
        ? `${note.relation} not seeded for ${note.tenants.join(', ')}, accepted by the scenario: ${note.accepted}`
        : `${note.relation} not seeded for ${note.tenants.join(', ')}: ${note.reason}. Probes on it prove nothing for ${note.tenants.length === 1 ? 'that tenant' : 'those tenants'}.`;
    case 'plan':
      return planNoteText(note.note);
    case 'remark':
      return note.text;
  }
}

/** The notes about what was seeded (shown in the summary, with the rows per tenant), or not. */
export function isSeedingNote(note: Note): boolean {
  return note.kind === 'seeding' || note.kind === 'coverage' || (note.kind === 'remark' && note.seeding === true);
}

/**
 * A report's notes as data. A report written before notes carried their data (or made by hand) has them in
 * words only: those are all there is to tell a seeding note by.
 */
export function notesOf(report: Pick<Report, 'notes' | 'structuredNotes'>): Note[] {
  return report.structuredNotes ?? report.notes.map((text) => (/not seeded|partly seeded/.test(text) ? { kind: 'remark', text, seeding: true } : remark(text)));
}

/** Both forms of a list of notes, for a report. */
export function reportNotes(notes: readonly Note[]): Pick<Report, 'notes' | 'structuredNotes'> {
  return { notes: notes.map(noteText), structuredNotes: [...notes] };
}

/** Add a note to a report that is being built. */
export function addNote(report: Pick<Report, 'notes' | 'structuredNotes'>, note: Note): void {
  report.notes.push(noteText(note));
  (report.structuredNotes ??= []).push(note);
}
