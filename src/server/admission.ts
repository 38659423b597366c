/**
 * Counting connections against max_connections and max_connections_per_ip. One
 * process counts for itself (LocalAdmission); with `[server] workers` above 1 the
 * workers ask the primary (src/cluster/), which counts for all of them, so the
 * limits hold for the server as a whole and not once per worker.
 *
 * Must not know: sockets, how the question reaches the primary.
 */

export type AdmissionVerdict = 'ok' | 'max_connections' | 'max_connections_per_ip';

export interface AdmissionLimits {
  readonly total: number;
  readonly perAddress: number;
}

export interface Admission {
  /** Takes a slot for a connection from `address`, or says which limit is full. */
  acquire(address: string, limits: AdmissionLimits): AdmissionVerdict | Promise<AdmissionVerdict>;
  /** Gives back a slot `acquire` granted. */
  release(address: string): void;
}

export class LocalAdmission implements Admission {
  private readonly perAddress = new Map<string, number>();
  private total = 0;

  acquire(address: string, limits: AdmissionLimits): AdmissionVerdict {
    const count = this.perAddress.get(address) ?? 0;
    if (this.total >= limits.total) return 'max_connections';
    if (count >= limits.perAddress) return 'max_connections_per_ip';
    this.perAddress.set(address, count + 1);
    this.total++;
    return 'ok';
  }

  release(address: string): void {
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left <= 0) this.perAddress.delete(address);
    else this.perAddress.set(address, left);
    this.total = Math.max(0, this.total - 1);
  }
}
