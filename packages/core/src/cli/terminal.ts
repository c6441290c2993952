/** Colours and a progress bar on a terminal; plain text when piped or with NO_COLOR. */
export interface Terminal {
  readonly color: boolean;
  paint(code: "bold" | "dim" | "cyan" | "green" | "yellow" | "red", text: string): string;
}

const CODES = { bold: [1, 22], dim: [2, 22], cyan: [36, 39], green: [32, 39], yellow: [33, 39], red: [31, 39] } as const;

/** The terminal view of a stream. */
export function terminal(stream: NodeJS.WriteStream = process.stdout): Terminal {
  const color = !!stream.isTTY && !process.env.NO_COLOR && process.env.TERM !== "dumb";
  return {
    color,
    paint: (code, text) => (color ? `\u001b[${CODES[code][0]}m${text}\u001b[${CODES[code][1]}m` : text),
  };
}

/** Human-readable byte counts. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/**
 * A one-line progress bar on stderr, redrawn at most ten times a second; silent when stderr is
 * not a terminal, so piped output stays clean.
 */
export class ProgressBar {
  readonly #total: number;
  readonly #label: string;
  readonly #enabled: boolean;
  #done = 0;
  #last = 0;

  constructor(label: string, total: number, stream: NodeJS.WriteStream = process.stderr) {
    this.#label = label;
    this.#total = total;
    this.#enabled = !!stream.isTTY;
  }

  advance(bytes: number): void {
    this.#done += bytes;
    const now = Date.now();
    if (this.#enabled && (now - this.#last > 100 || this.#done >= this.#total)) {
      this.#last = now;
      this.#draw();
    }
  }

  finish(): void {
    if (this.#enabled) {
      this.#draw();
      process.stderr.write("\n");
    }
  }

  #draw(): void {
    const width = 30;
    const frac = this.#total > 0 ? Math.min(1, this.#done / this.#total) : 1;
    const filled = Math.round(frac * width);
    process.stderr.write(`\r${this.#label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(this.#done)} / ${formatBytes(this.#total)}`);
  }
}
