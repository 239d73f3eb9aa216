/**
 * Seeded bugs of the fault matrix. They used to be switches inside lib/ (issue 13 took them out:
 * the shipped code must have no switch that turns a check off); they are being rebuilt here as a
 * faulty backend wrapper injected through `connectWrapped`. Until then seeding one fails loudly.
 */

/** The bugs a test can seed. */
export type SeededBug = 'cached-read' | 'unchecked-staleness' | 'blind-cas' | 'lock-without-queue' | 'lock-ignores-session';

/** Not available until the faulty backend wrapper lands. */
export function seedBug(bug: SeededBug, on = true): void {
  if (on) throw new Error(`seeded bug '${bug}': seeded bugs are moving to a faulty backend wrapper (issue 13)`);
}
