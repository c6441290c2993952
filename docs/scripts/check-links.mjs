#!/usr/bin/env node
// Checks that every relative link in the docs and the READMEs leads somewhere: a file or folder of
// the repository, a page of the site, and, for `#anchors` into markdown, a heading of that page.
// VitePress also fails its build on dead links between pages; this covers the READMEs, links to
// files outside the site, and anchors, which VitePress does not check.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { linksOf, readPage } from "./markdown.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DOCS = join(ROOT, "docs");

/** VitePress's heading ids (the slugify of @mdit-vue/shared), from a heading's text. */
export function slugify(text) {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036F]/g, "")
    .replace(/[\u0000-\u001f]/g, "")
    .replace(/[\s~`!@#$%^&*()\-_+=[\]{}|\\;:"'“”‘’<>,.?/]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^(\d)/, "_$1")
    .replace(/^-+|-+$/g, "")
    .toLowerCase();
}

function markdownFiles(dir, skip = new Set()) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || skip.has(e.name) || (e.name.startsWith(".") && e.name !== ".vitepress")) continue;
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...markdownFiles(full));
    else if (e.name.endsWith(".md")) out.push(full);
  }
  return out;
}

const anchorCache = new Map();
/** The ids of a markdown file's headings (`{#custom}` ids included). */
function anchorsOf(file) {
  if (!anchorCache.has(file)) {
    const ids = new Set();
    for (const { text } of readPage(file).prose) {
      const m = /^#{1,6}\s+(.*?)\s*(?:\{#([^}]+)\})?\s*$/.exec(text);
      if (!m) continue;
      if (m[2]) ids.add(m[2]);
      // Inline markup does not reach the id: `code`, **bold**, [links](x).
      ids.add(slugify(m[1].replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*_]/g, "")));
    }
    anchorCache.set(file, ids);
  }
  return anchorCache.get(file);
}

/** The file a link target names, trying what VitePress and GitHub accept; null when none exists. */
function resolveTarget(from, path) {
  const inDocs = from.startsWith(`${DOCS}/`);
  const base = path.startsWith("/") ? (inDocs ? DOCS : ROOT) : dirname(from);
  const full = join(base, decodeURIComponent(path));
  const candidates = [full, full.replace(/\.html$/, ".md"), `${full}.md`, join(full, "index.md"), join(full, "README.md")];
  for (const c of candidates) {
    if (existsSync(c) && (c === full || statSync(c).isFile())) return c;
  }
  return null;
}

/** Every problem with the links of `files`; links that leave the repository come back as `outside`. */
export function checkLinks(files) {
  const problems = [];
  const outside = [];
  for (const file of files) {
    const page = readPage(file);
    const rel = relative(ROOT, file);
    for (const { line, target } of linksOf(page)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
      const [path, anchor] = target.split("#");
      const where = `${rel}:${line}: ${target}`;
      const resolved = path === "" ? file : resolveTarget(file, path.split("?")[0]);
      if (!resolved) {
        problems.push(`${where}: nothing there`);
        continue;
      }
      if (!resolved.startsWith(`${ROOT}/`)) {
        outside.push(`${where}: outside the repository (${resolved})`);
        continue;
      }
      // Anchors into generated API pages follow TypeDoc's own ids; VitePress's build covers those.
      if (anchor && resolved.endsWith(".md") && !resolved.startsWith(join(DOCS, "api"))) {
        if (!anchorsOf(resolved).has(anchor)) problems.push(`${where}: no heading #${anchor} in ${relative(ROOT, resolved)}`);
      }
    }
  }
  return { problems, outside };
}

/** The docs pages (and the generated API pages, when present), the root README and the package READMEs. */
export function linkedFiles() {
  const readmes = readdirSync(join(ROOT, "packages"))
    .map((p) => join(ROOT, "packages", p, "README.md"))
    .filter((f) => existsSync(f));
  return [...markdownFiles(DOCS, new Set(["scripts"])), join(ROOT, "README.md"), ...readmes];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = linkedFiles();
  const { problems, outside } = checkLinks(files);
  for (const o of outside) process.stdout.write(`note: ${o}\n`);
  for (const p of problems) process.stdout.write(`dead link: ${p}\n`);
  process.stdout.write(`${files.length} markdown files checked, ${problems.length} dead link(s)\n`);
  process.exitCode = problems.length === 0 ? 0 : 1;
}
