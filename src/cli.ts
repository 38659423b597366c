#!/usr/bin/env node
/**
 * The `tsieved` command: argv and signals in, exit codes out.
 *   tsieved serve (--config FILE | --demo)
 *   tsieved check [--config FILE] [--capabilities "..."] [--exim PATH] [--json] FILE...
 *   tsieved config check --config FILE
 *   tsieved who|kick|reload [--config FILE]   (through the control socket)
 *   tsieved build-helper | --help | --version
 * Must not know: how the server works inside (main.ts builds it).
 */
import type { Config } from './config/schema.js';
import type { Logger } from './log/logger.js';
import type { ControlSocket } from './control/socket.js';

// Each command loads its modules when it runs (dynamic imports below): the
// server's modules and the configuration schema would make `tsieved check` of a
// small script take several times as long as the check itself.
const usage = async (): Promise<string> => {
  const [{ MIGRATE_USAGE }, { CONTROL_USAGE }] = await Promise.all([
    import('./cli/migrate.js'),
    import('./control/commands.js'),
  ]);
  return `usage:
  tsieved serve (--config FILE | --demo [--listen HOST:PORT])
  tsieved check [--config FILE] [--capabilities "cap1 cap2"] [--exim PATH] [--json] FILE...
  tsieved config check --config FILE
  ${CONTROL_USAGE}
  ${MIGRATE_USAGE.replace(/^usage: /, '')}
  tsieved build-helper     (compile the file broker and the PAM helper: a C compiler, and libpam0g-dev for PAM)
  tsieved --help | --version`;
};

/** "host:port" or "[v6]:port" from the config, as a client's -s and -p want them. */
function hostAndPort(listen: string): [string, string] {
  const colon = listen.lastIndexOf(':');
  return [listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), listen.slice(colon + 1)];
}

async function serve(argv: string[]): Promise<number> {
  const [
    { loadConfig, parseConfig, readConfigText },
    { prepareDemo },
    { createRootLogger },
    { startServer, buildServices },
    { startControlSocket },
    { runPrimary, resolveWorkers },
    { serveAsWorker, configFromPrimary },
    { PrimaryAdmission, PrimaryLoginLimits },
    { default: cluster },
    { parseArgs },
  ] = await Promise.all([
    import('./config/loader.js'),
    import('./demo.js'),
    import('./log/logger.js'),
    import('./main.js'),
    import('./control/socket.js'),
    import('./cluster/primary.js'),
    import('./cluster/worker.js'),
    import('./cluster/worker-limits.js'),
    import('node:cluster'),
    import('node:util'),
  ]);
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, demo: { type: 'boolean' }, listen: { type: 'string' } },
  });
  let config: Config;
  let configText: string | undefined;
  let log: Logger;
  if (values.demo) {
    const demo = prepareDemo(undefined, values.listen);
    config = demo.config;
    log = createRootLogger(config.log.level);
    // Said once, by the primary (or the one process); each worker prepares the same demo.
    if (!cluster.isWorker) {
      log.info(
        { event: 'demo', user: demo.user, password: demo.password, data: demo.varDir },
        `demo account: user ${demo.user} password ${demo.password} (${demo.tls ? 'STARTTLS uses a self-signed certificate' : 'no openssl to make a certificate: no STARTTLS, clear-text logins on loopback'})`,
      );
      const [demoHost, demoPort] = hostAndPort(demo.listen);
      process.stdout.write(
        `\ntsieved demo on ${demo.listen}\n  user:     ${demo.user}\n  password: ${demo.password}\n  data:     ${demo.varDir}\n` +
          `  try:      sieve-connect ${demo.tls ? '--notlsverify' : '--clearchan'} -s ${demoHost} -p ${demoPort} -u ${demo.user} --list\n\n`,
      );
    }
  } else if (values.config) {
    // A worker applies the text its primary read (the configuration in force), not the file as it is now.
    configText = (cluster.isWorker ? await configFromPrimary() : undefined) ?? (await readConfigText(values.config));
    config = parseConfig(configText, values.config);
    log = createRootLogger(config.log.level);
  } else {
    process.stderr.write((await usage()) + '\n');
    return 2;
  }
  const workers = resolveWorkers(config);
  if (cluster.isPrimary && workers > 1) {
    // A configuration nobody could use is refused here, once, with every problem and
    // exit code 1, as a single process does, before any worker starts.
    const built = await buildServices(config, log);
    await built.validator.close();
    await built.services.auth.close?.();
    return runPrimary(
      config,
      values.config && configText !== undefined ? { file: values.config, text: configText } : undefined,
      workers,
      log,
    );
  }
  const inWorker = cluster.isWorker;
  if (inWorker) log = log.child({ worker: cluster.worker?.id });
  const server = await startServer(
    config,
    log,
    inWorker
      ? { admission: new PrimaryAdmission(), logins: new PrimaryLoginLimits(), serveMetrics: false, worker: true }
      : {},
  );
  const file = values.config;
  const reload = () =>
    file
      ? server.reload(() => loadConfig(file))
      : Promise.resolve({ ok: false as const, error: 'the demo has no configuration file to re-read' });
  let control: ControlSocket | undefined;
  // Signal handlers before anything else is awaited: a SIGHUP right after the
  // listeners are up must reload, not kill the process (SIGHUP's default action).
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'stopping' }, 'SIGTERM: no new connections; letting sessions finish');
    server
      .stop()
      .then(() => control?.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  });
  process.on('SIGINT', () => process.emit('SIGTERM' as never));
  process.on('SIGHUP', () => {
    // A worker reloads when the primary asks (SIGHUP goes to the primary).
    if (file && !inWorker) void reload();
  });
  // In a cluster the primary owns the control socket and asks the workers.
  if (inWorker)
    serveAsWorker(server, config, { reload: (text) => server.reload(async () => parseConfig(text, file)) }, log);
  else if (config.control.socket !== '') {
    // Without it the server still serves; only who/kick/reload are unavailable.
    control = await startControlSocket(
      config.control.socket,
      {
        who: async () => server.sessions().map((s) => ({ ...s })),
        kick: (target) => server.kick(target),
        reload,
      },
      log,
    ).catch((error: unknown) => {
      log.warn(
        { event: 'control-unavailable', path: config.control.socket, err: (error as Error).message },
        'no control socket: tsieved who/kick/reload will not work',
      );
      return undefined;
    });
  }
  return new Promise<number>(() => undefined);
}

async function configCheck(argv: string[]): Promise<number> {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  if (!values.config) {
    process.stderr.write((await usage()) + '\n');
    return 2;
  }
  const [{ loadConfig }, { createRootLogger }, { buildServices }] = await Promise.all([
    import('./config/loader.js'),
    import('./log/logger.js'),
    import('./main.js'),
  ]);
  const config = await loadConfig(values.config);
  const log = createRootLogger('warn');
  const built = await buildServices(config, log);
  await built.validator.close();
  await built.services.auth.close?.();
  process.stdout.write(`${values.config}: configuration is valid\n`);
  return 0;
}

/**
 * check.js, or the same code bundled into one file by the build, with V8's
 * code cache (cli/check-bundle.ts): most of what makes `tsieved check` of a
 * small script quick.
 */
async function loadCheck(): Promise<typeof import('./cli/check.js')> {
  const { loadCheckBundle } = await import('./cli/check-bundle.js');
  return loadCheckBundle(new URL('./cli/', import.meta.url))?.module ?? import('./cli/check.js');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest);
      case 'check': {
        const { runCheck } = await loadCheck();
        const loadConfigFile = async (file: string) => (await import('./config/loader.js')).loadConfig(file);
        // Getters: a check that prints nothing never sets up the standard streams.
        return await runCheck(
          rest,
          {
            get stdin() {
              return process.stdin;
            },
            get stdout() {
              return process.stdout;
            },
            get stderr() {
              return process.stderr;
            },
          },
          loadConfigFile,
        );
      }
      case 'migrate': {
        const { runMigrate } = await import('./cli/migrate.js');
        return await runMigrate(rest, { stdout: process.stdout, stderr: process.stderr });
      }
      case 'config':
        if (rest[0] === 'check') return await configCheck(rest.slice(1));
        break;
      case 'who':
      case 'kick':
      case 'reload':
        return await (
          await import('./control/commands.js')
        ).runControl(command, rest, { stdout: process.stdout, stderr: process.stderr });
      case 'build-helper':
        return (await import('./cli/build-helper.js')).buildHelper(process.stdout, process.stderr);
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write((await usage()) + '\n');
        return 0;
      case '--version':
      case '-V':
        process.stdout.write(`tsieved ${(await import('./main.js')).VERSION}\n`);
        return 0;
    }
  } catch (error) {
    // Loaded already if they could have been thrown.
    const [{ ConfigError }, { StartupError }] = await Promise.all([import('./config/loader.js'), import('./main.js')]);
    if (error instanceof StartupError) {
      for (const problem of error.problems) process.stderr.write(`tsieved: ${problem}\n`);
      return 1;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`tsieved: ${error.message}\n`);
      return 1;
    }
    if (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`tsieved: ${error.message}\n${await usage()}\n`);
      return 2;
    }
    throw error;
  }
  process.stderr.write((await usage()) + '\n');
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // A cluster worker that could not start: its IPC channel would keep it alive.
    if (code !== 0 && process.connected) process.disconnect();
  },
  (error: unknown) => {
    process.stderr.write(`tsieved: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
