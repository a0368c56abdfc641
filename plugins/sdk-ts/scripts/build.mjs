#!/usr/bin/env node
// Builds one TypeScript plugin into a wasm component: tsc type-checks it (strict), rolldown
// bundles the plugin and this SDK into one ES module (orch:plugin/* stay imports),
// componentize-js turns it into a component of the `model-plugin` world. The orch host runs this (see host/src/typescript.rs); it caches
// the toolchain and the output by content hash.
//
// usage: node build.mjs <plugin-dir> <wit-file> <sdk-entry.ts> <out.wasm>
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';
import { componentize } from '@bytecodealliance/componentize-js';

const [pluginDir, witPath, sdkEntry, out] = process.argv.slice(2).map((p) => resolve(p));
if (!out) {
  console.error('usage: build.mjs <plugin-dir> <wit-file> <sdk-entry.ts> <out.wasm>');
  process.exit(2);
}
const pkgPath = join(pluginDir, 'package.json');
const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
const entry = join(pluginDir, pkg.main ?? 'src/plugin.ts');
if (!existsSync(entry)) {
  console.error(`${pkgPath}: field "main" points at ${entry}, which does not exist: create it or fix "main"`);
  process.exit(1);
}
// Type-check first (strict): rolldown only strips types, so a type error would otherwise ship.
const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tsconfig = out + '.tsconfig.json';
writeFileSync(
  tsconfig,
  JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: 'es2022',
      module: 'esnext',
      moduleResolution: 'bundler',
      skipLibCheck: true,
      lib: ['es2022', 'dom'],
      types: [],
      paths: { '@orch/plugin-sdk': [sdkEntry] },
    },
    files: [join(sdkRoot, 'src/wit.d.ts'), entry],
  }),
);
const tsc = spawnSync(process.execPath, [join(sdkRoot, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], {
  cwd: pluginDir,
  encoding: 'utf8',
});
rmSync(tsconfig, { force: true });
if (tsc.status !== 0) {
  console.error(`type errors (fix them in ${pluginDir}):\n${tsc.stdout}${tsc.stderr}`.trim());
  process.exit(1);
}
const bundled = out + '.bundle.js';
const bundle = await rolldown({
  input: entry,
  external: [/^orch:plugin\//],
  platform: 'neutral',
  resolve: { alias: { '@orch/plugin-sdk': sdkEntry } },
  logLevel: 'warn',
});
await bundle.write({ file: bundled, format: 'esm', inlineDynamicImports: true });
const { component } = await componentize({
  sourcePath: bundled,
  witPath,
  worldName: 'model-plugin',
  // No fetch() (it would import wasi:http): a plugin reaches the network only through
  // orch:plugin/http. Without stdio the engine imports no wasi:filesystem either; console.* is
  // routed to orch:plugin/log by the SDK.
  disableFeatures: ['stdio', 'http', 'fetch-event'],
});
writeFileSync(out, component);
