// Reads the parts of a docs page the doc tests need: front matter, fenced code blocks (with the
// line each starts on and the meta after the language), and links. A small parser of our own:
// it only has to follow CommonMark's fence rules, and it keeps exact line numbers for messages.
import { readFileSync } from "node:fs";

/**
 * @typedef {{ lang: string, meta: Record<string, string | true>, code: string, line: number, file: string }} Block
 *   `line` is the 1-based line of the opening fence.
 */

/** Splits `key=value key="a b" flag` into an object; a bare word becomes `true`. */
export function parseMeta(text, where) {
  /** @type {Record<string, string | true>} */
  const meta = {};
  const re = /\s*([A-Za-z][\w-]*)(?:=(?:"([^"]*)"|(\S+)))?|\s*(\{[^}]*\}|\[[^\]]*\]|:\S+)/gy;
  let m;
  let at = 0;
  while (at < text.length && (m = re.exec(text))) {
    at = re.lastIndex;
    // {1,3} line highlights, [title] and :line-numbers belong to VitePress, not to us.
    if (m[4]) continue;
    meta[m[1]] = m[2] ?? m[3] ?? true;
  }
  if (text.slice(at).trim() !== "") throw new Error(`${where}: cannot read the code block meta "${text}"`);
  return meta;
}

/** Front matter (a flat YAML subset: `key: value` lines) of a page. */
function frontMatter(lines) {
  /** @type {Record<string, string>} */
  const out = {};
  if (lines[0] !== "---") return { data: out, end: 0 };
  for (let i = 1; i < lines.length; i++) {
    if (lines[i] === "---") return { data: out, end: i + 1 };
    const m = /^([\w-]+):\s*(.*)$/.exec(lines[i]);
    if (m) out[m[1]] = m[2].replace(/^["']|["']$/g, "");
  }
  return { data: out, end: 0 };
}

/** Parses a markdown file into front matter, code blocks and the prose lines outside them. */
export function readPage(file, text = readFileSync(file, "utf8")) {
  const lines = text.split(/\r?\n/);
  const { data, end } = frontMatter(lines);
  /** @type {Block[]} */
  const blocks = [];
  /** @type {{ line: number, text: string }[]} */
  const prose = [];
  for (let i = end; i < lines.length; i++) {
    const open = /^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)\s*(.*)$/.exec(lines[i]);
    if (!open) {
      prose.push({ line: i + 1, text: lines[i] });
      continue;
    }
    const [, indent, fence, lang, rest] = open;
    const body = [];
    let j = i + 1;
    const close = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`);
    for (; j < lines.length && !close.test(lines[j]); j++) body.push(indent ? lines[j].replace(new RegExp(`^ {0,${indent.length}}`), "") : lines[j]);
    if (j === lines.length) throw new Error(`${file}:${i + 1}: code block is never closed`);
    blocks.push({ lang: lang.toLowerCase(), meta: parseMeta(rest, `${file}:${i + 1}`), code: body.join("\n"), line: i + 1, file });
    i = j;
  }
  return { file, frontMatter: data, blocks, prose };
}

/** Markdown links and images in the prose of a page: `[text](target)`, `![alt](target)`, `<a href>`. */
export function linksOf(page) {
  const out = [];
  for (const { line, text } of page.prose) {
    // Inline code can hold brackets that are not links.
    const plain = text.replace(/`[^`]*`/g, "");
    for (const m of plain.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line, target: m[1] });
    for (const m of plain.matchAll(/<a\s[^>]*href="([^"]+)"/g)) out.push({ line, target: m[1] });
    for (const m of plain.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/g)) out.push({ line, target: m[1] });
  }
  return out;
}
