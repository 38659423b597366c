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
 * Usage (started once by src/auth/pam-spawner.ts, never by hand):
 *   tsieved-pam-helper --listen SOCKET [--service SERVICE [--prime-max-age-ms MS]]
 * It listens on the UNIX socket SOCKET (in a directory only root can enter) and
 * serves each connection in a session process of its own; it ends when its stdin
 * (a pipe from the server) ends. Forking here, from a small process, rather than in
 * the server keeps the cost of a fork off the server's event loop (Node forks the
 * whole server to spawn a program). The fork is also done ahead of the login: one
 * session process always waits, alone accepting on the socket, with pam_start for
 * SERVICE already made (pam_start reads the configuration and loads the modules,
 * none of which depends on the login: the listener makes it once, and each session
 * process gets a copy of the started transaction with the rest of its memory; it
 * is made again after MS, 30000 by default, so that a changed configuration is
 * read). Once it has accepted a connection it tells the listener, which forks the
 * next. Until then it dies with the listener; should none be waiting, the listener
 * accepts and forks per connection itself.
 *
 * One connection is one login; NUL-terminated fields, in this order:
 *   helper -> server  helper PID              (first, so the server can signal it)
 *   server -> helper  SERVICE RHOST USER PASSWORD
 *                     (the helper reads no further than the fields it expects: what
 *                     follows them is the broker's)
 *   helper -> server  ok USER UID GID HOME   (session open)
 *                   | rejected REASON | expired REASON | newauthtok REASON
 *                   | tempfail REASON       (then the connection is closed)
 *   server -> helper  the broker's argv, ended by an empty field: token_command
 *                     already expanded for USER (placeholders are the server's
 *                     business), then the broker; looked up in PATH without a slash.
 *                     No fields at all (the empty field alone): no exec, the child
 *                     serves the broker protocol itself (tsieved-broker.c, built
 *                     into this program), which saves an exec per login. The server
 *                     may send this right after the credentials when it does not
 *                     depend on USER; it then waits in the connection
 *   helper -> server  broker PID, or tempfail REASON
 * after which the connection is the broker's stdin and stdout. "ok" goes out
 * before the broker is forked, and the server may send the broker's requests as
 * soon as it has it (after the command): they wait in the connection, and the
 * broker's PID comes before any answer. fd 2 carries log
 * lines ("tsieved-pam-helper[PID]: ..."). Credentials never travel in argv or the
 * environment.
 * Exit status of a session process: 0 session ended normally, 1 rejected, 111
 * temporary failure (checkpassword convention), 2 broker ended abnormally.
 *
 * Sequence (pam_setcred(3): initgroups before setcred, setcred before
 * open_session, delete after close_session):
 *   pam_start (made ahead for SERVICE, by the listener: then PAM_USER is set to
 *   USER; another service asked for gets a pam_start of its own), PAM_RHOST,
 *   pam_authenticate(DISALLOW_NULL_AUTHTOK), pam_acct_mgmt,
 *   getpwnam(PAM_USER), initgroups, pam_setcred(ESTABLISH), pam_open_session,
 *   status ok, read the command, fork:
 *     child: status "broker PID" (written by the broker itself, so that no answer
 *            can precede it), setgid, setuid, then the
 *            PAM environment and exec the broker command,
 *            or with no command: not dumpable, and serve in this process
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
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_appl.h>

/* A session process talks to the server on fd 0 (reads) and fd 1 (writes), both
 * its connection; they become the broker's stdin and stdout. */
#define IN_FD 0
#define OUT_FD 1
#define MAX_USER 256
/* Longest home directory path we pass on; with the other "ok" fields it fits status_send()'s buffer. */
#define MAX_HOME 3072
#define MAX_PASSWORD 1024
#define MAX_SERVICE 128
#define MAX_RHOST 128
/* The broker's command: token_command and the broker's path. */
#define MAX_COMMAND 16384
#define MAX_ARGS 64
#define EXIT_REJECTED 1
#define EXIT_BROKER 2
#define EXIT_TEMPFAIL 111
/* Seconds a broker gets to finish after SIGTERM before it is killed. */
#define BROKER_GRACE_SECONDS 5
/* An idle session process starts its PAM transaction again after this long, so that
 * a changed PAM configuration is read (--prime-max-age-ms). */
static int prime_max_age_ms = 30000;
/* With no idle session process (a fork failed, or it died at once), the listener
 * serves logins itself and tries again to keep one after this long. */
#define PREFORK_RETRY_MS 1000

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
        ssize_t w = write(OUT_FD, buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
}

/* Reads exactly n bytes that are known to be waiting; -1 on error or EOF. */
static int consume(char *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(IN_FD, buf + off, n - off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        off += (size_t)r;
    }
    return 0;
}

/*
 * Reads `nfields` NUL-terminated fields (or, with nfields 0, fields up to an empty
 * one) into buf, and nothing after them: what follows belongs to the broker (the
 * server may send its first requests right behind). So it looks at what is waiting
 * (MSG_PEEK: the connection is a socket) and takes only up to the last field's NUL,
 * a couple of system calls rather than one per byte. Returns the length read, -1 on
 * error or EOF, -2 if longer than max.
 */
static ssize_t read_fields(char *buf, size_t max, int nfields)
{
    size_t len = 0;
    int seen = 0;
    for (;;) {
        if (len == max) return -2;
        ssize_t r = recv(IN_FD, buf + len, max - len, MSG_PEEK);
        if (r < 0 && errno == EINTR && !pending_signal) continue;
        if (r <= 0) return -1;
        size_t end = 0;
        for (size_t i = len; i < len + (size_t)r; i++) {
            if (buf[i] != '\0') continue;
            seen++;
            if ((nfields > 0 && seen == nfields) || (nfields == 0 && (i == 0 || buf[i - 1] == '\0'))) {
                end = i + 1;
                break;
            }
        }
        /* Without the end, everything peeked is ours: take it and wait for more. */
        size_t take = end ? end - len : (size_t)r;
        if (consume(buf + len, take) < 0) return -1;
        len += take;
        if (end) return (ssize_t)len;
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

static struct conv_data conv_data;
static const struct pam_conv conv = {conversation, &conv_data};
/* --service: the PAM service an idle session process starts its transaction for
 * before a login arrives (prime()); NULL: each login's pam_start comes with it. */
static const char *primed_service;

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
    char buf[MAX_SERVICE + MAX_RHOST + MAX_USER + MAX_PASSWORD + 4];
    const char *service;
    const char *rhost;
    const char *user;
    char *password;
    size_t plen;
};

/* Exactly four fields: the PAM service, the client's address, a user and a password. */
static void read_credentials(struct credentials *c)
{
    ssize_t len = read_fields(c->buf, sizeof c->buf, 4);
    if (len == -2) fail(EXIT_REJECTED, "rejected", "credentials too long", PAM_SUCCESS);
    if (len < 0) fail(EXIT_TEMPFAIL, "tempfail", "cannot read credentials", PAM_SUCCESS);
    c->service = c->buf;
    c->rhost = c->service + strlen(c->service) + 1;
    c->user = c->rhost + strlen(c->rhost) + 1;
    c->password = (char *)c->user + strlen(c->user) + 1;
    c->plen = strlen(c->password);
    size_t ulen = strlen(c->user);
    if (c->service[0] == '\0' || strlen(c->service) > MAX_SERVICE || strlen(c->rhost) > MAX_RHOST)
        fail(EXIT_TEMPFAIL, "tempfail", "malformed service or address", PAM_SUCCESS);
    if (ulen == 0 || ulen > MAX_USER) fail(EXIT_REJECTED, "rejected", "malformed user name", PAM_SUCCESS);
    if (c->plen == 0 || c->plen > MAX_PASSWORD) fail(EXIT_REJECTED, "rejected", "empty or over-long password", PAM_SUCCESS);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* When the transaction for --service was started (prime()). */
static double primed_at;

/*
 * Starts the transaction for --service ahead of a login: pam_start reads the
 * service's configuration and loads its modules (about 1.5 ms of CPU with pam_unix's
 * libraries), none of which depends on the login; modules run only from
 * pam_authenticate on. The listener does it, and every session process it forks
 * gets a copy of the started transaction with the rest of its memory, so a login
 * pays for no pam_start at all. A transaction that cannot start is left to the
 * login, which then starts its own.
 */
static void prime(void)
{
    if (primed_service == NULL) return;
    if (sess.pamh != NULL) pam_end(sess.pamh, PAM_SUCCESS);
    if (pam_start(primed_service, NULL, &conv, &sess.pamh) != PAM_SUCCESS) sess.pamh = NULL;
    primed_at = now_ms();
}

/*
 * Loads the name service modules that nsswitch.conf names for users and groups
 * (Debian's default adds libnss_systemd) into the listener, once, with a lookup of
 * each kind. Every login looks its user up (pam_unix, getpwnam) and its groups
 * (initgroups); a session process forked with the modules already in memory does
 * not dlopen, relocate and connect them again (measured with libnss_systemd: per
 * login five mmaps, four connects and about 10% of the page faults fewer). The
 * answers are not used.
 */
static void load_name_services(void)
{
    gid_t groups[1];
    int count = 1;
    (void)getpwnam("root");
    (void)getgrouplist("root", 0, groups, &count);
}

/* Milliseconds until the started transaction is too old (prime() again), or -1 without --service. */
static int prime_due_in(void)
{
    if (primed_service == NULL) return -1;
    double left = primed_at + prime_max_age_ms - now_ms();
    return left > 0 ? (int)left + 1 : 0;
}

/* pam_start (or the primed transaction, given the user) to pam_acct_mgmt, then the account PAM settled on (PAM_USER). */
static void authenticate(struct credentials *c)
{
    const char *service = c->service, *rhost = c->rhost;
    conv_data.password = c->password;
    int rc;
    if (sess.pamh != NULL && strcmp(service, primed_service) != 0) {
        /* The server asked for another service than the one prepared. */
        pam_end(sess.pamh, PAM_SUCCESS);
        sess.pamh = NULL;
    }
    if (sess.pamh != NULL) {
        /* What pam_start(service, user) does with the user: PAM_USER. */
        rc = pam_set_item(sess.pamh, PAM_USER, c->user);
        if (rc != PAM_SUCCESS) fail(EXIT_TEMPFAIL, "tempfail", pam_reason("pam_set_item(PAM_USER)", rc), rc);
    } else {
        rc = pam_start(service, c->user, &conv, &sess.pamh);
        if (rc != PAM_SUCCESS) {
            sess.pamh = NULL;
            fail(EXIT_TEMPFAIL, "tempfail", "pam_start failed", rc);
        }
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

/* The broker's argv (fields up to an empty one; none: serve in-process), or exits when the server sent nothing. */
static char **read_command(void)
{
    static char buf[MAX_COMMAND + 1];
    static char *argv[MAX_ARGS + 1];
    ssize_t len = read_fields(buf, MAX_COMMAND, 0);
    if (len < 0) fail(EXIT_TEMPFAIL, "tempfail", "no broker command from the server", PAM_SUCCESS);
    int n = 0;
    for (ssize_t i = 0; buf[i] != '\0'; i += (ssize_t)strlen(buf + i) + 1) {
        if (n == MAX_ARGS) fail(EXIT_TEMPFAIL, "tempfail", "too many arguments in the broker command", PAM_SUCCESS);
        argv[n++] = buf + i;
    }
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

/* The broker (tsieved-broker.c), compiled into this program with TSIEVED_BROKER_NO_MAIN. */
int tsieved_broker_serve(void);

/*
 * In the forked child: become the user for good, then exec the broker command, or
 * with none serve the broker protocol in this process (no exec: a login costs one
 * fork and no program start-up). Without an exec this process still holds what the
 * PAM transaction left in memory (module data, the authentication token, whatever a
 * module read as root): it is made non-dumpable, so the user cannot ptrace it, read
 * /proc/PID/mem or get a core dump of it, and it runs only the broker's loop.
 */
static void start_broker(int switch_user, pid_t parent, char **argv, char **env)
{
    /* The broker's pid is sent from here, the broker itself, so that it is out before
     * any answer: the server sends requests as soon as it has "ok", before the fork. */
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
    status_send("broker", pidbuf, (const char *)NULL);
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
    if (argv[0] == NULL) {
        if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_GET_DUMPABLE) != 0) _exit(EXIT_TEMPFAIL);
        /* _exit: the handlers and buffers of the parent's libraries are not ours to run. */
        _exit(tsieved_broker_serve());
    }
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

/* Forks the broker (which reports its pid), waits for it; returns its wait status. */
static int run_broker(int switch_user, char **argv)
{
    /* The environment matters only to a program we exec (KRB5CCNAME for k5start). */
    char **env = argv[0] == NULL ? NULL : broker_env();
    if (argv[0] != NULL && env == NULL) fail(EXIT_TEMPFAIL, "tempfail", "out of memory", PAM_BUF_ERR);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) fail(EXIT_TEMPFAIL, "tempfail", "fork failed", PAM_SYSTEM_ERR);
    if (pid == 0) start_broker(switch_user, parent, argv, env);
    broker_pid = pid;
    /* The connection is the broker's alone: if we kept it open, the server would
     * never see EOF when the broker dies. */
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 1) close(devnull);
    }
    if (pending_signal) kill(pid, pending_signal);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) break;
    }
    broker_pid = 0;
    alarm(0);
    return wstatus;
}

/* One login on the connection at fd 0/1; never returns. */
static void run_session(void)
{
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
    status_send("helper", pidbuf, (const char *)NULL);

    static struct credentials cred;
    read_credentials(&cred);
    authenticate(&cred);
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
    /* "ok" goes out before the fork: the server opens the user's store meanwhile, and
     * its first requests wait on the connection for the broker. */
    status_send("ok", sess.pw.pw_name, uidbuf, gidbuf, sess.pw.pw_dir, (const char *)NULL);
    char **command = read_command();
    if (pending_signal) fail(EXIT_TEMPFAIL, "tempfail", "ended before the broker started", PAM_SUCCESS);

    int wstatus = run_broker(switch_user, command);
    close_session(PAM_SUCCESS);
    if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) exit(0);
    if (WIFSIGNALED(wstatus) && (WTERMSIG(wstatus) == SIGTERM || WTERMSIG(wstatus) == SIGINT || WTERMSIG(wstatus) == SIGHUP))
        exit(0);
    logmsg("broker ended abnormally (status 0x%x)", wstatus);
    exit(EXIT_BROKER);
}

static void reap(int sig)
{
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

/* The connection becomes the session process's fd 0 and 1 (dup2 clears close-on-exec); never returns. */
static void serve_connection(int conn)
{
    if (dup2(conn, IN_FD) < 0 || dup2(conn, OUT_FD) < 0) _exit(EXIT_TEMPFAIL);
    close(conn);
    run_session();
}

/*
 * The idle session process: forked before its login arrives, with the listener's
 * started transaction (prime()), so that neither the fork nor pam_start is left
 * for the login. Until it has a login it dies with the listener
 * (PR_SET_PDEATHSIG), holds nothing of the server's (its pipes become /dev/null),
 * and is the only process accepting on the socket; it tells the listener on
 * `notify` once it has accepted, and is from then on a session process like any
 * other. A transaction started too long ago is started again, here as in the
 * listener, so that a change to the PAM configuration reaches logins within
 * prime_max_age_ms.
 */
static void idle_session(int lfd, int notify, pid_t listener)
{
    signal(SIGCHLD, SIG_DFL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != listener) _exit(EXIT_TEMPFAIL);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, IN_FD) < 0 || dup2(devnull, OUT_FD) < 0) _exit(EXIT_TEMPFAIL);
    close(devnull);
    int conn;
    for (;;) {
        struct pollfd p = {lfd, POLLIN, 0};
        int n = poll(&p, 1, prime_due_in());
        if (n == 0) {
            prime();
            continue;
        }
        if (n < 0 && errno != EINTR) _exit(EXIT_TEMPFAIL);
        if (n < 0) continue;
        conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (conn >= 0) break;
        if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) _exit(EXIT_TEMPFAIL);
    }
    close(lfd);
    if (write(notify, "a", 1) != 1) {
        /* The listener is gone: this login is served all the same. */
    }
    close(notify);
    /* A session goes on when the listener ends, as one the listener forked would. */
    prctl(PR_SET_PDEATHSIG, 0);
    serve_connection(conn);
}

/* The idle session process, and the pipe on which it says it took a login. */
struct idle_child {
    pid_t pid;
    int fd;
    double born;
};

static void prefork(int lfd, struct idle_child *idle)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return;
    pid_t listener = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        idle_session(lfd, p[1], listener);
    }
    close(p[1]);
    if (pid < 0) {
        logmsg("fork failed: %s", strerror(errno));
        close(p[0]);
        return;
    }
    idle->pid = pid;
    idle->fd = p[0];
    idle->born = now_ms();
}

/*
 * Serves logins on `path` until stdin ends. One session process is always waiting
 * (idle_session()), so a login finds the fork and pam_start done; when it takes a
 * login the listener forks the next. Should none be waiting (a fork failed, or one
 * died as soon as it started), the listener accepts and forks per login itself, and
 * tries again to keep one waiting after PREFORK_RETRY_MS.
 */
static int listen_for_logins(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        logmsg("socket path too long");
        return EXIT_TEMPFAIL;
    }
    strcpy(addr.sun_path, path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(path);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || chmod(path, 0600) < 0 || listen(lfd, 128) < 0) {
        logmsg("cannot listen on %s: %s", path, strerror(errno));
        return EXIT_TEMPFAIL;
    }
    /* The server's end: when it goes, so do we (sessions already open go on until
     * their brokers end, which they do when the server's end of them closes; the
     * idle session process has none yet and goes with us). */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reap;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    load_name_services();
    prime();
    /* Ready: the server waits for this line before it connects. */
    if (write(1, "ready\n", 6) != 6) return EXIT_TEMPFAIL;
    struct idle_child idle = {0, -1, 0};
    double retry_at = 0;
    for (;;) {
        if (prime_due_in() == 0) prime();
        if (idle.pid == 0 && now_ms() >= retry_at) prefork(lfd, &idle);
        /* While one waits, it alone accepts; we watch its pipe instead. */
        struct pollfd fds[2] = {{0, POLLIN, 0}, {idle.pid ? idle.fd : lfd, POLLIN, 0}};
        int timeout = idle.pid ? -1 : PREFORK_RETRY_MS, due = prime_due_in();
        if (due >= 0 && (timeout < 0 || due < timeout)) timeout = due;
        if (poll(fds, 2, timeout) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) {
            char c;
            if (read(0, &c, 1) <= 0) break;
        }
        if (!fds[1].revents) continue;
        if (idle.pid) {
            char c;
            ssize_t r = read(idle.fd, &c, 1);
            if (r < 0 && errno == EINTR) continue;
            /* It took a login, or ended without one; one that ended as soon as it
             * started is not forked again in a loop. */
            if (r != 1 && now_ms() - idle.born < PREFORK_RETRY_MS) retry_at = now_ms() + PREFORK_RETRY_MS;
            close(idle.fd);
            idle.pid = 0;
            idle.fd = -1;
            continue;
        }
        if (!(fds[1].revents & POLLIN)) continue;
        int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) continue;
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGCHLD, SIG_DFL);
            close(lfd);
            serve_connection(conn);
        }
        if (pid < 0) logmsg("fork failed: %s", strerror(errno));
        close(conn);
    }
    unlink(path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    int ok = argc % 2 == 1;
    for (int i = 1; ok && i + 1 < argc; i += 2) {
        const char *value = argv[i + 1];
        char *end = NULL;
        if (strcmp(argv[i], "--listen") == 0) socket_path = value;
        else if (strcmp(argv[i], "--service") == 0 && value[0] != '\0') primed_service = value;
        else if (strcmp(argv[i], "--prime-max-age-ms") == 0) {
            long ms = strtol(value, &end, 10);
            ok = *end == '\0' && ms > 0 && ms <= 3600000;
            prime_max_age_ms = (int)ms;
        } else ok = 0;
    }
    if (!ok || socket_path == NULL) {
        logmsg("usage: %s --listen SOCKET [--service PAM-SERVICE [--prime-max-age-ms MS]]", argv[0]);
        return EXIT_TEMPFAIL;
    }
    return listen_for_logins(socket_path);
}
