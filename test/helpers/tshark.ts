// Reading tshark's output exactly.

/**
 * tshark's frame.time_epoch ("1700000000.123456789") as nanoseconds, without
 * going through a double (which holds only about 16 significant digits).
 */
export function epochNanos(text: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (!m) throw new Error(`not an epoch time from tshark: ${JSON.stringify(text)}`);
  return BigInt(m[1] ?? '0') * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}
