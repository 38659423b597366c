/*
 * tsieved-broker: one session's file system calls, made as that session's user.
 *
 * Why: the server keeps every decision (names, locking, repairs, validation) and
 * needs the user's identity only for the system calls themselves, so that the
 * kernel (and AFS, with the user's token in this process's PAG) decides what the
 * user may reach. The PAM helper (tsieved-pam-helper.c) forks its session child
 * after pam_setcred, switches it to the user and runs tsieved_broker_serve() in it
 * (the helper is built with this file, TSIEVED_BROKER_NO_MAIN), or execs this
 * program through a token wrapper such as k5start when token_command is set; for
 * the other backends the server starts it with the user's uid/gid.
 *
 * Protocol (src/storage/broker/protocol.ts is the other side), on stdin/stdout:
 *   frame    = u32 BE length N, then N bytes of body; requests are handled one at a
 *              time and answered in order (but create-file requests that arrived
 *              together: all created and written, then all fsynced and closed, so
 *              that they share a journal commit; one with if-previous-ok, below,
 *              waits for the one before it); the answers to requests that
 *              arrived together are written together, once the last is served
 *   request  = u32 id, u8 op, then the op's fields; bit 7 of the op byte (0x80,
 *              if-previous-ok) makes the request run only if the request just before
 *              it in the stream succeeded (status 0), whatever batch either came in:
 *              otherwise it is answered 5 (skipped) without any system call, and
 *              counts as failed for the request after it. The first request of the
 *              stream has no request before it: with the bit, it is skipped. Its
 *              fields are checked all the same. The other bits are the op number;
 *              an unknown number (so any other bit) is a protocol error.
 *              path = u16 BE length + bytes (absolute, no NUL, < PATH_MAX)
 *              u32 = BE; data = the rest of the body
 *     1 create-exclusive  u32 mode, path              -> u32 handle
 *     2 write             u32 handle, data            -> (all of it written)
 *     3 fsync             u32 handle
 *     4 fchmod            u32 handle, u32 mode
 *     5 close             u32 handle                  (close(2)'s own error)
 *     6 read              path                        -> data (regular files only)
 *     7 readdir           path                        -> names, each u16 length + bytes
 *     8 stat / 9 lstat    path                        -> u64 size, i64 mtime s, u32 mtime ns,
 *                                                        u32 uid, u32 mode, u32 nlink
 *    10 rename            path, path
 *    11 unlink / 13 rmdir / 14 fsync-directory  path
 *    12 mkdir             u32 mode, path
 *    15 create-file       u32 mode, u32 flags, path, data
 *                         a new file made whole in one request: created as 1 does,
 *                         with mode 0600; all of data written; fchmod to mode unless
 *                         mode is 0xffffffff; fsync if flags bit 0 (other bits are a
 *                         protocol error); close, with its error. Stops at the first
 *                         failure: 1 if nothing was created, 4 if the file was (it is
 *                         closed and left for the server to remove).
 *   response = u32 id, u8 status, then: 0 ok + result | 1 u32 errno |
 *              2 (not a regular file) | 3 (larger than the limits) |
 *              4 u32 errno (create-file only: created, then a later step failed) |
 *              5 (skipped: if-previous-ok, and the request before it did not succeed)
 *
 * Hard limits: a request frame above MAX_REQUEST, an unknown op or a truncated
 * field ends the process (exit 3): the byte stream cannot be trusted after that,
 * and only this session is lost. Reads stop at MAX_READ. At most MAX_HANDLES
 * files are open. Modes are masked to 0777. Files are opened O_NONBLOCK and
 * checked with fstat, so a FIFO or device put where a script belongs is refused
 * at once; new files are created O_EXCL|O_NOFOLLOW. Paths are used as given: no
 * expansion, no policy, no exec. EOF on stdin ends the process (exit 0); so does
 * the death of its parent (PR_SET_PDEATHSIG), so it never outlives its session.
 *
 * Must not know: scripts, Sieve, ManageSieve, PAM, where the user's files are.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_REQUEST (1024 * 1024 + 16 * 1024)
#define MAX_READ (8 * 1024 * 1024)
/* A response carries at most MAX_READ bytes of data plus its small head. */
#define MAX_RESPONSE (MAX_READ + 64)
#define MAX_HANDLES 16
#define EXIT_PROTOCOL 3

enum { OP_CREATE = 1, OP_WRITE, OP_FSYNC, OP_FCHMOD, OP_CLOSE, OP_READ, OP_READDIR, OP_STAT, OP_LSTAT,
       OP_RENAME, OP_UNLINK, OP_MKDIR, OP_RMDIR, OP_SYNCDIR, OP_CREATE_FILE };
enum { ST_OK = 0, ST_ERRNO = 1, ST_NOTREGULAR = 2, ST_TOOLARGE = 3, ST_CREATED_THEN_ERRNO = 4, ST_SKIPPED = 5 };
/* In the op byte: run only if the request before succeeded (see the header). */
#define OP_IF_PREVIOUS_OK 0x80u
#define CREATE_FILE_KEEP_MODE 0xffffffffu
#define CREATE_FILE_SYNC 1u

static int handles[MAX_HANDLES];

/* ---- output ---- */

/* Answers not yet written: whole frames before frame_start, the one being built after. */
static unsigned char *out;
static size_t out_len, out_cap, frame_start;
/* Answers waiting beyond this are written before the next request is served. */
#define OUT_FLUSH_BYTES 65536

static void out_reserve(size_t n)
{
    if (out_len + n <= out_cap) return;
    size_t cap = out_cap ? out_cap : 4096;
    while (cap < out_len + n) cap *= 2;
    unsigned char *grown = realloc(out, cap);
    if (grown == NULL) _exit(111);
    out = grown;
    out_cap = cap;
}

static void put_bytes(const void *p, size_t n)
{
    out_reserve(n);
    memcpy(out + out_len, p, n);
    out_len += n;
}

static void put_u8(unsigned v) { unsigned char b = (unsigned char)v; put_bytes(&b, 1); }
static void put_u16(unsigned v) { unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v}; put_bytes(b, 2); }
static void put_u32(uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
    put_bytes(b, 4);
}
static void put_u64(uint64_t v) { put_u32((uint32_t)(v >> 32)); put_u32((uint32_t)v); }

/*
 * Whether the request answered last succeeded: what a request with if-previous-ok
 * depends on. Answers are made in request order, and a request's last begin() is
 * its answer, so this is kept here. None yet: not succeeded.
 */
static int previous_ok;

/* Starts a response (dropping one begun and not finished): room for the length prefix, then id and status. */
static void begin(uint32_t id, unsigned status)
{
    previous_ok = status == ST_OK;
    out_len = frame_start;
    put_u32(0);
    put_u32(id);
    put_u8(status);
}

/* Finishes the response begun last; it is written with the others by flush_output(). */
static void flush_response(void)
{
    unsigned char *f = out + frame_start;
    uint32_t n = (uint32_t)(out_len - frame_start - 4);
    f[0] = (unsigned char)(n >> 24); f[1] = (unsigned char)(n >> 16);
    f[2] = (unsigned char)(n >> 8); f[3] = (unsigned char)n;
    frame_start = out_len;
}

/* Writes the finished responses, in one write where the pipe takes it. */
static void flush_output(void)
{
    size_t off = 0;
    while (off < frame_start) {
        ssize_t w = write(1, out + off, frame_start - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(0); /* the server is gone: so is the session */
        off += (size_t)w;
    }
    out_len = frame_start = 0;
    /* A large read's buffer is not kept for the rest of an idle session. */
    if (out_cap > 65536) {
        free(out);
        out = NULL;
        out_cap = 0;
    }
}

static void reply_errno(uint32_t id, int err)
{
    begin(id, ST_ERRNO);
    put_u32((uint32_t)err);
    flush_response();
}

static void reply_status(uint32_t id, unsigned status)
{
    begin(id, status);
    flush_response();
}

static void reply_ok(uint32_t id)
{
    begin(id, ST_OK);
    flush_response();
}

/* ---- input ---- */

struct cursor {
    const unsigned char *p;
    size_t left;
};

/* Answers already finished still go out; then the session ends. */
static void protocol_error(void)
{
    flush_output();
    _exit(EXIT_PROTOCOL);
}

static uint32_t get_u32(struct cursor *c)
{
    if (c->left < 4) protocol_error();
    uint32_t v = ((uint32_t)c->p[0] << 24) | ((uint32_t)c->p[1] << 16) | ((uint32_t)c->p[2] << 8) | c->p[3];
    c->p += 4;
    c->left -= 4;
    return v;
}

/*
 * A path field, copied NUL-terminated into buf. Returns 0, or EINVAL for a path we
 * refuse to use (relative, empty, containing NUL, too long): refused, not fatal.
 */
static int get_path(struct cursor *c, char *buf)
{
    if (c->left < 2) protocol_error();
    size_t n = ((size_t)c->p[0] << 8) | c->p[1];
    c->p += 2;
    c->left -= 2;
    if (c->left < n) protocol_error();
    const unsigned char *s = c->p;
    c->p += n;
    c->left -= n;
    if (n == 0 || n >= PATH_MAX || s[0] != '/' || memchr(s, 0, n) != NULL) return EINVAL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

static void end_of_fields(const struct cursor *c)
{
    if (c->left != 0) protocol_error();
}

/*
 * A request with if-previous-ok whose previous request did not succeed: answered
 * skipped (which counts as failed for the next one); 1 when it was. Called once
 * the request's fields have been read, so a malformed one still ends the session.
 */
static int skipped(uint32_t id, int if_previous_ok)
{
    if (!if_previous_ok || previous_ok) return 0;
    reply_status(id, ST_SKIPPED);
    return 1;
}

static int handle_fd(uint32_t h)
{
    return h < MAX_HANDLES ? handles[h] : -1;
}

/* ---- operations ---- */

static void put_stat(const struct stat *st)
{
    put_u64((uint64_t)st->st_size);
    put_u64((uint64_t)(int64_t)st->st_mtim.tv_sec);
    put_u32((uint32_t)st->st_mtim.tv_nsec);
    put_u32((uint32_t)st->st_uid);
    put_u32((uint32_t)st->st_mode);
    put_u32((uint32_t)st->st_nlink);
}

static void op_read(uint32_t id, const char *path)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) { reply_errno(id, errno); return; }
    struct stat st;
    if (fstat(fd, &st) < 0) { int e = errno; close(fd); reply_errno(id, e); return; }
    if (!S_ISREG(st.st_mode)) { close(fd); reply_status(id, ST_NOTREGULAR); return; }
    if (st.st_size > MAX_READ) { close(fd); reply_status(id, ST_TOOLARGE); return; }
    begin(id, ST_OK);
    size_t start = out_len;
    for (;;) {
        size_t have = out_len - start;
        /* One byte beyond the limit tells a file that grew while we read. */
        size_t want = have + 65536 > (size_t)MAX_READ + 1 ? (size_t)MAX_READ + 1 - have : 65536;
        if (want == 0) { close(fd); reply_status(id, ST_TOOLARGE); return; }
        out_reserve(want);
        ssize_t r = read(fd, out + out_len, want);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { int e = errno; close(fd); reply_errno(id, e); return; }
        if (r == 0) break;
        out_len += (size_t)r;
    }
    close(fd);
    flush_response();
}

static void op_readdir(uint32_t id, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { reply_errno(id, errno); return; }
    DIR *d = fdopendir(fd);
    if (d == NULL) { int e = errno; close(fd); reply_errno(id, e); return; }
    begin(id, ST_OK);
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) { int err = errno; closedir(d); reply_errno(id, err); return; }
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        size_t n = strlen(e->d_name);
        if (out_len - frame_start + 2 + n > MAX_RESPONSE) { closedir(d); reply_status(id, ST_TOOLARGE); return; }
        put_u16((unsigned)n);
        put_bytes(e->d_name, n);
    }
    closedir(d);
    flush_response();
}

static void op_create(uint32_t id, uint32_t mode, const char *path)
{
    int slot = -1;
    for (int i = 0; i < MAX_HANDLES; i++) {
        if (handles[i] < 0) { slot = i; break; }
    }
    if (slot < 0) { reply_errno(id, EMFILE); return; }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, (mode_t)(mode & 0777));
    if (fd < 0) { reply_errno(id, errno); return; }
    handles[slot] = fd;
    begin(id, ST_OK);
    put_u32((uint32_t)slot);
    flush_response();
}

static void op_write(uint32_t id, int fd, const unsigned char *data, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) { reply_errno(id, errno); return; }
        if (w == 0) { reply_errno(id, EIO); return; }
        off += (size_t)w;
    }
    reply_ok(id);
}

/*
 * create-file, in two steps so that several new files sent together share one
 * journal commit: new_file_write() creates and writes one and, when it is to be
 * fsynced, starts its write-back at once (sync_file_range); new_file_finish() then
 * fsyncs and closes it and answers. Done one file after the other, the first fsync
 * would commit only the first file's blocks (the second's are not allocated yet,
 * with delayed allocation), and the second fsync would wait for another commit.
 * The result of each file is the same either way.
 */
struct new_file {
    uint32_t id, mode, flags;
    int skip; /* if-previous-ok, and the request before failed: nothing is done */
    int bad;  /* a path refused (EINVAL): nothing is done */
    int fd;   /* -1: not created (err says why) */
    int err;  /* the first failure */
    const unsigned char *data;
    size_t n;
    char path[PATH_MAX];
};

/* The fields of a create-file request; a malformed one ends the session. */
static void parse_create_file(struct cursor *c, uint32_t id, struct new_file *f)
{
    f->id = id;
    f->skip = 0;
    f->mode = get_u32(c);
    f->flags = get_u32(c);
    if ((f->flags & ~CREATE_FILE_SYNC) != 0) protocol_error();
    f->bad = get_path(c, f->path);
    /* The data is the rest of the body. */
    f->data = c->p;
    f->n = c->left;
    f->fd = -1;
    f->err = 0;
}

static void new_file_write(struct new_file *f)
{
    if (f->skip) return;
    if (f->bad) { f->err = f->bad; return; }
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (f->fd < 0) { f->err = errno; return; }
    size_t off = 0;
    while (f->err == 0 && off < f->n) {
        ssize_t w = write(f->fd, f->data + off, f->n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) f->err = errno;
        else if (w == 0) f->err = EIO;
        else off += (size_t)w;
    }
    if (f->err == 0 && f->mode != CREATE_FILE_KEEP_MODE && fchmod(f->fd, (mode_t)(f->mode & 0777)) < 0)
        f->err = errno;
    /* Only a hint: the fsync below is what counts (and what reports failures). */
    if (f->err == 0 && (f->flags & CREATE_FILE_SYNC)) (void)sync_file_range(f->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

static void new_file_finish(struct new_file *f)
{
    if (f->skip) { reply_status(f->id, ST_SKIPPED); return; }
    if (f->fd < 0) { reply_errno(f->id, f->err); return; }
    if (f->err == 0 && (f->flags & CREATE_FILE_SYNC) && fsync(f->fd) < 0) f->err = errno;
    /* close(2)'s own error is the one AFS reports a full quota with. */
    if (close(f->fd) < 0 && f->err == 0) f->err = errno;
    f->fd = -1;
    if (f->err == 0) { reply_ok(f->id); return; }
    begin(f->id, ST_CREATED_THEN_ERRNO);
    put_u32((uint32_t)f->err);
    flush_response();
}

/* An op byte's op number, and its if-previous-ok bit. */
static unsigned op_number(unsigned char op) { return op & ~OP_IF_PREVIOUS_OK & 0xffu; }
static int op_if_previous_ok(unsigned char op) { return (op & OP_IF_PREVIOUS_OK) != 0; }
/* The same for a whole frame at p (length prefix, id, op). */
static unsigned frame_op(const unsigned char *p) { return op_number(p[8]); }
static int frame_if_previous_ok(const unsigned char *p) { return op_if_previous_ok(p[8]); }

/* At most this many create-file requests that came together share the steps above. */
#define NEW_FILES_TOGETHER 4

/*
 * Serves the create-file request at in[off..] and those right behind it that have
 * come whole, NEW_FILES_TOGETHER at most; returns the bytes consumed. Requests are
 * still answered in order, and each has done all it does before any later request
 * of another kind runs. Only the first may depend on the request before it
 * (if-previous-ok), which has been answered: a later one with the bit depends on
 * one of these, whose outcome is known only at the end, so it starts a group of
 * its own.
 */
static size_t serve_new_files(const unsigned char *in, size_t off, size_t len)
{
    static struct new_file files[NEW_FILES_TOGETHER];
    size_t used = 0;
    int count = 0;
    while (count < NEW_FILES_TOGETHER && len - off - used >= 9) {
        const unsigned char *h = in + off + used;
        size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
        if (n < 5 || n > MAX_REQUEST) protocol_error();
        if (len - off - used < 4 + n || frame_op(h) != OP_CREATE_FILE) break;
        int if_previous_ok = frame_if_previous_ok(h);
        if (count > 0 && if_previous_ok) break;
        struct cursor c = {h + 4, n};
        uint32_t id = get_u32(&c);
        c.p++;
        c.left--;
        parse_create_file(&c, id, &files[count]);
        files[count++].skip = if_previous_ok && !previous_ok;
        used += 4 + n;
    }
    for (int i = 0; i < count; i++) new_file_write(&files[i]);
    for (int i = 0; i < count; i++) new_file_finish(&files[i]);
    return used;
}

static void op_syncdir(uint32_t id, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { reply_errno(id, errno); return; }
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc < 0) reply_errno(id, e);
    else reply_ok(id);
}

/* A result of 0/-1 with errno, as the reply. */
static void reply_rc(uint32_t id, int rc)
{
    if (rc < 0) reply_errno(id, errno);
    else reply_ok(id);
}

static void serve_one(const unsigned char *body, size_t len)
{
    static char path[PATH_MAX], path2[PATH_MAX];
    struct cursor c = {body, len};
    uint32_t id = get_u32(&c);
    if (c.left < 1) protocol_error();
    unsigned op = op_number(c.p[0]);
    int cond = op_if_previous_ok(c.p[0]);
    c.p++;
    c.left--;
    int bad;
    switch (op) {
    case OP_CREATE: {
        uint32_t mode = get_u32(&c);
        bad = get_path(&c, path);
        end_of_fields(&c);
        if (skipped(id, cond)) return;
        if (bad) reply_errno(id, bad); else op_create(id, mode, path);
        return;
    }
    case OP_WRITE: {
        int fd = handle_fd(get_u32(&c));
        if (skipped(id, cond)) return;
        if (fd < 0) reply_errno(id, EBADF); else op_write(id, fd, c.p, c.left);
        return;
    }
    case OP_FSYNC: case OP_CLOSE: {
        uint32_t h = get_u32(&c);
        end_of_fields(&c);
        if (skipped(id, cond)) return;
        int fd = handle_fd(h);
        if (fd < 0) { reply_errno(id, EBADF); return; }
        if (op == OP_FSYNC) { reply_rc(id, fsync(fd)); return; }
        handles[h] = -1;
        /* close(2)'s error is the one AFS reports a full quota with. */
        reply_rc(id, close(fd));
        return;
    }
    case OP_FCHMOD: {
        uint32_t h = get_u32(&c);
        uint32_t mode = get_u32(&c);
        end_of_fields(&c);
        if (skipped(id, cond)) return;
        int fd = handle_fd(h);
        if (fd < 0) reply_errno(id, EBADF); else reply_rc(id, fchmod(fd, (mode_t)(mode & 0777)));
        return;
    }
    case OP_MKDIR: {
        uint32_t mode = get_u32(&c);
        bad = get_path(&c, path);
        end_of_fields(&c);
        if (skipped(id, cond)) return;
        if (bad) reply_errno(id, bad); else reply_rc(id, mkdir(path, (mode_t)(mode & 0777)));
        return;
    }
    case OP_RENAME: {
        bad = get_path(&c, path);
        int bad2 = get_path(&c, path2);
        end_of_fields(&c);
        if (skipped(id, cond)) return;
        if (bad || bad2) reply_errno(id, EINVAL); else reply_rc(id, rename(path, path2));
        return;
    }
    case OP_READ: case OP_READDIR: case OP_STAT: case OP_LSTAT: case OP_UNLINK: case OP_RMDIR: case OP_SYNCDIR:
        bad = get_path(&c, path);
        end_of_fields(&c);
        if (skipped(id, cond)) return;
        if (bad) { reply_errno(id, bad); return; }
        break;
    default:
        protocol_error();
    }
    struct stat st;
    switch (op) {
    case OP_READ: op_read(id, path); return;
    case OP_READDIR: op_readdir(id, path); return;
    case OP_STAT: case OP_LSTAT:
        if ((op == OP_STAT ? stat(path, &st) : lstat(path, &st)) < 0) { reply_errno(id, errno); return; }
        begin(id, ST_OK);
        put_stat(&st);
        flush_response();
        return;
    case OP_UNLINK: reply_rc(id, unlink(path)); return;
    case OP_RMDIR: reply_rc(id, rmdir(path)); return;
    case OP_SYNCDIR: op_syncdir(id, path); return;
    }
}

/* The whole broker; also called by the PAM helper's session child, which serves
 * in-process when no token_command wraps the broker (tsieved-pam-helper.c). */
int tsieved_broker_serve(void)
{
    /* Never outlive the process that started us (the PAM helper, a token wrapper,
     * or the server): its end is the end of the session. */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) return 0;
    signal(SIGPIPE, SIG_IGN);
    umask(077);
    for (int i = 0; i < MAX_HANDLES; i++) handles[i] = -1;
    /* Requests as they came: [off, len) not served yet. */
    unsigned char *in = NULL;
    size_t in_cap = 0, off = 0, len = 0;
    for (;;) {
        size_t have = len - off, need = 4;
        if (have >= 4) {
            const unsigned char *h = in + off;
            size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
            if (n < 5 || n > MAX_REQUEST) protocol_error();
            need = 4 + n;
            if (have >= need) {
                if (frame_op(in + off) == OP_CREATE_FILE) off += serve_new_files(in, off, len);
                else {
                    serve_one(in + off + 4, n);
                    off += need;
                }
                if (frame_start > OUT_FLUSH_BYTES) flush_output();
                continue;
            }
        }
        /* Every request that came together is answered: the answers leave in one
         * write (the server is woken once for them), before we wait for more. */
        flush_output();
        if (off > 0) {
            memmove(in, in + off, have);
            off = 0;
            len = have;
        }
        /* A large request's buffer is not kept for the rest of an idle session. */
        size_t want = need > 65536 ? need : 65536;
        if (in_cap > 65536 && want == 65536 && have <= 65536) {
            unsigned char *shrunk = realloc(in, 65536);
            if (shrunk != NULL) { in = shrunk; in_cap = 65536; }
        }
        if (in_cap < want) {
            unsigned char *grown = realloc(in, want);
            if (grown == NULL) return 111;
            in = grown;
            in_cap = want;
        }
        ssize_t r = read(0, in + len, in_cap - len);
        if (r < 0 && errno == EINTR) continue;
        /* The server ended the session; in the middle of a request, the stream was cut. */
        if (r <= 0) {
            if (have >= 4 && r == 0) protocol_error();
            return 0;
        }
        len += (size_t)r;
    }
}

#ifndef TSIEVED_BROKER_NO_MAIN
int main(void)
{
    return tsieved_broker_serve();
}
#endif
