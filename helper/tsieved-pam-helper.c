/*
 * tsieved-pam-helper: one PAM transaction per process, and the parent of the
 * per-session worker that inherits its credentials.
 *
 * Why a separate process: pam_authenticate sleeps for the module's fail delay and
 * pam_setcred/pam_open_session (pam_krb5, pam_afs_session) give the *calling*
 * process its ticket cache and AFS PAG. Doing this here means a wrong password costs
 * this process, never the server's event loop or thread pool, and the worker that
 * writes the user's files is exec'd after setcred, so every one of its threads has
 * the PAG (reference/auth-and-grammar.md 1.4).
 *
 * Usage (spawned by src/auth/pam.ts, never by hand):
 *   tsieved-pam-helper [-n NICE] SERVICE RHOST WORKER [ARG...]
 * -n      raise the worker's nice value: the server multiplexes every session, so
 *         a crowd of workers starting up must not starve it of CPU.
 * WORKER and its arguments may contain {user} {localpart} {domain} {home} {u1} {u2}
 * (storage.token_command, e.g. a per-user keytab for k5start); they are expanded
 * with the account PAM settled on, which only this process knows. WORKER is looked
 * up in PATH if it has no slash.
 * fd 0/1  become the worker's stdin/stdout (the storage RPC pipes)
 * fd 2    log lines for the server ("tsieved-pam-helper: ...")
 * fd 3    credentials: "user\0password\0", read once, then closed. Never argv/env.
 * fd 4    status for the server, NUL-separated fields, then closed:
 *           ok\0USER\0UID\0GID\0HOME\0WORKERPID\0      (after the fork)
 *           rejected\0REASON\0 | expired\0REASON\0 | newauthtok\0REASON\0
 *           tempfail\0REASON\0
 * Exit status: 0 session ended normally, 1 rejected, 111 temporary failure
 * (checkpassword convention), 2 worker ended abnormally.
 *
 * Sequence (pam_setcred(3): initgroups before setcred, setcred before
 * open_session, delete after close_session):
 *   pam_start, PAM_RHOST, pam_authenticate(DISALLOW_NULL_AUTHTOK), pam_acct_mgmt,
 *   getpwnam(PAM_USER), initgroups, pam_setcred(ESTABLISH), pam_open_session, fork:
 *     child: PAM environment, setgid, initgroups, setuid, exec WORKER
 *     parent: wait, pam_close_session, pam_setcred(DELETE), pam_end
 *
 * Must not know: the storage RPC, Sieve, ManageSieve. It only starts the worker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <security/pam_appl.h>

#define CRED_FD 3
#define STATUS_FD 4
#define MAX_USER 256
/* Longest home directory path we pass on; with the other "ok" fields it fits status()'s buffer. */
#define MAX_HOME 3072
#define MAX_PASSWORD 1024
#define EXIT_REJECTED 1
#define EXIT_WORKER 2
#define EXIT_TEMPFAIL 111

/* closefrom(3) is glibc 2.34+; older systems close descriptor by descriptor. */
#if !(defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)))
static void closefrom(int lowfd)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lowfd; fd < max; fd++) close(fd);
}
#endif

static volatile sig_atomic_t child_pid = 0;
static volatile sig_atomic_t pending_signal = 0;

static void logmsg(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from concurrent helpers do not interleave. */
    dprintf(2, "tsieved-pam-helper[%ld]: %s\n", (long)getpid(), buf);
}

/* Writes NUL-terminated fields to the status pipe and closes it. */
static void status(const char *kind, ...)
{
    char buf[4096];
    size_t len = 0;
    const char *field = kind;
    va_list ap;
    va_start(ap, kind);
    while (field != NULL) {
        size_t n = strlen(field);
        if (len + n + 1 > sizeof buf) break;
        memcpy(buf + len, field, n + 1);
        len += n + 1;
        field = va_arg(ap, const char *);
    }
    va_end(ap);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(STATUS_FD, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(STATUS_FD);
}

static void fail(int code, const char *kind, const char *reason)
{
    logmsg("%s: %s", kind, reason);
    status(kind, reason, (const char *)NULL);
    exit(code);
}

/* Reads up to `max` bytes until EOF. Returns the length, -1 on error, -2 if longer. */
static ssize_t read_all(int fd, char *buf, size_t max)
{
    size_t len = 0;
    for (;;) {
        if (len == max) {
            char extra;
            ssize_t r = read(fd, &extra, 1);
            if (r == 0) return (ssize_t)len;
            if (r < 0 && errno == EINTR) continue;
            return r < 0 ? -1 : -2;
        }
        ssize_t r = read(fd, buf + len, max - len);
        if (r == 0) return (ssize_t)len;
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        len += (size_t)r;
    }
}

struct conv_data {
    const char *password;
};

/*
 * Answers only echo-off prompts, with the password; an echo-on prompt would be a
 * question we cannot put to a ManageSieve client (PAM_CONV_ERR). Info and error
 * messages are logged, never shown to the client.
 */
static int conversation(int num_msg, const struct pam_message **msg, struct pam_response **resp, void *appdata)
{
    struct conv_data *data = appdata;
    if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG) return PAM_CONV_ERR;
    struct pam_response *replies = calloc((size_t)num_msg, sizeof *replies);
    if (replies == NULL) return PAM_BUF_ERR;
    for (int i = 0; i < num_msg; i++) {
        switch (msg[i]->msg_style) {
        case PAM_PROMPT_ECHO_OFF:
            replies[i].resp = strdup(data->password);
            if (replies[i].resp == NULL) goto fail_buf;
            break;
        case PAM_TEXT_INFO:
            logmsg("pam info: %s", msg[i]->msg ? msg[i]->msg : "");
            break;
        case PAM_ERROR_MSG:
            logmsg("pam error: %s", msg[i]->msg ? msg[i]->msg : "");
            break;
        default:
            logmsg("pam asked an echo-on/unknown prompt (style %d); refusing", msg[i]->msg_style);
            goto fail_conv;
        }
    }
    *resp = replies;
    return PAM_SUCCESS;
fail_buf:
fail_conv:
    for (int i = 0; i < num_msg; i++) {
        if (replies[i].resp) {
            explicit_bzero(replies[i].resp, strlen(replies[i].resp));
            free(replies[i].resp);
        }
    }
    free(replies);
    return PAM_CONV_ERR;
}

/* Bytes of the first `chars` UTF-8 characters of s. */
static size_t utf8_prefix(const char *s, int chars)
{
    size_t i = 0;
    while (s[i] && chars > 0) {
        i++;
        while ((s[i] & 0xC0) == 0x80) i++;
        chars--;
    }
    return i;
}

/*
 * Expands the placeholders of one argument; other braces stay as they are (the
 * server checks token_command's placeholders at start-up). NULL (and *err set)
 * for an empty value, which would silently change a keytab path.
 */
static char *expand_arg(const char *tmpl, const struct passwd *pw, const char **err)
{
    size_t cap = strlen(tmpl) + 1, len = 0;
    char *out = malloc(cap);
    if (out == NULL) { *err = "out of memory"; return NULL; }
    const char *p = tmpl;
    while (*p) {
        const char *val = NULL;
        size_t vlen = 0;
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (close != NULL) {
            size_t klen = (size_t)(close - p - 1);
            const char *key = p + 1;
            const char *at = strrchr(pw->pw_name, '@');
            if (klen == 4 && strncmp(key, "user", 4) == 0) { val = pw->pw_name; vlen = strlen(val); }
            else if (klen == 9 && strncmp(key, "localpart", 9) == 0) { val = pw->pw_name; vlen = at ? (size_t)(at - val) : strlen(val); }
            else if (klen == 6 && strncmp(key, "domain", 6) == 0) { val = at ? at + 1 : ""; vlen = strlen(val); }
            else if (klen == 4 && strncmp(key, "home", 4) == 0) { val = pw->pw_dir; vlen = strlen(val); }
            else if (klen == 2 && strncmp(key, "u1", 2) == 0) { val = pw->pw_name; vlen = utf8_prefix(val, 1); }
            else if (klen == 2 && strncmp(key, "u2", 2) == 0) { val = pw->pw_name; vlen = utf8_prefix(val, 2); }
            if (val != NULL && vlen == 0) { free(out); *err = "a placeholder in the worker command is empty for this account"; return NULL; }
        }
        if (val != NULL) {
            p = close + 1;
        } else {
            val = p;
            vlen = 1;
            p++;
        }
        if (len + vlen + 1 > cap) {
            cap = (len + vlen + 1) * 2;
            char *grown = realloc(out, cap);
            if (grown == NULL) { free(out); *err = "out of memory"; return NULL; }
            out = grown;
        }
        memcpy(out + len, val, vlen);
        len += vlen;
    }
    out[len] = '\0';
    return out;
}

/* Seconds a worker gets to finish after SIGTERM before it is killed. */
#define WORKER_GRACE_SECONDS 5

static void forward_signal(int sig)
{
    pending_signal = sig;
    if (child_pid > 0) kill((pid_t)child_pid, sig);
    /* A worker stuck in the file system (a hung AFS server) must not keep the PAM
     * session open for ever: SIGKILL follows, and then we clean up as usual. */
    alarm(WORKER_GRACE_SECONDS);
}

static void kill_worker(int sig)
{
    (void)sig;
    if (child_pid > 0) kill((pid_t)child_pid, SIGKILL);
}

/* The worker's environment: a clean minimum plus what PAM modules exported (KRB5CCNAME). */
static char **worker_env(pam_handle_t *pamh, const struct passwd *pw)
{
    char **pam_env = pam_getenvlist(pamh);
    size_t n = 0;
    while (pam_env && pam_env[n]) n++;
    char **env = calloc(n + 8, sizeof *env);
    if (env == NULL) return NULL;
    size_t k = 0;
    const char *path = getenv("PATH");
    if (asprintf(&env[k++], "PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin") < 0) return NULL;
    if (asprintf(&env[k++], "HOME=%s", pw->pw_dir) < 0) return NULL;
    if (asprintf(&env[k++], "USER=%s", pw->pw_name) < 0) return NULL;
    if (asprintf(&env[k++], "LOGNAME=%s", pw->pw_name) < 0) return NULL;
    const char *lang = getenv("LANG");
    if (lang && asprintf(&env[k++], "LANG=%s", lang) < 0) return NULL;
    for (size_t i = 0; i < n; i++) env[k++] = pam_env[i];
    env[k] = NULL;
    free(pam_env);
    return env;
}

int main(int argc, char **argv)
{
    int niceness = 0;
    int opt;
    /* "+": stop at the first operand, the worker's own options are not ours. */
    while ((opt = getopt(argc, argv, "+n:")) != -1) {
        if (opt == 'n') {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 0 || v > 19) {
                logmsg("bad -n value");
                return EXIT_TEMPFAIL;
            }
            niceness = (int)v;
        } else {
            return EXIT_TEMPFAIL;
        }
    }
    if (argc - optind < 3) {
        logmsg("usage: %s [-n NICE] SERVICE RHOST WORKER [ARG...]", argv[0]);
        return EXIT_TEMPFAIL;
    }
    const char *service = argv[optind];
    const char *rhost = argv[optind + 1];
    char **worker_argv = &argv[optind + 2];
    /* The status pipe must not leak into the worker. */
    if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) < 0) {
        logmsg("status fd %d is not open", STATUS_FD);
        return EXIT_TEMPFAIL;
    }
    signal(SIGPIPE, SIG_IGN);

    static char cred[MAX_USER + MAX_PASSWORD + 2];
    ssize_t len = read_all(CRED_FD, cred, sizeof cred - 1);
    close(CRED_FD);
    if (len == -2) fail(EXIT_REJECTED, "rejected", "credentials too long");
    if (len < 0) fail(EXIT_TEMPFAIL, "tempfail", "cannot read credentials");
    cred[len] = '\0';
    /* Exactly two NUL-terminated fields: a user and a password. */
    const char *user = cred;
    size_t ulen = strnlen(cred, (size_t)len);
    if (ulen == (size_t)len || ulen == 0 || ulen > MAX_USER) fail(EXIT_REJECTED, "rejected", "malformed user name");
    const char *password = cred + ulen + 1;
    size_t plen = strnlen(password, (size_t)len - ulen - 1);
    if (ulen + 1 + plen + 1 != (size_t)len) fail(EXIT_REJECTED, "rejected", "malformed credentials");
    if (plen == 0 || plen > MAX_PASSWORD) fail(EXIT_REJECTED, "rejected", "empty or over-long password");

    struct conv_data data = {password};
    struct pam_conv conv = {conversation, &data};
    pam_handle_t *pamh = NULL;
    int rc = pam_start(service, user, &conv, &pamh);
    if (rc != PAM_SUCCESS) fail(EXIT_TEMPFAIL, "tempfail", "pam_start failed");
    if (rhost[0] != '\0') pam_set_item(pamh, PAM_RHOST, rhost);

    rc = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
    if (rc != PAM_SUCCESS) {
        char reason[512];
        snprintf(reason, sizeof reason, "pam_authenticate: %s", pam_strerror(pamh, rc));
        explicit_bzero(cred, sizeof cred);
        pam_end(pamh, rc);
        /* A module that could not answer is not a wrong password. */
        int temp = rc == PAM_AUTHINFO_UNAVAIL || rc == PAM_BUF_ERR || rc == PAM_SYSTEM_ERR || rc == PAM_ABORT;
        fail(temp ? EXIT_TEMPFAIL : EXIT_REJECTED, temp ? "tempfail" : "rejected", reason);
    }
    rc = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
    explicit_bzero(cred + ulen + 1, plen);
    if (rc != PAM_SUCCESS) {
        char reason[512];
        snprintf(reason, sizeof reason, "pam_acct_mgmt: %s", pam_strerror(pamh, rc));
        pam_end(pamh, rc);
        /* We cannot change a password over ManageSieve; say so in the log. */
        if (rc == PAM_NEW_AUTHTOK_REQD) fail(EXIT_REJECTED, "newauthtok", reason);
        if (rc == PAM_ACCT_EXPIRED) fail(EXIT_REJECTED, "expired", reason);
        fail(EXIT_REJECTED, "rejected", reason);
    }

    /* Modules may map the login name (PAM_USER); files belong to that user. */
    const void *item = NULL;
    if (pam_get_item(pamh, PAM_USER, &item) != PAM_SUCCESS || item == NULL) {
        pam_end(pamh, PAM_SYSTEM_ERR);
        fail(EXIT_TEMPFAIL, "tempfail", "no PAM_USER after authentication");
    }
    /* Refuse rather than truncate: a cut name could be another account. */
    if (strlen((const char *)item) > MAX_USER) {
        pam_end(pamh, PAM_USER_UNKNOWN);
        fail(EXIT_REJECTED, "rejected", "PAM_USER is longer than the helper accepts");
    }
    char pam_user[MAX_USER + 1];
    snprintf(pam_user, sizeof pam_user, "%s", (const char *)item);
    errno = 0;
    struct passwd *pwp = getpwnam(pam_user);
    if (pwp == NULL) {
        int e = errno;
        pam_end(pamh, PAM_USER_UNKNOWN);
        if (e != 0 && e != ENOENT && e != ESRCH) fail(EXIT_TEMPFAIL, "tempfail", "getpwnam failed");
        fail(EXIT_REJECTED, "rejected", "authenticated user has no Unix account (getpwnam)");
    }
    /* Copy: later NSS calls may reuse getpwnam's static storage. */
    struct passwd pw = *pwp;
    pw.pw_name = strdup(pwp->pw_name);
    pw.pw_dir = strdup(pwp->pw_dir);
    if (pw.pw_name == NULL || pw.pw_dir == NULL) fail(EXIT_TEMPFAIL, "tempfail", "out of memory");
    /* The "ok" status line carries the home directory; it must fit whole (see status()). */
    if (strlen(pw.pw_dir) > MAX_HOME) {
        pam_end(pamh, PAM_SYSTEM_ERR);
        fail(EXIT_TEMPFAIL, "tempfail", "home directory path too long");
    }

    uid_t euid = geteuid();
    int switch_user = euid != pw.pw_uid;
    if (switch_user && euid != 0) {
        pam_end(pamh, PAM_PERM_DENIED);
        fail(EXIT_TEMPFAIL, "tempfail", "the helper must run as root to start a worker as another user");
    }
    if (pw.pw_uid == 0) {
        pam_end(pamh, PAM_PERM_DENIED);
        fail(EXIT_REJECTED, "rejected", "refusing a session for uid 0");
    }
    /* pam_setcred(3): groups first, or a later setgroups wipes a group-encoded PAG. */
    if (switch_user && initgroups(pw.pw_name, pw.pw_gid) < 0) {
        pam_end(pamh, PAM_SYSTEM_ERR);
        fail(EXIT_TEMPFAIL, "tempfail", "initgroups failed");
    }
    rc = pam_setcred(pamh, PAM_ESTABLISH_CRED);
    if (rc != PAM_SUCCESS) {
        char reason[512];
        snprintf(reason, sizeof reason, "pam_setcred: %s", pam_strerror(pamh, rc));
        pam_end(pamh, rc);
        fail(EXIT_TEMPFAIL, "tempfail", reason);
    }
    rc = pam_open_session(pamh, 0);
    if (rc != PAM_SUCCESS) {
        char reason[512];
        snprintf(reason, sizeof reason, "pam_open_session: %s", pam_strerror(pamh, rc));
        pam_setcred(pamh, PAM_DELETE_CRED);
        pam_end(pamh, rc);
        fail(EXIT_TEMPFAIL, "tempfail", reason);
    }

    int worker_argc = argc - optind - 2;
    char **worker_exec = calloc((size_t)worker_argc + 1, sizeof *worker_exec);
    for (int i = 0; worker_exec != NULL && i < worker_argc; i++) {
        const char *err = "out of memory";
        worker_exec[i] = expand_arg(worker_argv[i], &pw, &err);
        if (worker_exec[i] == NULL) {
            pam_close_session(pamh, 0);
            pam_setcred(pamh, PAM_DELETE_CRED);
            pam_end(pamh, PAM_SYSTEM_ERR);
            fail(EXIT_TEMPFAIL, "tempfail", err);
        }
    }
    char **env = worker_exec ? worker_env(pamh, &pw) : NULL;
    if (env == NULL) {
        pam_close_session(pamh, 0);
        pam_setcred(pamh, PAM_DELETE_CRED);
        pam_end(pamh, PAM_BUF_ERR);
        fail(EXIT_TEMPFAIL, "tempfail", "out of memory");
    }

    /* Signals that end the session are passed on to the worker, then we clean up. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = kill_worker;
    sigaction(SIGALRM, &sa, NULL);

    pid_t pid = fork();
    if (pid < 0) {
        pam_close_session(pamh, 0);
        pam_setcred(pamh, PAM_DELETE_CRED);
        pam_end(pamh, PAM_SYSTEM_ERR);
        fail(EXIT_TEMPFAIL, "tempfail", "fork failed");
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        alarm(0);
        signal(SIGPIPE, SIG_DFL);
        /* Each step is checked: a worker that kept root would defeat the isolation. */
        if (switch_user) {
            /* No initgroups here: the parent set the groups before pam_setcred, which
             * may have added one (a group-encoded AFS PAG, pam_group); setgroups now
             * would drop it. The child inherits the parent's list across fork. */
            if (setgid(pw.pw_gid) < 0) { logmsg("setgid failed: %s", strerror(errno)); _exit(EXIT_TEMPFAIL); }
            if (setuid(pw.pw_uid) < 0) { logmsg("setuid failed: %s", strerror(errno)); _exit(EXIT_TEMPFAIL); }
            if (setuid(0) == 0 || geteuid() != pw.pw_uid || getegid() != pw.pw_gid) {
                logmsg("privileges were not dropped");
                _exit(EXIT_TEMPFAIL);
            }
        }
        /* Descriptors PAM modules left open (shadow, NSS, sockets) must not reach a
         * process the user controls; only the RPC pipes and the log survive. */
        closefrom(3);
        errno = 0;
        if (niceness > 0 && nice(niceness) == -1 && errno != 0) logmsg("nice failed: %s", strerror(errno));
        if (chdir("/") < 0) _exit(EXIT_TEMPFAIL);
        /* execvpe: a token wrapper such as k5start is usually named, not a path. */
        execvpe(worker_exec[0], worker_exec, env);
        logmsg("cannot exec %s: %s", worker_exec[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid;

    /* The worker's RPC pipes are the worker's alone: if we kept them open, the
     * server would never see EOF when the worker dies. */
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 1) close(devnull);
    }
    char uidbuf[32], gidbuf[32], pidbuf[32];
    snprintf(uidbuf, sizeof uidbuf, "%lu", (unsigned long)pw.pw_uid);
    snprintf(gidbuf, sizeof gidbuf, "%lu", (unsigned long)pw.pw_gid);
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)pid);
    status("ok", pw.pw_name, uidbuf, gidbuf, pw.pw_dir, pidbuf, (const char *)NULL);
    if (pending_signal) kill(pid, pending_signal);

    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) break;
    }
    child_pid = 0;
    alarm(0);

    int rc_close = pam_close_session(pamh, 0);
    int rc_del = pam_setcred(pamh, PAM_DELETE_CRED);
    if (rc_close != PAM_SUCCESS) logmsg("pam_close_session: %s", pam_strerror(pamh, rc_close));
    if (rc_del != PAM_SUCCESS) logmsg("pam_setcred(DELETE): %s", pam_strerror(pamh, rc_del));
    pam_end(pamh, rc_close == PAM_SUCCESS ? rc_del : rc_close);

    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return 0;
    if (WIFSIGNALED(wstatus) && (WTERMSIG(wstatus) == SIGTERM || WTERMSIG(wstatus) == SIGINT || WTERMSIG(wstatus) == SIGHUP))
        return 0;
    logmsg("worker ended abnormally (status 0x%x)", wstatus);
    return EXIT_WORKER;
}
