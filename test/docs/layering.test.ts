/**
 * The layering docs/architecture.md describes is the one the imports have: each folder of src/ is
 * a layer, listed there from the top, and a module imports only from its own layer or from layers
 * below it. The order is read from the document itself, so the two cannot drift apart.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SRC = join(ROOT, 'src');

/** The layers in the order of the architecture page's first code block (top first). */
function documentedLayers(): string[] {
  const doc = readFileSync(join(ROOT, 'docs/architecture.md'), 'utf8');
  const block = /```\n([\s\S]*?)```/.exec(doc);
  if (block === null) throw new Error('docs/architecture.md has no layer list');
  return [...block[1]!.matchAll(/^src\/([a-z-]+)\//gm)].map((m) => m[1]!);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

/** The src/ folder a path lies in. */
function layerOf(path: string): string {
  return relative(SRC, path).split(sep)[0]!;
}

/** Relative module specifiers of a file's static and dynamic imports and re-exports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'(\.[^']+)'/g))
    specs.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)) specs.push(m[1]!);
  return specs;
}

describe('the layering of src/', () => {
  const layers = documentedLayers();
  const folders = readdirSync(SRC, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);

  it('names every folder of src/ once', () => {
    expect([...layers].sort()).toEqual([...folders].sort());
  });

  it('has every import point to the same layer or one below', () => {
    const wrong: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const from = layerOf(file);
      for (const spec of importsOf(file)) {
        const to = layerOf(resolve(file, '..', spec));
        if (layers.indexOf(to) < layers.indexOf(from))
          wrong.push(`${relative(ROOT, file)} imports ${spec} (${to} is above ${from})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('finds the imports it checks', () => {
    // A guard on the pattern above: the replay loop does import the allocator.
    expect(importsOf(join(SRC, 'replay/replay.ts')).some((s) => s.startsWith('../core/'))).toBe(
      true,
    );
  });
});
