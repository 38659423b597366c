/**
 * Test-owned PAM set-up for the pam*.test.ts suites: throw-away Unix users
 * (useradd, removed after), a pam_pwdfile password file, service files under
 * /etc/pam.d with unique names (removed after; PAM reads nothing else), and a
 * tracing PAM module built with gcc into a temp dir that logs every entry point
 * with its pid and parent pid.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tool } from '../helpers/tools.js';

export const PAM_MODULE_DIR = [
  '/lib/x86_64-linux-gnu/security',
  '/usr/lib/x86_64-linux-gnu/security',
  '/lib/security',
  '/usr/lib/security',
  '/lib64/security',
].find((d) => existsSync(join(d, 'pam_unix.so')));

const TRACE_SOURCE = String.raw`
#include <security/pam_modules.h>
#include <security/pam_ext.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>

static const char *arg(int argc, const char **argv, const char *key) {
    size_t n = strlen(key);
    for (int i = 0; i < argc; i++) if (strncmp(argv[i], key, n) == 0) return argv[i] + n;
    return NULL;
}
static void trace(pam_handle_t *pamh, const char *what, int flags, int argc, const char **argv) {
    const char *file = arg(argc, argv, "log=");
    if (!file) return;
    const void *user = NULL;
    pam_get_item(pamh, PAM_USER, &user);
    FILE *f = fopen(file, "a");
    if (!f) return;
    fprintf(f, "%s %ld %ld %d %d %s\n", what, (long)getpid(), (long)getppid(), flags, (int)getuid(), user ? (const char *)user : "-");
    fclose(f);
}
PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    trace(pamh, "authenticate", flags, argc, argv);
    const char *pause = arg(argc, argv, "sleep="); /* a module that hangs (a dead KDC) */
    if (pause) sleep((unsigned)atoi(pause));
    const char *mapto = arg(argc, argv, "mapto=");
    if (mapto) pam_set_item(pamh, PAM_USER, mapto);
    return PAM_SUCCESS;
}
PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    trace(pamh, (flags & PAM_DELETE_CRED) ? "setcred-delete" : (flags & PAM_ESTABLISH_CRED) ? "setcred-establish" : "setcred-other", flags, argc, argv);
    const char *leak = arg(argc, argv, "leak=");
    if (leak && (flags & PAM_ESTABLISH_CRED)) (void)open(leak, O_RDONLY); /* a module that forgets to close */
    /* addgroup=N: what pam_afs_session does with a group-encoded PAG, and pam_group. */
    const char *addgroup = arg(argc, argv, "addgroup=");
    if (addgroup && (flags & PAM_ESTABLISH_CRED)) {
        gid_t groups[256];
        int n = getgroups(255, groups);
        if (n < 0) return PAM_CRED_ERR;
        groups[n++] = (gid_t)atol(addgroup);
        if (setgroups((size_t)n, groups) != 0) return PAM_CRED_ERR;
    }
    if (flags & PAM_ESTABLISH_CRED) {
        char env[128];
        snprintf(env, sizeof env, "KRB5CCNAME=FILE:/tmp/krb5cc_tsieved_test_%ld", (long)getpid());
        pam_putenv(pamh, env);
    }
    return PAM_SUCCESS;
}
PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    trace(pamh, "acct_mgmt", flags, argc, argv);
    return PAM_SUCCESS;
}
PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    trace(pamh, "open_session", flags, argc, argv);
    return PAM_SUCCESS;
}
PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv) {
    trace(pamh, "close_session", flags, argc, argv);
    return PAM_SUCCESS;
}
`;

export interface TraceEntry {
  readonly what: string;
  readonly pid: number;
  readonly ppid: number;
  readonly flags: number;
  readonly uid: number;
  readonly user: string;
}

export interface TestUser {
  readonly name: string;
  readonly password: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

export class PamFixture {
  readonly dir: string;
  readonly traceModule: string;
  readonly pwdfile: string;
  private readonly services: string[] = [];
  private readonly users: TestUser[] = [];
  private readonly tag = randomBytes(3).toString('hex');
  private userCount = 0;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'tsieved-pam-'));
    chmodSync(this.dir, 0o755);
    const src = join(this.dir, 'pam_tsieved_trace.c');
    writeFileSync(src, TRACE_SOURCE);
    this.traceModule = join(this.dir, 'pam_tsieved_trace.so');
    execFileSync(tool('gcc'), ['-shared', '-fPIC', '-Wall', '-o', this.traceModule, src, '-lpam']);
    this.pwdfile = join(this.dir, 'pwdfile');
    writeFileSync(this.pwdfile, '', { mode: 0o600 });
    mkdirSync(join(this.dir, 'homes'), { mode: 0o755 });
  }

  /** A fresh trace log path. */
  traceLog(name: string): string {
    const path = join(this.dir, `trace-${name}.log`);
    writeFileSync(path, '');
    chmodSync(path, 0o666);
    return path;
  }

  readTrace(path: string): TraceEntry[] {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [what, pid, ppid, flags, uid, user] = l.split(' ');
        return { what: what, pid: Number(pid), ppid: Number(ppid), flags: Number(flags), uid: Number(uid), user: user };
      });
  }

  /** Writes /etc/pam.d/tsieved-test-<tag>-<name>; returns the service name. */
  service(name: string, lines: string[]): string {
    const service = `tsieved-test-${this.tag}-${name}`;
    writeFileSync(join('/etc/pam.d', service), lines.join('\n') + '\n', { mode: 0o644 });
    this.services.push(service);
    return service;
  }

  /** A Unix user (useradd) with home under the temp dir, password set for pam_unix and in the pwdfile. */
  user(options: { expired?: boolean; mustChangePassword?: boolean } = {}): TestUser {
    const name = `tsv${this.tag}${(this.userCount++).toString(36)}`;
    const password = `pw-${randomBytes(6).toString('hex')}`;
    const home = join(this.dir, 'homes', name);
    execFileSync(tool('useradd'), ['-M', '-U', '-d', home, '-s', '/usr/sbin/nologin', name], { stdio: 'pipe' });
    const user: TestUser = {
      name,
      password,
      uid: Number(execFileSync(tool('id'), ['-u', name], { encoding: 'utf8' }).trim()),
      gid: Number(execFileSync(tool('id'), ['-g', name], { encoding: 'utf8' }).trim()),
      home,
    };
    this.users.push(user);
    execFileSync(tool('chpasswd'), [], { input: `${name}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    if (options.expired) execFileSync(tool('usermod'), ['-e', '1', name], { stdio: 'pipe' });
    if (options.mustChangePassword) execFileSync(tool('chage'), ['-d', '0', name], { stdio: 'pipe' });
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, user.uid, user.gid);
    const hash = execFileSync(tool('openssl'), ['passwd', '-6', password], { encoding: 'utf8' }).trim();
    writeFileSync(this.pwdfile, `${name}:${hash}\n`, { flag: 'a' });
    return user;
  }

  cleanup(): void {
    for (const s of this.services) rmSync(join('/etc/pam.d', s), { force: true });
    for (const u of this.users) {
      try {
        execFileSync(tool('userdel'), [u.name], { stdio: 'pipe' });
      } catch {
        /* already gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
