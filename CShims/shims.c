// Real C helpers for MinervaServer. Kept small: raw socket calls that need _GNU_SOURCE or errno handling.
#define _GNU_SOURCE
#include "CShims.h"
#include <errno.h>
#include <signal.h>

/// Ignores SIGPIPE for the whole process (writes to a closed peer then fail with EPIPE instead).
void cshims_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }
