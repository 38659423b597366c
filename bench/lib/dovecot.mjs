// Starts Dovecot's ManageSieve (Pigeonhole) for the side-by-side benchmark: writes
// a minimal dovecot.conf into the temp directory (loopback only, a high port,
// passwd-file users with the same {SHA256} hashes, the same throwaway certificate,
// base_dir/state_dir/logs in the temp dir), runs `dovecot -F -c FILE` and stops it.
// It never reads or touches the system's /etc/dovecot or running services.
// Must not know: the workloads.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForPort } from './wait.mjs';

export function findDovecot() {
  for (const p of ['/usr/sbin/dovecot', '/usr/local/sbin/dovecot']) {
    if (!existsSync(p)) continue;
    // Pigeonhole's ManageSieve is a separate package (dovecot-managesieved).
    for (const lib of [
      '/usr/lib/dovecot/managesieve',
      '/usr/libexec/dovecot/managesieve',
      '/usr/local/libexec/dovecot/managesieve',
    ]) {
      if (existsSync(lib)) return p;
    }
  }
  return undefined;
}

// pam (optional): { service } logs the users (Unix accounts with their own homes)
// in through that PAM service, with a session and credentials (session=yes
// setcred=yes), and their system passwd entries as userdb: each session's
// managesieve process runs as the user, as tsieved's file broker does.
export async function startDovecot({ dir, port, cert, users, binary, sessions, pam }) {
  const base = join(dir, 'dovecot');
  const homes = join(base, 'home');
  mkdirSync(join(base, 'run'), { recursive: true });
  mkdirSync(join(base, 'state'), { recursive: true });
  mkdirSync(homes, { recursive: true });
  if (!pam) {
    // Mail processes must not run as root: use nobody, like an unprivileged vmail uid.
    const uid = 65534;
    const gid = 65534;
    for (const u of users.users) {
      mkdirSync(join(homes, u), { recursive: true });
      chownSync(join(homes, u), uid, gid);
    }
    writeFileSync(
      join(base, 'passwd'),
      users.users.map((u) => `${u}:${users.hash}:${uid}:${gid}::${join(homes, u)}::`).join('\n') + '\n',
      { mode: 0o600 },
    );
    // The auth process runs as the "dovecot" user and must read the passwd file.
    const authUid = Number(execFileSync('id', ['-u', 'dovecot'], { encoding: 'utf8' }).trim());
    chownSync(join(base, 'passwd'), authUid, -1);
  }
  const dbs = pam
    ? `passdb {\n  driver = pam\n  args = session=yes setcred=yes ${pam.service}\n}\nuserdb {\n  driver = passwd\n}`
    : `passdb {\n  driver = passwd-file\n  args = ${join(base, 'passwd')}\n}\nuserdb {\n  driver = passwd-file\n  args = ${join(base, 'passwd')}\n}`;
  const limit = Math.max(1000, (sessions ?? 0) + 500);
  const configFile = join(base, 'dovecot.conf');
  writeFileSync(
    configFile,
    `
# Written by tsieved's bench/run.mjs; only for a benchmark on loopback.
base_dir = ${join(base, 'run')}
state_dir = ${join(base, 'state')}
log_path = ${join(base, 'dovecot.log')}
info_log_path = ${join(base, 'dovecot.log')}
instance_name = tsieved-bench-${port}
protocols = sieve
listen = 127.0.0.1
ssl = yes
ssl_cert = <${cert.cert}
ssl_key = <${cert.key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = 1
last_valid_uid = 0
mail_location = maildir:~/Maildir
default_process_limit = ${limit}
default_client_limit = ${limit * 2}
default_vsz_limit = 0

${dbs}

service managesieve-login {
  inet_listener sieve {
    address = 127.0.0.1
    port = ${port}
  }
  process_limit = ${limit}
  client_limit = 1
}
service managesieve {
  process_limit = ${limit}
}
service auth {
  client_limit = ${limit * 2}
}
service anvil {
  client_limit = ${limit * 3}
}
protocol sieve {
  mail_max_userip_connections = ${limit}
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_max_script_size = 2M
}
`,
  );
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  const child = spawn(binary, ['-F', '-c', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr.on('data', (d) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await Promise.race([
    waitForPort(port),
    exited.then((code) => {
      throw new Error(`dovecot exited (${code}) before listening:\n${tail}`);
    }),
  ]);
  return {
    name: 'dovecot',
    pid: child.pid,
    port,
    version: `Dovecot ${version}`,
    logFile: join(base, 'dovecot.log'),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}
