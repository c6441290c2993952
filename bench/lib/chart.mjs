// A plain SVG bar chart of the benchmark's targets, written by hand (no chart library).
// Every bar is a score: value / target for "at least" targets, target / value for "at most"
// ones, so 1.0 (the dashed line) is the target and longer is better in both cases.

const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function renderChart(results) {
  const rows = results.targets.filter((t) => t.value !== null);
  const W = 900;
  const labelW = 420;
  const barW = 330;
  const rowH = 30;
  const top = 58;
  const H = top + rows.length * rowH + 48;
  const maxScore = Math.max(2, ...rows.map((t) => score(t)).filter(Number.isFinite));
  const x = (s) => labelW + (Math.min(s, maxScore) / maxScore) * barW;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="13">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  parts.push(`<text x="16" y="24" font-size="16" font-weight="bold">savepoint benchmark: ratios against raw I/O and PyTorch on the same machine</text>`);
  parts.push(`<text x="16" y="44" fill="#555">${esc(`${results.command} · ${results.date.slice(0, 10)} · ${results.machine.cpu} · ${results.machine.memoryGiB} GiB · node ${results.machine.node}${results.machine.torch ? ` · torch ${results.machine.torch}` : ""}`)}</text>`);
  rows.forEach((t, i) => {
    const y = top + i * rowH;
    const s = score(t);
    const color = t.met ? "#2e8b57" : "#c0392b";
    parts.push(`<text x="16" y="${y + 19}">${esc(t.label)}</text>`);
    parts.push(`<rect x="${labelW}" y="${y + 6}" width="${Math.max(1, x(s) - labelW).toFixed(1)}" height="18" fill="${color}" opacity="0.85"/>`);
    parts.push(`<text x="${(x(s) + 6).toFixed(1)}" y="${y + 19}" fill="#222">${esc(`${t.value} (${t.target})`)}</text>`);
  });
  const x1 = x(1);
  parts.push(`<line x1="${x1.toFixed(1)}" y1="${top}" x2="${x1.toFixed(1)}" y2="${top + rows.length * rowH + 4}" stroke="#333" stroke-dasharray="4 3"/>`);
  parts.push(`<text x="${(x1 - 20).toFixed(1)}" y="${top + rows.length * rowH + 20}" fill="#333">target</text>`);
  parts.push(`<text x="16" y="${H - 10}" fill="#777" font-size="11">bar = value/target (at-least targets) or target/value (at-most targets); green: met, red: missed. Figures: bench/results.json</text>`);
  parts.push(`</svg>`);
  return parts.join("\n") + "\n";
}

function score(t) {
  const [op, goalText] = t.target.split(" ");
  const goal = Number(goalText);
  if (op === ">=") return t.value / goal;
  return t.value <= 0 ? Number.POSITIVE_INFINITY : goal / t.value;
}
