/**
 * The workspace as data, for the repository checks: its packages (package.json, source files), the
 * import graph of their TypeScript sources (static imports and exports, `import()` and `require()` with a
 * literal name, type-only imports included), and a package's install closure from package.json files.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';

export const ROOT = path.resolve(__dirname, '..', '..', '..');

export interface WorkspacePackage {
  name: string;
  dir: string;
  json: {
    name: string;
    main?: string;
    exports?: Record<string, string | { default?: string }>;
    dependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
    optionalDependencies?: Record<string, string>;
  };
  /** Source files under src/ (.ts, declarations excluded). */
  files: string[];
}

/** A test, or a helper only tests import: what devDependencies may serve. */
export const isTestFile = (file: string) => /\.test\.ts$|\.test-util\.ts$/.test(file);

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return d.name === 'node_modules' || d.name === 'dist' ? [] : walk(p);
    return /\.ts$/.test(d.name) && !/\.d\.ts$/.test(d.name) ? [p] : [];
  });
}

/** Every package of the workspace (pnpm-workspace.yaml's folders: packages/*, apps/*, tools/*). */
export function workspacePackages(): WorkspacePackage[] {
  return ['packages', 'apps', 'tools'].flatMap((group) => {
    const base = path.join(ROOT, group);
    if (!fs.existsSync(base)) return [];
    return fs
      .readdirSync(base)
      .map((d) => path.join(base, d))
      .filter((dir) => fs.existsSync(path.join(dir, 'package.json')))
      .map((dir) => {
        const json = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
        return { name: json.name, dir, json, files: walk(path.join(dir, 'src')) };
      });
  });
}

/** The module names a source file imports (static, dynamic and require, with literal names). */
export function importsOf(file: string): string[] {
  const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName);
}

/** The package a module name belongs to (`@scope/name/sub` -> `@scope/name`), or null for a relative or Node one. */
export function packageOf(spec: string): string | null {
  if (spec.startsWith('.') || spec.startsWith('node:') || spec.startsWith('/')) return null;
  const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  return (require('module') as typeof import('module')).builtinModules.includes(name) ? null : name;
}

function existingFile(base: string): string | null {
  for (const f of [base, `${base}.ts`, path.join(base, 'index.ts')]) if (fs.existsSync(f) && fs.statSync(f).isFile()) return f;
  return null;
}

/**
 * The source file a module name resolves to inside the workspace: a relative path, or a workspace package's
 * entry (its exports map read from dist/ back to src/). Null for anything outside the workspace.
 */
export function resolveInWorkspace(from: string, spec: string, byName: Map<string, WorkspacePackage>): string | null {
  if (spec.startsWith('.')) return existingFile(path.resolve(path.dirname(from), spec.replace(/\.js$/, '')));
  const name = packageOf(spec);
  const pkg = name ? byName.get(name) : undefined;
  if (!pkg) return null;
  const sub = spec === name ? '.' : `.${spec.slice(name!.length)}`;
  const entry = pkg.json.exports?.[sub];
  const target = typeof entry === 'string' ? entry : (entry?.default ?? (sub === '.' ? pkg.json.main : undefined));
  if (!target) return null;
  return existingFile(path.join(pkg.dir, target.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '')));
}

/** The strongly connected components with more than one node (or a self-edge): the circles of a graph. */
export function circles<T>(graph: Map<T, T[]>): T[][] {
  let next = 0;
  const index = new Map<T, number>();
  const low = new Map<T, number>();
  const onStack = new Set<T>();
  const stack: T[] = [];
  const found: T[][] = [];
  const visit = (v: T) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: T[] = [];
      let w: T;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component);
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** The package.json of `name` as Node would find it from `dir` (through node_modules, links followed), or null. */
function findInstalled(name: string, dir: string): string | null {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'node_modules', name, 'package.json');
    if (fs.existsSync(candidate)) return fs.realpathSync(candidate);
    if (path.dirname(d) === d) return null;
  }
}

/**
 * What installing `name` installs: the packages reachable through `dependencies` (and installed
 * `optionalDependencies`), workspace packages by name and others through node_modules, as name@version.
 * devDependencies are not installed for a consumer, so they are not followed.
 */
export function installClosure(name: string, packages: WorkspacePackage[]): Set<string> {
  const byName = new Map(packages.map((p) => [p.name, p]));
  const seen = new Set<string>();
  const queue: { json: WorkspacePackage['json']; dir: string }[] = [{ json: byName.get(name)!.json, dir: byName.get(name)!.dir }];
  while (queue.length) {
    const { json, dir } = queue.shift()!;
    const deps = { ...(json.dependencies ?? {}), ...(json.optionalDependencies ?? {}) };
    for (const dep of Object.keys(deps)) {
      const local = byName.get(dep);
      const file = local ? path.join(local.dir, 'package.json') : findInstalled(dep, dir);
      if (!file) {
        if (json.optionalDependencies?.[dep]) continue; // another platform's binary
        throw new Error(`${json.name} depends on ${dep}, which is not installed (run pnpm install)`);
      }
      const depJson = JSON.parse(fs.readFileSync(file, 'utf8'));
      const key = `${depJson.name}@${depJson.version}`;
      if (seen.has(key)) continue;
      seen.add(key);
      queue.push({ json: depJson, dir: path.dirname(file) });
    }
  }
  return seen;
}
