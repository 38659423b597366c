/*
 * tsieved-pam-helper: one PAM transaction per process, and the parent of the
 * session's file broker (tsieved-broker.c), which inherits its credentials.
 *
 * Why a separate process: pam_authenticate sleeps for the module's fail delay and
 * pam_setcred/pam_open_session (pam_krb5, pam_afs_session) give the *calling*
 * process its ticket cache and AFS PAG. Doing this here means a wrong password costs
 * this process, never the server's event loop or thread pool, and the broker that
 * writes the user's files is forked after setcred, so it has the PAG
 * (see helper/README.md).
 *
 * Usage (spawned by src/auth/pam.ts, never by hand):
 *   tsieved-pam-helper SERVICE RHOST
 * fd 0/1  become the broker's stdin/stdout (its request and response pipes)
 * fd 2    log lines for the server ("tsieved-pam-helper[PID]: ...")
 * fd 3    credentials: "user\0password\0", read once, then closed. Never argv/env.
 * fd 4    status for the server, NUL-separated fields:
 *           ok\0USER\0UID\0GID\0HOME\0          (session open; the server answers on fd 5)
 *           broker\0PID\0                     (after the fork; then closed)
 *           rejected\0REASON\0 | expired\0REASON\0 | newauthtok\0REASON\0
 *           tempfail\0REASON\0                (then closed)
 * fd 5    the broker's argv from the server, NUL-terminated fields, then EOF:
 *         token_command already expanded for USER (placeholders are the server's
 *         business), then the broker. The program is looked up in PATH if it has no
 *         slash. EOF without a command ends the session.
 * Exit status: 0 session ended normally, 1 rejected, 111 temporary failure
 * (checkpassword convention), 2 broker ended abnormally.
 *
 * Sequence (pam_setcred(3): initgroups before setcred, setcred before
 * open_session, delete after close_session):
 *   pam_start, PAM_RHOST, pam_authenticate(DISALLOW_NULL_AUTHTOK), pam_acct_mgmt,
 *   getpwnam(PAM_USER), initgroups, pam_setcred(ESTABLISH), pam_open_session,
 *   status ok, read the command, fork:
 *     child: PAM environment, setgid, setuid, exec the broker command
 *     parent: wait, pam_close_session, pam_setcred(DELETE), pam_end
 *
 * Must not know: the broker's protocol, Sieve, ManageSieve, placeholders.
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
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <security/pam_appl.h>

#define CRED_FD 3
#define STATUS_FD 4
#define COMMAND_FD 5
#define MAX_USER 256
/* Longest home directory path we pass on; with the other "ok" fields it fits status_send()'s buffer. */
#define MAX_HOME 3072
#define MAX_PASSWORD 1024
/* The broker's command: token_command and the broker's path. */
#define MAX_COMMAND 16384
#define MAX_ARGS 64
#define EXIT_REJECTED 1
#define EXIT_BROKER 2
#define EXIT_TEMPFAIL 111
/* Seconds a broker gets to finish after SIGTERM before it is killed. */
#define BROKER_GRACE_SECONDS 5

/* closefrom(3) is glibc 2.34+; older systems close descriptor by descriptor. */
#if !(defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34)))
static void closefrom(int lowfd)
{
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lowfd; fd < max; fd++) close(fd);
}
#endif

static volatile sig_atomic_t broker_pid = 0;
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

/* Writes NUL-terminated fields to the status pipe (a NULL ends the list). */
static void status_send(const char *kind, ...)
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
            if (r < 0 && errno == EINTR && !pending_signal) continue;
            return r < 0 ? -1 : -2;
        }
        ssize_t r = read(fd, buf + len, max - len);
        if (r == 0) return (ssize_t)len;
        if (r < 0) {
            /* A signal that ends the session also ends the wait for input. */
            if (errno == EINTR && !pending_signal) continue;
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


/* ---- the PAM session, and the one way it is closed ---- */

struct session {
    pam_handle_t *pamh;
    int cred_established;
    int opened;
    struct passwd pw;
};

static struct session sess;

/*
 * Closes whatever of the session is open, in pam_setcred(3)'s order: close the
 * session, delete the credentials (AFS unlog, ticket cache), end the transaction.
 * `rc` is the status pam_end is told about.
 */
static void close_session(int rc)
{
    if (sess.pamh == NULL) return;
    if (sess.opened) {
        int r = pam_close_session(sess.pamh, 0);
        if (r != PAM_SUCCESS) logmsg("pam_close_session: %s", pam_strerror(sess.pamh, r));
        if (rc == PAM_SUCCESS) rc = r;
    }
    if (sess.cred_established) {
        int r = pam_setcred(sess.pamh, PAM_DELETE_CRED);
        if (r != PAM_SUCCESS) logmsg("pam_setcred(DELETE): %s", pam_strerror(sess.pamh, r));
        if (rc == PAM_SUCCESS) rc = r;
    }
    pam_end(sess.pamh, rc);
    sess.pamh = NULL;
    sess.opened = sess.cred_established = 0;
}

/* Closes the session, reports `kind` with `reason` on the status pipe and exits. */
static void fail(int code, const char *kind, const char *reason, int pam_rc)
{
    close_session(pam_rc);
    logmsg("%s: %s", kind, reason);
    status_send(kind, reason, (const char *)NULL);
    close(STATUS_FD);
    exit(code);
}

/* A PAM call's failure as a reason string ("pam_authenticate: ..."). */
static const char *pam_reason(const char *call, int rc)
{
    static char reason[512];
    snprintf(reason, sizeof reason, "%s: %s", call, pam_strerror(sess.pamh, rc));
    return reason;
}

/* ---- steps of main() ---- */

struct credentials {
    char buf[MAX_USER + MAX_PASSWORD + 2];
    const char *user;
    char *password;
    size_t plen;
};

/* Exactly two NUL-terminated fields on fd 3: a user and a password. */
static void read_credentials(struct credentials *c)
{
    ssize_t len = read_all(CRED_FD, c->buf, sizeof c->buf - 1);
    close(CRED_FD);
    if (len == -2) fail(EXIT_REJECTED, "rejected", "credentials too long", PAM_SUCCESS);
    if (len < 0) fail(EXIT_TEMPFAIL, "tempfail", "cannot read credentials", PAM_SUCCESS);
    c->buf[len] = '\0';
    size_t ulen = strnlen(c->buf, (size_t)len);
    if (ulen == (size_t)len || ulen == 0 || ulen > MAX_USER) fail(EXIT_REJECTED, "rejected", "malformed user name", PAM_SUCCESS);
    c->user = c->buf;
    c->password = c->buf + ulen + 1;
    c->plen = strnlen(c->password, (size_t)len - ulen - 1);
    if (ulen + 1 + c->plen + 1 != (size_t)len) fail(EXIT_REJECTED, "rejected", "malformed credentials", PAM_SUCCESS);
    if (c->plen == 0 || c->plen > MAX_PASSWORD) fail(EXIT_REJECTED, "rejected", "empty or over-long password", PAM_SUCCESS);
}

/* pam_start to pam_acct_mgmt, then the account PAM settled on (PAM_USER). */
static void authenticate(const char *service, const char *rhost, struct credentials *c)
{
    static struct conv_data data;
    static struct pam_conv conv = {conversation, &data};
    data.password = c->password;
    int rc = pam_start(service, c->user, &conv, &sess.pamh);
    if (rc != PAM_SUCCESS) {
        sess.pamh = NULL;
        fail(EXIT_TEMPFAIL, "tempfail", "pam_start failed", rc);
    }
    if (rhost[0] != '\0') pam_set_item(sess.pamh, PAM_RHOST, rhost);

    rc = pam_authenticate(sess.pamh, PAM_DISALLOW_NULL_AUTHTOK);
    if (rc != PAM_SUCCESS) {
        explicit_bzero(c->buf, sizeof c->buf);
        /* A module that could not answer is not a wrong password. */
        int temp = rc == PAM_AUTHINFO_UNAVAIL || rc == PAM_BUF_ERR || rc == PAM_SYSTEM_ERR || rc == PAM_ABORT;
        fail(temp ? EXIT_TEMPFAIL : EXIT_REJECTED, temp ? "tempfail" : "rejected", pam_reason("pam_authenticate", rc), rc);
    }
    rc = pam_acct_mgmt(sess.pamh, PAM_DISALLOW_NULL_AUTHTOK);
    explicit_bzero(c->password, c->plen);
    if (rc != PAM_SUCCESS) {
        const char *reason = pam_reason("pam_acct_mgmt", rc);
        /* We cannot change a password over ManageSieve; say so in the log. */
        if (rc == PAM_NEW_AUTHTOK_REQD) fail(EXIT_REJECTED, "newauthtok", reason, rc);
        if (rc == PAM_ACCT_EXPIRED) fail(EXIT_REJECTED, "expired", reason, rc);
        fail(EXIT_REJECTED, "rejected", reason, rc);
    }

    /* Modules may map the login name (PAM_USER); files belong to that user. */
    const void *item = NULL;
    if (pam_get_item(sess.pamh, PAM_USER, &item) != PAM_SUCCESS || item == NULL)
        fail(EXIT_TEMPFAIL, "tempfail", "no PAM_USER after authentication", PAM_SYSTEM_ERR);
    /* Refuse rather than truncate: a cut name could be another account. */
    if (strlen((const char *)item) > MAX_USER)
        fail(EXIT_REJECTED, "rejected", "PAM_USER is longer than the helper accepts", PAM_USER_UNKNOWN);
    char pam_user[MAX_USER + 1];
    snprintf(pam_user, sizeof pam_user, "%s", (const char *)item);
    errno = 0;
    struct passwd *pwp = getpwnam(pam_user);
    if (pwp == NULL) {
        int e = errno;
        if (e != 0 && e != ENOENT && e != ESRCH) fail(EXIT_TEMPFAIL, "tempfail", "getpwnam failed", PAM_USER_UNKNOWN);
        fail(EXIT_REJECTED, "rejected", "authenticated user has no Unix account (getpwnam)", PAM_USER_UNKNOWN);
    }
    /* Copy: later NSS calls may reuse getpwnam's static storage. */
    sess.pw = *pwp;
    sess.pw.pw_name = strdup(pwp->pw_name);
    sess.pw.pw_dir = strdup(pwp->pw_dir);
    if (sess.pw.pw_name == NULL || sess.pw.pw_dir == NULL) fail(EXIT_TEMPFAIL, "tempfail", "out of memory", PAM_BUF_ERR);
    /* The "ok" status carries the home directory; it must fit whole (see status_send()). */
    if (strlen(sess.pw.pw_dir) > MAX_HOME) fail(EXIT_TEMPFAIL, "tempfail", "home directory path too long", PAM_SYSTEM_ERR);
    if (sess.pw.pw_uid == 0) fail(EXIT_REJECTED, "rejected", "refusing a session for uid 0", PAM_PERM_DENIED);
}

/* Groups, credentials, session: the order pam_setcred(3) asks for. */
static void establish(int switch_user)
{
    /* Groups first, or a later setgroups wipes a group-encoded PAG. */
    if (switch_user && initgroups(sess.pw.pw_name, sess.pw.pw_gid) < 0)
        fail(EXIT_TEMPFAIL, "tempfail", "initgroups failed", PAM_SYSTEM_ERR);
    int rc = pam_setcred(sess.pamh, PAM_ESTABLISH_CRED);
    if (rc != PAM_SUCCESS) fail(EXIT_TEMPFAIL, "tempfail", pam_reason("pam_setcred", rc), rc);
    sess.cred_established = 1;
    rc = pam_open_session(sess.pamh, 0);
    if (rc != PAM_SUCCESS) fail(EXIT_TEMPFAIL, "tempfail", pam_reason("pam_open_session", rc), rc);
    sess.opened = 1;
}

/* The broker's argv from fd 5 (NUL-terminated fields), or exits when there is none. */
static char **read_command(void)
{
    static char buf[MAX_COMMAND + 1];
    static char *argv[MAX_ARGS + 1];
    ssize_t len = read_all(COMMAND_FD, buf, MAX_COMMAND);
    close(COMMAND_FD);
    if (len == 0) fail(EXIT_TEMPFAIL, "tempfail", "the server sent no broker command", PAM_SUCCESS);
    if (len < 0 || buf[len - 1] != '\0') fail(EXIT_TEMPFAIL, "tempfail", "malformed or over-long broker command", PAM_SUCCESS);
    int n = 0;
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
        if (n == MAX_ARGS) fail(EXIT_TEMPFAIL, "tempfail", "too many arguments in the broker command", PAM_SUCCESS);
        argv[n++] = buf + i;
    }
    if (argv[0][0] == '\0') fail(EXIT_TEMPFAIL, "tempfail", "empty broker program", PAM_SUCCESS);
    argv[n] = NULL;
    return argv;
}

/* The broker's environment: a clean minimum plus what PAM modules exported (KRB5CCNAME). */
static char **broker_env(void)
{
    char **pam_env = pam_getenvlist(sess.pamh);
    size_t n = 0;
    while (pam_env && pam_env[n]) n++;
    char **env = calloc(n + 8, sizeof *env);
    if (env == NULL) return NULL;
    size_t k = 0;
    const char *path = getenv("PATH");
    if (asprintf(&env[k++], "PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin") < 0) return NULL;
    if (asprintf(&env[k++], "HOME=%s", sess.pw.pw_dir) < 0) return NULL;
    if (asprintf(&env[k++], "USER=%s", sess.pw.pw_name) < 0) return NULL;
    if (asprintf(&env[k++], "LOGNAME=%s", sess.pw.pw_name) < 0) return NULL;
    const char *lang = getenv("LANG");
    if (lang && asprintf(&env[k++], "LANG=%s", lang) < 0) return NULL;
    for (size_t i = 0; i < n; i++) env[k++] = pam_env[i];
    env[k] = NULL;
    free(pam_env);
    return env;
}

/* In the forked child: become the user for good, then exec the broker command. */
static void exec_broker(int switch_user, pid_t parent, char **argv, char **env)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    alarm(0);
    signal(SIGPIPE, SIG_DFL);
    /* Each step is checked: a broker that kept root would defeat the isolation. */
    if (switch_user) {
        /* No initgroups here: the parent set the groups before pam_setcred, which
         * may have added one (a group-encoded AFS PAG, pam_group); setgroups now
         * would drop it. The child inherits the parent's list across fork. */
        if (setgid(sess.pw.pw_gid) < 0) { logmsg("setgid failed: %s", strerror(errno)); _exit(EXIT_TEMPFAIL); }
        if (setuid(sess.pw.pw_uid) < 0) { logmsg("setuid failed: %s", strerror(errno)); _exit(EXIT_TEMPFAIL); }
        if (setuid(0) == 0 || geteuid() != sess.pw.pw_uid || getegid() != sess.pw.pw_gid) {
            logmsg("privileges were not dropped");
            _exit(EXIT_TEMPFAIL);
        }
    }
    /* The broker (or its token wrapper) dies with us; set after setuid, which clears it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(EXIT_TEMPFAIL);
    /* Descriptors PAM modules left open (shadow, NSS, sockets) must not reach a
     * process the user controls; only the broker's pipes and the log survive. */
    closefrom(3);
    if (chdir("/") < 0) _exit(EXIT_TEMPFAIL);
    /* execvpe: a token wrapper such as k5start is usually named, not a path. */
    execvpe(argv[0], argv, env);
    logmsg("cannot exec %s: %s", argv[0], strerror(errno));
    _exit(127);
}

static void forward_signal(int sig)
{
    pending_signal = sig;
    if (broker_pid > 0) kill((pid_t)broker_pid, sig);
    /* A broker stuck in the file system (a hung AFS server) must not keep the PAM
     * session open for ever: SIGKILL follows, and then we clean up as usual. */
    alarm(BROKER_GRACE_SECONDS);
}

static void kill_broker(int sig)
{
    (void)sig;
    if (broker_pid > 0) kill((pid_t)broker_pid, SIGKILL);
}

/* Signals that end the session are passed on to the broker, then we clean up. */
static void handle_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = kill_broker;
    sigaction(SIGALRM, &sa, NULL);
}

/* Forks the broker, reports its pid, waits for it; returns its wait status. */
static int run_broker(int switch_user, char **argv)
{
    char **env = broker_env();
    if (env == NULL) fail(EXIT_TEMPFAIL, "tempfail", "out of memory", PAM_BUF_ERR);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail(EXIT_TEMPFAIL, "tempfail", "fork failed", PAM_SYSTEM_ERR);
    if (pid == 0) exec_broker(switch_user, parent, argv, env);
    broker_pid = pid;
    /* The broker's pipes are the broker's alone: if we kept them open, the server
     * would never see EOF when the broker dies. */
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 1) close(devnull);
    }
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)pid);
    status_send("broker", pidbuf, (const char *)NULL);
    close(STATUS_FD);
    if (pending_signal) kill(pid, pending_signal);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) break;
    }
    broker_pid = 0;
    alarm(0);
    return wstatus;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        logmsg("usage: %s SERVICE RHOST", argv[0]);
        return EXIT_TEMPFAIL;
    }
    /* The status and command pipes must not leak into the broker. */
    if (fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC) < 0) {
        logmsg("status fd %d is not open", STATUS_FD);
        return EXIT_TEMPFAIL;
    }
    if (fcntl(COMMAND_FD, F_SETFD, FD_CLOEXEC) < 0) {
        logmsg("command fd %d is not open", COMMAND_FD);
        return EXIT_TEMPFAIL;
    }
    signal(SIGPIPE, SIG_IGN);

    static struct credentials cred;
    read_credentials(&cred);
    authenticate(argv[1], argv[2], &cred);
    uid_t euid = geteuid();
    int switch_user = euid != sess.pw.pw_uid;
    if (switch_user && euid != 0)
        fail(EXIT_TEMPFAIL, "tempfail", "the helper must run as root to start a broker as another user", PAM_PERM_DENIED);
    establish(switch_user);
    /* From here on a signal must not skip close_session(). */
    handle_signals();

    char uidbuf[32], gidbuf[32];
    snprintf(uidbuf, sizeof uidbuf, "%lu", (unsigned long)sess.pw.pw_uid);
    snprintf(gidbuf, sizeof gidbuf, "%lu", (unsigned long)sess.pw.pw_gid);
    status_send("ok", sess.pw.pw_name, uidbuf, gidbuf, sess.pw.pw_dir, (const char *)NULL);
    char **command = read_command();
    if (pending_signal) fail(EXIT_TEMPFAIL, "tempfail", "ended before the broker started", PAM_SUCCESS);

    int wstatus = run_broker(switch_user, command);
    close_session(PAM_SUCCESS);
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return 0;
    if (WIFSIGNALED(wstatus) && (WTERMSIG(wstatus) == SIGTERM || WTERMSIG(wstatus) == SIGINT || WTERMSIG(wstatus) == SIGHUP))
        return 0;
    logmsg("broker ended abnormally (status 0x%x)", wstatus);
    return EXIT_BROKER;
}
