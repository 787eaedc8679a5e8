/**
 * A histogram of non-negative values in fixed buckets, from which the mean is exact and
 * percentiles are known to within a bucket: one bucket per integer below LINEAR (so that small
 * counts, like lifetimes of a few events, come out exact), then eight per power of two (each
 * about 9% wide) up to 2^64. It takes constant memory whatever the number of values, which is why
 * lifetimes are kept this way rather than as one number per allocation.
 */

/** Values below this have a bucket per integer. */
const LINEAR = 128;
const LOG2_LINEAR = 7;
/** Buckets per power of two above LINEAR. */
const PER_OCTAVE = 8;
const BUCKETS = LINEAR + (64 - LOG2_LINEAR) * PER_OCTAVE + 1;

export interface Summary {
  count: number;
  mean: number;
  min: number;
  /** Percentiles, estimated: the middle of the bucket where they fall, within [min, max]. */
  median: number;
  p90: number;
  p99: number;
  max: number;
}

export class LogHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  add(v: number): void {
    const b =
      v < LINEAR
        ? Math.floor(v)
        : Math.min(BUCKETS - 1, LINEAR + Math.floor((Math.log2(v) - LOG2_LINEAR) * PER_OCTAVE));
    this.counts[b]!++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** The value below which a fraction q of the values lie (estimated), or 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = q * this.count;
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b]!;
      if (seen >= rank && this.counts[b]! > 0) {
        // A linear bucket stands for its integer; a logarithmic one for its geometric middle.
        const mid = b < LINEAR ? b : 2 ** (LOG2_LINEAR + (b - LINEAR + 0.5) / PER_OCTAVE);
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  summary(): Summary {
    if (this.count === 0) return { count: 0, mean: 0, min: 0, median: 0, p90: 0, p99: 0, max: 0 };
    return {
      count: this.count,
      mean: this.sum / this.count,
      min: this.min,
      median: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: this.max,
    };
  }
}
