// Real C helpers for MinervaServer. Kept small: raw socket calls that need _GNU_SOURCE or errno handling.
// Every function returns a non-negative result or a negated errno value, so Swift never reads errno.
#define _GNU_SOURCE
#include "CShims.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void cshims_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/* Resolves host and a numeric port for a TCP socket (passive: for bind); 0 or -EADDRNOTAVAIL. */
static int resolve_tcp(const char *host, int port, int passive, struct addrinfo **res) {
    struct addrinfo hints;
    char portstr[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(portstr, sizeof portstr, "%d", port);
    return getaddrinfo(host, portstr, &hints, res) == 0 ? 0 : -EADDRNOTAVAIL;
}

int cshims_listen_tcp(const char *host, int port, int backlog, int reuse_port) {
    struct addrinfo *res = NULL, *ai;
    int fd = -1, err = EADDRNOTAVAIL, one = 1;
    if (resolve_tcp(host, port, 1, &res) != 0) return -EADDRNOTAVAIL;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
            err = errno; close(fd); fd = -1; continue;
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : -err;
}

int cshims_local_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

int cshims_local_address(int fd, char *out, size_t outlen) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
    const void *addr = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                                 : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (inet_ntop(ss.ss_family, addr, out, (socklen_t)outlen) == NULL) return -errno;
    return 0;
}

int cshims_accept(int listen_fd) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

ssize_t cshims_read(int fd, void *buf, size_t len) {
    ssize_t n;
    do { n = read(fd, buf, len); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

ssize_t cshims_writev(int fd, const struct iovec *iov, int count) {
    ssize_t n;
    do { n = writev(fd, iov, count); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int cshims_close(int fd) { return close(fd) == 0 ? 0 : -errno; }

int cshims_shutdown_write(int fd) { return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno; }

size_t cshims_format_http_date(double now, char *out, size_t outlen) {
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    return strftime(out, outlen, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

ssize_t cshims_read_file(const char *path, void **out) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) { int e = errno; close(fd); return -e; }
    if (!S_ISREG(st.st_mode)) { close(fd); return -EISDIR; }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size ? size : 1);
    if (buf == NULL) { close(fd); return -ENOMEM; }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { int e = n < 0 ? errno : EIO; free(buf); close(fd); return -e; }
        got += (size_t)n;
    }
    close(fd);
    *out = buf;
    return (ssize_t)size;
}

int cshims_connect_tcp(const char *host, int port) {
    struct addrinfo *res = NULL, *ai;
    int fd = -1, err = ECONNREFUSED, one = 1;
    if (resolve_tcp(host, port, 0, &res) != 0) return -EADDRNOTAVAIL;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd >= 0 ? fd : -err;
}

int cshims_set_timeouts(int fd, int millis) {
    struct timeval tv = {millis / 1000, (millis % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) return -errno;
    return 0;
}

int cshims_set_rcvbuf(int fd, int bytes) {
    return setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) == 0 ? 0 : -errno;
}

int cshims_set_sndbuf(int fd, int bytes) {
    return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes) == 0 ? 0 : -errno;
}

ssize_t cshims_send(int fd, const void *buf, size_t len) {
    ssize_t n;
    do { n = send(fd, buf, len, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

int cshims_set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -errno;
    flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, flags) == 0 ? 0 : -errno;
}

int cshims_available_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

int cshims_raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -errno;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (int)rl.rlim_cur;
}

int cshims_pthread_create(void *(*start)(void *), void *arg, unsigned long *out_thread) {
    pthread_t t;
    int r = pthread_create(&t, NULL, start, arg);
    if (r != 0) return -r;
    *out_thread = (unsigned long)t;
    return 0;
}

int cshims_pthread_join(unsigned long thread) { return -pthread_join((pthread_t)thread, NULL); }

// ThreadSanitizer does not see Synchronization.Mutex on Linux (it locks with the futex system call, which TSan does
// not intercept), so it reports the accesses a Mutex orders as races. These two tell it what the lock does; they are
// empty unless this file is compiled with -fsanitize=thread.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CSHIMS_TSAN 1
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#endif
#endif

void cshims_tsan_acquire(const void *addr) {
#ifdef CSHIMS_TSAN
    __tsan_acquire((void *)addr);
#else
    (void)addr;
#endif
}

void cshims_tsan_release(const void *addr) {
#ifdef CSHIMS_TSAN
    __tsan_release((void *)addr);
#else
    (void)addr;
#endif
}

int cshims_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

int cshims_socket_address(int fd, int peer, char *out, size_t outlen) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc != 0) return -errno;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)outlen) == NULL) return -errno;
        return ntohs(a->sin_port);
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)outlen) == NULL) return -errno;
        return ntohs(a->sin6_port);
    }
    if (outlen > 0) out[0] = 0;
    return 0;
}

int cshims_abort_close(int fd) {
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    return close(fd) == 0 ? 0 : -errno;
}

void cshims_heap_usage(size_t *in_use, size_t *free_bytes) {
    struct mallinfo2 info = mallinfo2();
    *in_use = info.uordblks + info.hblkhd;
    *free_bytes = info.fordblks;
}

int cshims_heap_trim(void) { return malloc_trim(0); }
