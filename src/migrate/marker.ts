/**
 * The marker `tsieved migrate` leaves once it has settled which script is active:
 * the store's per-user metadata `migrated` (ScriptStore.readMeta/writeMeta, the file
 * `.migrated` beside the scripts), written under the store's lock by whoever
 * writes the store (as root, through a file broker running as the user). While it exists, no
 * later run activates anything, so a user who deactivated or switched scripts in
 * tsieved keeps that choice even though the old layout still names its active
 * script (at HCoop the filter is ~/.public/.forward and pysieved's ~/.forward link
 * stays).
 *
 * Must not know: the old layouts, the report, where the store keeps it.
 */
export const MARKER_FILE = '.migrated';

/** What the marker records: how activation was settled, which script, when. */
export interface Settled {
  readonly outcome: 'activated' | 'found active' | 'kept';
  readonly name: string;
  readonly at: Date;
}

const HEADER = '# tsieved migrate settled which script is active. While this file exists, no later run activates one.';

export function formatMarker(s: Settled): Buffer {
  return Buffer.from(
    `${HEADER}\noutcome: ${s.outcome}\nscript: ${JSON.stringify(s.name)}\nat: ${s.at.toISOString()}\n`,
    'utf8',
  );
}

/** For the report: e.g. `activated "main" at 2026-...Z`; the file is the user's, so nothing is trusted. */
export function describeMarker(content: Buffer): string {
  const field = (key: string): string | undefined => {
    const m = new RegExp(`^${key}: (.{1,1100})$`, 'm').exec(content.toString('utf8'));
    return m?.[1];
  };
  const outcome = field('outcome');
  const script = field('script');
  const at = field('at');
  if (outcome === undefined || script === undefined || !/^(?:activated|found active|kept)$/.test(outcome))
    return `${MARKER_FILE} exists`;
  let name: unknown;
  try {
    name = JSON.parse(script);
  } catch {
    return `${MARKER_FILE} exists`;
  }
  if (typeof name !== 'string') return `${MARKER_FILE} exists`;
  const when = at !== undefined && /^[0-9T:.Z-]{1,40}$/.test(at) ? ` at ${at}` : '';
  return `${outcome} ${JSON.stringify(name)}${when}`;
}
