// Lint rules chosen for what they catch in this code base (floating promises, unused
// values, unsafe `any`, non-exhaustive switches, swallowed errors) and the layering
// every module header states. Style is left to Prettier (`npm run format:check`).
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * The layering each module header states: the folders (under src/) a folder's
 * modules may not import. `except` names single modules of a forbidden folder
 * that stay allowed (the shared contract modules). One entry per folder, since a
 * later `no-restricted-imports` setting replaces an earlier one for the same file.
 */
const WIRE_AND_UP = [
  'protocol',
  'commands',
  'server',
  'session',
  'config',
  'cli',
  'cluster',
  'control',
  'metrics',
  'migrate',
];
export const LAYERS = [
  {
    folder: 'protocol',
    forbidden: [
      'auth',
      'sasl',
      'sieve',
      'storage',
      'commands',
      'server',
      'session',
      'config',
      'migrate',
      'log',
      'cli',
      'cluster',
      'control',
      'metrics',
    ],
    why: 'protocol/ imports nothing of ours: it is bytes and tokens only',
  },
  {
    folder: 'auth',
    forbidden: [...WIRE_AND_UP, 'sasl', 'storage', 'sieve'],
    why: 'auth/ knows neither the wire, the config loader, SASL framing nor storage',
  },
  {
    folder: 'sasl',
    forbidden: [...WIRE_AND_UP, 'storage', 'sieve', 'auth'],
    except: ['auth/types.js', 'auth/identity-rules.js'],
    why: 'sasl/ sees auth only through its contract (auth/types, auth/identity-rules), never a backend or hash implementation',
  },
  {
    folder: 'sieve',
    forbidden: [...WIRE_AND_UP, 'auth', 'sasl', 'storage'],
    why: 'sieve/ is the validator alone: no wire, config loader, auth or storage',
  },
  {
    folder: 'storage',
    forbidden: [...WIRE_AND_UP, 'auth', 'sasl'],
    why: 'storage/ knows neither the wire, the config loader nor auth (shared shapes live in src/identity.ts)',
  },
];

export function layerRule({ folder, forbidden, except = [], why }) {
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              // Any of the forbidden folders, unless the whole rest of the path is an allowed module.
              regex: `(^|/)(?!(${except.map((e) => e.replace(/\./g, '\\.')).join('|') || '$^'})$)(${forbidden.join('|')})/`,
              message: why,
            },
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/sieve/generated/**', 'test-results/**', 'var/**', '.demo/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // An empty catch must say why it may ignore the failure (a comment in the block).
      'no-empty': ['error', { allowEmptyCatch: false }],
      '@typescript-eslint/only-throw-error': 'error',
      // Our regular expressions name control characters on purpose: to refuse them.
      'no-control-regex': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
    },
  },
  // The layering stated in each module header and in docs/.
  ...LAYERS.map(layerRule),
  {
    files: ['test/**/*.ts', 'bench/**/*.mjs', 'scripts/**/*.mjs', '*.config.*'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: globals.node },
  },
  {
    // Plain CommonJS that a worker thread loads as it is (src/storage/fs-thread.cjs).
    files: ['**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      sourceType: 'commonjs',
      globals: globals.node,
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, '@typescript-eslint/no-require-imports': 'off' },
  },
);
