// CShims: the only C that Swift code sees.
//
// libev (Debian libev-dev) and http-parser (Debian libhttp-parser-dev) ship no pkg-config files, so this
// target links them by name (see Package.swift). Their initialiser macros cannot be called from Swift;
// each is wrapped here in a `static inline` function named `cshims_<original name>`.
// Real C (accept4, writev, socket options) lives in shims.c. Only MinervaServer imports this module.
#ifndef CSHIMS_H
#define CSHIMS_H

#include <ev.h>
#include <http_parser.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

// ---- libev ---------------------------------------------------------------------------------------------

typedef void (*cshims_io_cb)(struct ev_loop *loop, ev_io *w, int revents);
typedef void (*cshims_timer_cb)(struct ev_loop *loop, ev_timer *w, int revents);
typedef void (*cshims_async_cb)(struct ev_loop *loop, ev_async *w, int revents);
typedef void (*cshims_signal_cb)(struct ev_loop *loop, ev_signal *w, int revents);
typedef void (*cshims_check_cb)(struct ev_loop *loop, ev_check *w, int revents);
typedef void (*cshims_prepare_cb)(struct ev_loop *loop, ev_prepare *w, int revents);

static inline void cshims_ev_io_init(ev_io *w, cshims_io_cb cb, int fd, int events) { ev_io_init(w, cb, fd, events); }
static inline void cshims_ev_io_set(ev_io *w, int fd, int events) { ev_io_set(w, fd, events); }
static inline void cshims_ev_timer_init(ev_timer *w, cshims_timer_cb cb, double after, double repeat) {
    ev_timer_init(w, cb, after, repeat);
}
static inline void cshims_ev_timer_set(ev_timer *w, double after, double repeat) { ev_timer_set(w, after, repeat); }
static inline void cshims_ev_async_init(ev_async *w, cshims_async_cb cb) { ev_async_init(w, cb); }
static inline void cshims_ev_signal_init(ev_signal *w, cshims_signal_cb cb, int signum) { ev_signal_init(w, cb, signum); }
static inline void cshims_ev_check_init(ev_check *w, cshims_check_cb cb) { ev_check_init(w, cb); }
static inline void cshims_ev_prepare_init(ev_prepare *w, cshims_prepare_cb cb) { ev_prepare_init(w, cb); }
static inline int cshims_ev_is_active(const void *w) { return ev_is_active((const ev_watcher *)w); }
static inline int cshims_ev_is_pending(const void *w) { return ev_is_pending((const ev_watcher *)w); }
static inline void cshims_ev_set_data(void *w, void *data) { ((ev_watcher *)w)->data = data; }
static inline void *cshims_ev_get_data(const void *w) { return ((const ev_watcher *)w)->data; }
static inline struct ev_loop *cshims_ev_loop_new_nosigmask(void) {
    return ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
}
static inline int cshims_EV_READ(void) { return EV_READ; }
static inline int cshims_EV_WRITE(void) { return EV_WRITE; }

// ---- http-parser ---------------------------------------------------------------------------------------

static inline enum http_errno cshims_http_parser_errno(const http_parser *p) { return HTTP_PARSER_ERRNO(p); }
static inline unsigned cshims_http_parser_method(const http_parser *p) { return p->method; }
static inline unsigned cshims_http_parser_upgrade(const http_parser *p) { return p->upgrade; }
static inline unsigned cshims_http_parser_status_code(const http_parser *p) { return p->status_code; }
static inline uint64_t cshims_http_parser_content_length(const http_parser *p) { return p->content_length; }
static inline unsigned cshims_http_parser_flags(const http_parser *p) { return p->flags; }
static inline void cshims_http_parser_pause(http_parser *p, int paused) { http_parser_pause(p, paused); }

// ---- shims.c: sockets, files, time, threads (each returns a value >= 0 or a negated errno) --------------

/// Ignores SIGPIPE for the whole process (writes to a closed peer then fail with EPIPE instead).
void cshims_ignore_sigpipe(void);
/// Creates a non-blocking listening TCP socket bound to host:port (numeric or name; IPv4 or IPv6).
int cshims_listen_tcp(const char *host, int port, int backlog, int reuse_port);
/// The local port a socket is bound to.
int cshims_local_port(int fd);
/// The local address a socket is bound to, as text.
int cshims_local_address(int fd, char *out, size_t outlen);
/// The local (peer == 0) or remote (peer != 0) address of a socket as text; returns its port.
int cshims_socket_address(int fd, int peer, char *out, size_t outlen);
/// Closes a socket with a TCP RST (SO_LINGER 0) instead of a normal close.
int cshims_abort_close(int fd);
/// accept4 (non-blocking, close-on-exec) and TCP_NODELAY on the new socket.
int cshims_accept(int listen_fd);
/// read(2), retried on EINTR.
ssize_t cshims_read(int fd, void *buf, size_t len);
/// writev(2), retried on EINTR.
ssize_t cshims_writev(int fd, const struct iovec *iov, int count);
/// close(2).
int cshims_close(int fd);
/// shutdown(fd, SHUT_WR).
int cshims_shutdown_write(int fd);
/// Formats a Unix time as an IMF-fixdate (RFC 9110) into out; returns its length.
size_t cshims_format_http_date(double now, char *out, size_t outlen);
/// Reads a whole regular file into a malloc'ed buffer (*out, to be freed by the caller); returns its size.
ssize_t cshims_read_file(const char *path, void **out);
/// Blocking TCP connect (tests and tools); TCP_NODELAY set.
int cshims_connect_tcp(const char *host, int port);
/// SO_RCVTIMEO and SO_SNDTIMEO in milliseconds (tests and tools).
int cshims_set_timeouts(int fd, int millis);
/// SO_RCVBUF.
int cshims_set_rcvbuf(int fd, int bytes);
/// SO_SNDBUF.
int cshims_set_sndbuf(int fd, int bytes);
/// send(2) with MSG_NOSIGNAL, retried on EINTR.
ssize_t cshims_send(int fd, const void *buf, size_t len);
/// Sets or clears O_NONBLOCK.
int cshims_set_nonblocking(int fd, int on);
/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the new soft limit.
int cshims_raise_nofile(void);
// The CPUs this process may run on (its affinity mask), or the online CPUs; at least 1.
int cshims_available_cpus(void);
/// One walk of the allocator's arenas (glibc mallinfo2): bytes the program has allocated and not freed (uordblks +
/// hblkhd: arena chunks and mmapped blocks) and bytes freed but still held (fordblks). Takes milliseconds on a
/// fragmented heap: call it from a slow timer.
void cshims_heap_usage(size_t *in_use, size_t *free_bytes);
/// Returns the allocator's free pages to the kernel (glibc malloc_trim(0)); 1 if memory was released.
int cshims_heap_trim(void);
/// A connected pair of non-blocking, close-on-exec Unix stream sockets (embedded connections).
int cshims_socketpair(int fds[2]);
/// pthread_create with default attributes.
int cshims_pthread_create(void *(*start)(void *), void *arg, unsigned long *out_thread);
/// pthread_join.
int cshims_pthread_join(unsigned long thread);
/// Tells ThreadSanitizer that the caller has taken (acquire) or is about to give up (release) the lock identified by
/// `addr`: for locks it cannot see (Synchronization.Mutex uses futex directly). No-ops unless built with TSan.
void cshims_tsan_acquire(const void *addr);
void cshims_tsan_release(const void *addr);

static inline double cshims_ev_now(struct ev_loop *loop) { return ev_now(loop); }
static inline int cshims_ev_run_nowait(struct ev_loop *loop) { return ev_run(loop, EVRUN_NOWAIT); }
static inline void cshims_ev_break_all(struct ev_loop *loop) { ev_break(loop, EVBREAK_ALL); }

#endif
