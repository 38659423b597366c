/**
 * Loads `tsieved check` from the one file the build bundles it into
 * (dist/cli/check.bundle.cjs, scripts/build.mjs) with V8's code cache for it
 * (check.bundle.cjs.cache, written by the build after a warm-up check), so a
 * check neither resolves some thirty modules nor compiles the validator's
 * functions again on every start: together most of what a check of a small
 * script cost beyond Node's own start-up (BENCHMARKS.md). Node 20 keeps no
 * code cache for ES modules, hence a CommonJS bundle run through node:vm. A
 * cache that does not fit (another Node or V8 flags) is ignored by V8, which
 * then compiles as usual.
 *
 * Built-in modules are taken with process.getBuiltinModule: an ES import of
 * node:fs makes Node load its stream classes, which a check never uses.
 *
 * Must not know: what checking does (check.ts).
 */
import type * as Check from './check.js';

export type CheckModule = typeof Check;

const BUNDLE = 'check.bundle.cjs';

interface Loaded {
  module: CheckModule;
  /** Writes V8's code cache for the bundle as it is now (after a warm-up run). */
  saveCache(): void;
  /** Whether V8 refused the cache that was there. */
  cacheRejected: boolean;
}

/** The bundle in `dir` (a file: URL of dist/cli/), or undefined when the build made none. */
export function loadCheckBundle(dir: URL): Loaded | undefined {
  const fs = process.getBuiltinModule('node:fs');
  const vm = process.getBuiltinModule('node:vm');
  const { createRequire } = process.getBuiltinModule('node:module');
  const { fileURLToPath } = process.getBuiltinModule('node:url');
  const file = new URL(BUNDLE, dir);
  const cacheFile = new URL(`${BUNDLE}.cache`, dir);
  let source: string;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  let cachedData: Buffer | undefined;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  const filename = fileURLToPath(file);
  // CommonJS's own wrapper. Code run this way cannot import() (Node 20), so the
  // caller hands runCheck the configuration loader (cli.ts).
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename,
    cachedData,
  });
  const wrapper = script.runInThisContext() as (
    exports: object,
    require: NodeJS.Require,
    module: { exports: object },
    filename: string,
    dirname: string,
  ) => void;
  const module = { exports: {} };
  wrapper(module.exports, createRequire(file), module, filename, fileURLToPath(dir));
  return {
    module: module.exports as CheckModule,
    saveCache: () => fs.writeFileSync(cacheFile, script.createCachedData()),
    cacheRejected: cachedData !== undefined && script.cachedDataRejected === true,
  };
}
