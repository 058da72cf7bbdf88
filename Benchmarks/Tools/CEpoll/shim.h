// Glibc's Swift module does not include <sys/epoll.h>; minerva-load imports it through this module.
#include <sys/epoll.h>
