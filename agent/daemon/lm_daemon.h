/* lm_daemon: `livemig-agent --config FILE`, the agent as a daemon of a control plane
 * (foreground, for systemd).
 *
 * On start it loads its identity from the state dir, or links with the configured
 * link-token (a new token there links again). Then three kinds of thread:
 *   - the main thread long-polls the control plane for assignments: new jobs start, and
 *     commands (cutover, cancel, extend, expire) act on running ones;
 *   - the sender heartbeats (host, version, uptime, free disk of the state dir, the jobs it
 *     runs) and reports each job's status every few seconds; a finished job's last report
 *     is sent until it lands;
 *   - one thread per job: a validation (lm_validate) or a migration (lm_engine). One
 *     migration at a time: a second one is refused with a reason the control plane shows.
 * The control plane being away never stops a job: calls are retried with backoff and
 * jitter, and the latest status goes out when it is back. Credentials live in memory
 * only; after a restart the control plane hands a running job out again (with them) and
 * the engine resumes from the target's checkpoint.
 *
 * A deleted link-token (revoked) stops the jobs (checkpointed) and the asking; a new
 * link-token in the config and SIGHUP link again. SIGTERM/SIGINT: jobs checkpoint, then
 * exit. SIGHUP: reload the config; an invalid one is logged (file:line) and the running
 * one kept. */
#ifndef LM_DAEMON_H
#define LM_DAEMON_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *config_path;
    atomic_bool *stop;   /* SIGTERM, SIGINT */
    atomic_bool *reload; /* SIGHUP */
    atomic_bool *wake;   /* set by every signal: ends a poll early */
} lm_daemon_opts_t;

/* Pure: whether two jobs' migration ids name one migration spread over several hosts
 * (both non-empty and equal): its parts may run side by side on one agent. */
bool lm_daemon_same_migration(const char *a, const char *b);

/* Pure: whether a part's lease ran out: lease_ms > 0 and no call answered by the control
 * plane since last_ok_ms for lease_ms or more (lm_time_boot_ms milliseconds). */
bool lm_daemon_lease_expired(int64_t last_ok_ms, int64_t lease_ms, int64_t now_ms);

/* Runs until *stop; returns a livemig-agent exit code (LM_EXIT_*). */
int lm_daemon_run(const lm_daemon_opts_t *o);

#endif
