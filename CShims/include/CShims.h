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

#endif
