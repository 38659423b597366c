// Lint rules chosen for what they catch in this code base (floating promises, unused
// values, unsafe `any`, non-exhaustive switches, swallowed errors) and the layering
// every module header states. Style is left to Prettier (`npm run format:check`).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** A forbidden import of our own code: the folders `from` may not reach. */
function layer(files, forbidden, message) {
  return {
    files,
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden.map((folder) => ({
            group: [`**/${folder}/**`, `**/${folder}/*.js`, `../${folder}/*`, `./${folder}/*`],
            message,
          })),
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
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
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
  // The layering stated in each module header and in docs/design.md.
  layer(
    ['src/protocol/**/*.ts'],
    ['auth', 'sasl', 'sieve', 'storage', 'commands', 'server', 'session', 'config', 'migrate', 'log', 'cli'],
    'protocol/ imports nothing of ours: it is bytes and tokens only',
  ),
  layer(
    ['src/auth/**/*.ts', 'src/sasl/**/*.ts', 'src/sieve/**/*.ts', 'src/storage/**/*.ts'],
    ['protocol', 'commands', 'server', 'config', 'cli'],
    'domain modules (auth, sasl, sieve, storage) never know the wire protocol, commands, the server or the config loader',
  ),
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
  },
);
