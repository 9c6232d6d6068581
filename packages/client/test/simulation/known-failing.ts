/**
 * Seeds that fail for a known, not yet fixed reason: seed → the reason.
 * The CI test and the soak run leave them out and say so; each is listed
 * here with what goes wrong, to be removed once fixed.
 */
export const KNOWN_FAILING: ReadonlyMap<number, string> = new Map([]);
