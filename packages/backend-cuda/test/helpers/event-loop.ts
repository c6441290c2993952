/**
 * Counts turns of the event loop while `work` runs. A copy that blocks the JS thread allows about
 * one turn per chunk; copies that complete off the thread leave the loop spinning meanwhile.
 */
export async function turnsDuring(work: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let running = true;
  const spin = () => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  try {
    await work();
  } finally {
    running = false;
  }
  return turns;
}
