/**
 * Runtime isolation as installed: what installing a package installs, read from package.json files
 * (workspace packages by name, the others through node_modules; devDependencies are not installed for a
 * consumer). The ONNX path must not bring tfjs along.
 */
import { installClosure, workspacePackages } from './workspace.test-util';

const packages = workspacePackages();
const names = (closure: Set<string>) => [...closure].map((k) => k.slice(0, k.lastIndexOf('@')));

it('installing @causalfusion/onnx installs onnxruntime and no tfjs (no @tensorflow/*, no tfjs model package)', () => {
  const installed = names(installClosure('@causalfusion/onnx', packages));
  expect(installed).toContain('onnxruntime-node');
  expect(installed).toContain('@causalfusion/config');
  expect(installed.filter((n) => n.startsWith('@tensorflow/'))).toEqual([]);
  expect(installed.filter((n) => ['@causalfusion/backend', '@causalfusion/transformer', '@causalfusion/multimodal'].includes(n))).toEqual([]);
});

it('installing @causalfusion/config installs neither tfjs nor onnxruntime', () => {
  const installed = names(installClosure('@causalfusion/config', packages));
  expect(installed.filter((n) => n.startsWith('@tensorflow/') || n.startsWith('onnxruntime'))).toEqual([]);
});

it('the tfjs model does bring tfjs (the check sees what it is looking for)', () => {
  expect(names(installClosure('@causalfusion/transformer', packages))).toContain('@tensorflow/tfjs');
});
