/** The operator actions on messages (SPEC 1 and 12): one message, or every one a filter matches. */
export type SpoolAction = 'retry' | 'hold' | 'release' | 'delete' | 'bounce';
export const SPOOL_ACTIONS: readonly SpoolAction[] = ['retry', 'hold', 'release', 'delete', 'bounce'];
