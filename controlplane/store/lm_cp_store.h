/* The control plane's SQLite store (lm_cp_store.c). */
#ifndef LM_CP_STORE_H
#define LM_CP_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "lm_error.h"
#include "lm_strbuf.h"

/* The row and field each sealed secret is stored in: its associated data (lm_cp_seal), so
 * a secret copied into another row or field does not open. */
#define LM_CP_AD_JOB_PASSWORD "jobs/%s/sourcePassword"      /* job id */
#define LM_CP_AD_CLUSTER_PASSWORD "clusters/%s/%s/password" /* project id, cluster name */

/* Seals again, bound to ad (the row and field), a secret sealed by an older control plane
 * (lm_cp_reseal; ctx: the key). False with err set when it does not open. */
typedef bool (*lm_cp_store_reseal_fn)(void *ctx, const char *ad, const char *sealed,
                                      lm_strbuf_t *out, lm_error_t *err);

/* Opens (creating) the database at path with its schema; WAL, synchronous=FULL. Schema
 * version 3 binds every stored secret to its row and field: with reseal, a database of an
 * older version has its secrets sealed again, in the migration's transaction (one that does
 * not open fails the open, naming the row, and nothing changes); without reseal (offline
 * bootstrap, which has no key) the migration stops before version 3, for the server to
 * make. */
bool lm_cp_store_open(const char *path, lm_cp_store_reseal_fn reseal, void *ctx, sqlite3 **db,
                      lm_error_t *err);
/* A prepared statement with parameters bound by `types`: s = const char * (NULL binds
 * null), i = int64_t, d = double. NULL when the SQL does not prepare. */
sqlite3_stmt *lm_cp_q(sqlite3 *db, const char *sql, const char *types, ...);
/* Runs one statement to completion; false on failure (constraint, I/O). */
bool lm_cp_exec(sqlite3 *db, const char *sql, const char *types, ...);
/* Column i as text, "" for NULL. */
const char *lm_cp_col(sqlite3_stmt *st, int i);

/* ---- named statements ----
 * Every statement the handlers run, by name. Three shapes:
 * - writes return false on failure (constraint, I/O);
 * - a row function returns the statement stepped onto its one row (the columns listed),
 *   or NULL when there is none; the caller finalizes it;
 * - a list function returns the prepared statement (the columns listed) for the caller
 *   to step and finalize; NULL when the SQL does not prepare.
 * Times are epoch milliseconds. */

/* The job states that end a job. */
#define LM_CP_STATUS_TERMINAL "('COMPLETE','FAILED','CANCELLED','EXPIRED')"

/* organizations, projects, API keys */
bool lm_cp_store_org_ensure(sqlite3 *db, const char *org, int64_t now);
bool lm_cp_store_project_insert(sqlite3 *db, const char *id, const char *org, const char *name,
                                int64_t now);
/* Whether project `group` exists and belongs to org. */
bool lm_cp_store_project_in_org(sqlite3 *db, const char *group, const char *org);
/* List: id, name of org's projects, oldest first. */
sqlite3_stmt *lm_cp_store_projects(sqlite3 *db, const char *org);
/* expires: when the key stops working (epoch ms), 0 for never. */
bool lm_cp_store_api_key_insert(sqlite3 *db, const char *id, const char *org, const char *role,
                                const char *salt, const char *hash, const char *desc,
                                int64_t expires, int64_t now);
/* Row: org_id, role, salt, hash, expires (0: never). */
sqlite3_stmt *lm_cp_store_api_key(sqlite3 *db, const char *id);
/* Records that key id authenticated at now (to the minute: at most one write a minute). */
bool lm_cp_store_api_key_used(sqlite3 *db, const char *id, int64_t now);
/* List: id, role, desc, created, last_used (0: never), expires (0: never) of org's keys. */
sqlite3_stmt *lm_cp_store_api_keys(sqlite3 *db, const char *org);
/* Deletes org's key id: 1 when it had it, 0 when not, -1 on failure. */
int lm_cp_store_api_key_delete(sqlite3 *db, const char *org, const char *id);

/* the clusters registry */
bool lm_cp_store_cluster_insert(sqlite3 *db, const char *group, const char *name, const char *uri,
                                bool tls, const char *ca_file, const char *username,
                                const char *sealed_password, int64_t now);
/* List: name, uri, tls, ca_file, username, by name. */
sqlite3_stmt *lm_cp_store_clusters(sqlite3 *db, const char *group);
/* List: name (the availableProjects deployments). */
sqlite3_stmt *lm_cp_store_cluster_names(sqlite3 *db, const char *group);
/* Whether cluster `name` is registered in project `group` of org. */
bool lm_cp_store_cluster_in_org(sqlite3 *db, const char *group, const char *name, const char *org);

/* link-tokens */
/* Whether org has a link-token that is neither deleted nor expired at now. */
bool lm_cp_store_link_token_live(sqlite3 *db, const char *org, int64_t now);
/* expires: when it stops enrolling agents (epoch ms), 0 = never. */
bool lm_cp_store_link_token_insert(sqlite3 *db, const char *id, const char *org, const char *salt,
                                   const char *hash, const char *access, int64_t expires,
                                   int64_t now);
/* Marks org's link-tokens that are not deleted yet (expired ones too) deleted at now, which
 * revokes every agent they enrolled: 1 when it had one, 0 when not, -1 on failure. */
int lm_cp_store_link_token_delete(sqlite3 *db, const char *org, int64_t now);
/* Row: org_id, salt, hash, access (a JSON array), deleted (0 or when), expires (NULL or
 * when). */
sqlite3_stmt *lm_cp_store_link_token(sqlite3 *db, const char *id);

/* agents */
/* Row: org_id, token_id, hostname, cred_salt, cred_hash (NULL for agents linked before agents
 * had credentials of their own), and of its link-token: deleted (0 or when), access. */
sqlite3_stmt *lm_cp_store_agent_auth(sqlite3 *db, const char *id);
/* An Organization Owner allows host of org to link again once, until expires. */
bool lm_cp_store_relink_allow(sqlite3 *db, const char *org, const char *host, int64_t expires,
                              int64_t now);
/* Uses up that permission: true when there was one that had not expired at now (an expired
 * one is removed as well). */
bool lm_cp_store_relink_take(sqlite3 *db, const char *org, const char *host, int64_t now);
/* Whether an agent on host is linked to org by a link-token that is not deleted. */
bool lm_cp_store_host_linked(sqlite3 *db, const char *org, const char *host);
/* Row: id of the agent registered on hostname in org, and whether its link-token is live
 * (1; 0 when deleted: the agent is revoked). */
sqlite3_stmt *lm_cp_store_agent_of_host(sqlite3 *db, const char *org, const char *hostname);
/* List: hostname, id, version, os, registered, last_seen (0: never), free_bytes (NULL:
 * unknown), running (a JSON array of job ids, "" before the first heartbeat), revoked (1:
 * its link-token was deleted) of org's agents, by host name. */
sqlite3_stmt *lm_cp_store_agents(sqlite3 *db, const char *org);
/* An agent as registered: cred_salt and cred_hash are the salted SHA-256 of its secret. */
typedef struct {
    const char *id, *org, *token, *hostname, *version, *os, *cred_salt, *cred_hash;
} lm_cp_agent_row_t;
bool lm_cp_store_agent_insert(sqlite3 *db, const lm_cp_agent_row_t *a, int64_t now);
/* Agent old_id's host is taken over by a (a relink the Owner allowed, or a host whose agent
 * was revoked): the row gets a's id, token and credential (old_id's stops working), and the
 * host's unfinished jobs and their commands go out again, to a. */
bool lm_cp_store_agent_replace(sqlite3 *db, const char *old_id, const lm_cp_agent_row_t *a,
                               int64_t now);
/* running: the JSON array of the job ids the agent runs. */
bool lm_cp_store_agent_heartbeat(sqlite3 *db, const char *id, int64_t now, int64_t uptime,
                                 int64_t free_bytes, const char *running, const char *version);
/* List: id, hostname, last_seen of the agents whose last heartbeat was before `before`, not
 * marked lost yet, that hold a live migration that has not ended. */
sqlite3_stmt *lm_cp_store_agents_silent(sqlite3 *db, int64_t before);
/* Row: lost_since of agent id when it is marked lost; NULL when it is not. */
sqlite3_stmt *lm_cp_store_agent_lost_since(sqlite3 *db, const char *id);
/* Marks agent id lost since `since` (0: not lost any more). */
bool lm_cp_store_agent_set_lost(sqlite3 *db, const char *id, int64_t since);
/* List: id of the live migrations agent_id holds that have not ended. */
sqlite3_stmt *lm_cp_store_agent_live_migrations(sqlite3 *db, const char *agent_id);
/* Whether link-token id has been deleted. */
bool lm_cp_store_link_token_revoked(sqlite3 *db, const char *id);
/* Row: uri, tls, ca_file, username, password (sealed) of cluster `name` of project `group`. */
sqlite3_stmt *lm_cp_store_cluster(sqlite3 *db, const char *group, const char *name);

/* jobs (live migrations and validations) and their commands */
/* The columns of a job as the admin API shows it. */
#define LM_CP_JOB_COLUMNS                                                                          \
    "id, status, ready, lag, host, phase, window_end, error, project_id, kind, gap, spec, "        \
    "json_extract(report, '$.estimatedCutoverSeconds')"
/* Row: LM_CP_JOB_COLUMNS of job id of `kind` in project `group`. */
sqlite3_stmt *lm_cp_store_job(sqlite3 *db, const char *group, const char *id, const char *kind);
/* List: LM_CP_JOB_COLUMNS of the live migrations of project `group`, oldest first. */
sqlite3_stmt *lm_cp_store_migrations(sqlite3 *db, const char *group);
/* Row: id of a live migration of project `group` to cluster that has not ended. */
sqlite3_stmt *lm_cp_store_migration_to(sqlite3 *db, const char *group, const char *cluster);
bool lm_cp_store_job_insert(sqlite3 *db, const char *id, const char *kind, const char *org,
                            const char *group, const char *host, const char *spec,
                            const char *sealed_password, int64_t now);
/* Row: the checks of job id's report (a JSON array), NULL or "" when it has none. */
sqlite3_stmt *lm_cp_store_job_checks(sqlite3 *db, const char *id);
/* Row: the report of live migration id of project `group` ("" before the first). */
sqlite3_stmt *lm_cp_store_migration_report(sqlite3 *db, const char *group, const char *id);
bool lm_cp_store_job_set_window(sqlite3 *db, const char *id, int64_t window_end, int64_t now);
bool lm_cp_store_job_set_status(sqlite3 *db, const char *id, const char *status, int64_t now);
/* Job id cannot be handed out (why: its error message, shown by the admin API): 1 when
 * that message is new for the job, 0 when it had it already, -1 on failure. */
int lm_cp_store_job_refuse(sqlite3 *db, const char *id, const char *why, int64_t now);
/* List: id of the jobs of org on host, not ended (or ended with a verification asked for),
 * handed out before `before` and not in running (a JSON array of ids): the agent restarted
 * without them. */
sqlite3_stmt *lm_cp_store_jobs_lost(sqlite3 *db, const char *org, const char *host, int64_t before,
                                    const char *running);
/* Job id goes out again with the next poll, its commands too. */
bool lm_cp_store_job_undeliver(sqlite3 *db, const char *id);
/* List: id, kind, project_id, spec, src_password, verify_only (1: an ended migration whose
 * verification was asked for) of at most limit jobs of org on host held by no agent or by
 * `agent`, not ended (or ended with a verification asked for), not handed out yet or handed
 * out before `before` and not taken up, oldest first. */
sqlite3_stmt *lm_cp_store_jobs_to_deliver(sqlite3 *db, const char *org, const char *host,
                                          const char *agent, int64_t before, int64_t limit);
/* Job id was handed out to `agent`, which holds it from now on. */
bool lm_cp_store_job_delivered(sqlite3 *db, const char *id, const char *agent, int64_t now);
/* Row: status, ready_since, window_end, host, holder (NULL: none yet) of job id of org. */
sqlite3_stmt *lm_cp_store_org_job(sqlite3 *db, const char *id, const char *org);
/* Row: id and destination cluster of a live migration, not ended, to the destination of
 * validation id. */
sqlite3_stmt *lm_cp_store_migration_into(sqlite3 *db, const char *validation_id);
/* A status report as stored on its job. */
typedef struct {
    const char *status, *phase;
    bool ready;
    bool has_lag;
    double lag, gap;
    const char *report, *error, *agent_id;
    bool open_window; /* the window opens now: ready_since = now, window_end as given */
    int64_t window_end;
} lm_cp_job_report_t;
bool lm_cp_store_job_report(sqlite3 *db, const char *id, const lm_cp_job_report_t *rep,
                            int64_t now);
/* The fault history of a job: the events of its agents' reports, each once (one agent,
 * time and kind: one event, so a report sent again adds nothing), the newest
 * LM_CP_JOB_EVENTS_MAX kept, across agent restarts. */
#define LM_CP_JOB_EVENTS_MAX 100
typedef struct {
    int64_t time_ms;
    const char *kind, *message;
} lm_cp_event_row_t;
bool lm_cp_store_job_events_add(sqlite3 *db, const char *job_id, const char *agent_id,
                                const lm_cp_event_row_t *ev, size_t n);
/* Rows: time (ms), kind, message, agent_id of job_id's events, oldest first (step it). */
sqlite3_stmt *lm_cp_store_job_events(sqlite3 *db, const char *job_id);
/* Row: verification (the agent's section as JSON, "" before any), verify_req (1: asked for,
 * its end not reported yet) of job id. */
sqlite3_stmt *lm_cp_store_job_verification(sqlite3 *db, const char *id);
/* Stores job id's verification section (NULL: none); ended clears the request; agent_id
 * (NULL: unchanged) took the job up. */
bool lm_cp_store_job_set_verification(sqlite3 *db, const char *id, const char *verification,
                                      bool ended, const char *agent_id, int64_t now);
/* The verifications (after a cutover) of org's migrations on host that are running
 * according to their last report while the agent's heartbeat (running: a JSON array of job
 * ids) no longer lists the job: state error, error why. The number of them, -1 on failure. */
int lm_cp_store_verifications_lost(sqlite3 *db, const char *org, const char *host,
                                   const char *running, const char *why, int64_t now);
/* A verification of live migration id on demand: it is handed out to its agent again. */
bool lm_cp_store_job_request_verify(sqlite3 *db, const char *id, int64_t now);
/* List: id of the live migrations, not ended, whose cutover window closed before now. */
sqlite3_stmt *lm_cp_store_windows_closed(sqlite3 *db, int64_t now);
/* A command (cutover, cancel, extend, expire) for the agent that runs job_id. */
bool lm_cp_store_command_insert(sqlite3 *db, const char *job_id, const char *kind, int64_t deadline,
                                int64_t now);
/* A command with an argument (restart-shard: the shard's name) for the agent of job_id. */
bool lm_cp_store_command_insert_arg(sqlite3 *db, const char *job_id, const char *kind,
                                    const char *arg, int64_t now);
/* A sharded migration's shard as its agent (agent_id on host) last reported it: state (the
 * shard's RUNNING, FAILED, ...) and status (its row as JSON, lm_proto_shard_t's members). */
/* part: the part of a migration spread over several hosts that runs it (NULL for one
 * host); a row another part runs is left as it is (a lead reporting every shard before
 * its assignment does not take back the shards handed to others). */
bool lm_cp_store_job_shard_report(sqlite3 *db, const char *job_id, const char *name,
                                  const char *host, const char *agent_id, const char *part,
                                  const char *state, const char *status, int64_t now);
/* Shard `name` of job_id is to run on host, in part: state ASSIGNED until that part reports. */
bool lm_cp_store_job_shard_assign(sqlite3 *db, const char *job_id, const char *name,
                                  const char *host, const char *part, int64_t now);
/* The migration (or its part `part`; NULL: any) ended (state: COMPLETE or CANCELLED, as its
 * agent reported) after its last per-shard report: its shards still RUNNING take that state
 * (and phase COMPLETE). */
bool lm_cp_store_job_shards_end(sqlite3 *db, const char *job_id, const char *part,
                                const char *state, int64_t now);
/* List: name, host, agent_id, state, status (JSON), updated, part ("" for one host), size
 * (sizeBytes as the lead measured it, else bytesCopied) of job_id's shards, by name. */
sqlite3_stmt *lm_cp_store_job_shards(sqlite3 *db, const char *job_id);
/* Row: state, host, part (NULL for one host) of shard `name` of job_id. */
sqlite3_stmt *lm_cp_store_job_shard(sqlite3 *db, const char *job_id, const char *name);
/* `agent`, on host of org, has every command up to seq of the jobs it holds (or that no
 * agent holds yet). */
bool lm_cp_store_commands_ack(sqlite3 *db, const char *org, const char *host, const char *agent,
                              int64_t seq, int64_t now);
/* List: seq, job_id, kind, deadline, arg of at most limit commands not acknowledged, of the jobs
 * of host of org that `agent` holds (or no agent holds yet), in order. */
sqlite3_stmt *lm_cp_store_commands_pending(sqlite3 *db, const char *org, const char *host,
                                           const char *agent, int64_t limit);

/* ---- a live migration spread over several migration hosts (docs/agent-daemon.md) ----
 * The migration's row (kind 'migration', host '': never handed out) holds what the API
 * shows, aggregated from its parts: one job of kind 'part' per host that runs shards, with
 * the migration as parent, its role (lead: the balancers and the metadata; follower) and
 * its shards (a JSON array; NULL: a lead waiting for the assignment). */
typedef struct {
    const char *id, *parent, *host, *role;
    const char *shards; /* JSON array, or NULL */
    const char *kind;   /* NULL: 'part'; 'validation': one host's validation under a parent */
} lm_cp_part_row_t;
/* A new part of p->parent (same org, project and spec). */
bool lm_cp_store_part_insert(sqlite3 *db, const lm_cp_part_row_t *p, int64_t now);
#define LM_CP_PART_COLUMNS                                                                         \
    "id, host, role, shards, status, ready, lag, gap, phase, error, "                              \
    "json_extract(report, '$.estimatedCutoverSeconds'), holder, verification, "                    \
    "report IS NOT NULL, EXISTS (SELECT 1 FROM agents a WHERE a.id = holder AND a.lost_since "     \
    "IS NOT NULL)"
/* List: LM_CP_PART_COLUMNS of the parts of parent not handed on, oldest first. */
sqlite3_stmt *lm_cp_store_parts(sqlite3 *db, const char *parent);
/* Row: parent, role, released (NULL: not handed on), host, kind of part id (a part, or a
 * host's validation under a validation of several hosts); NULL when id is neither. */
sqlite3_stmt *lm_cp_store_part(sqlite3 *db, const char *id);
/* The shards (a JSON array) the waiting lead part id was given. */
bool lm_cp_store_part_set_shards(sqlite3 *db, const char *id, const char *shards, int64_t now);
/* Part id's shards were handed to another host: it ends (CANCELLED, released), its
 * commands not delivered yet are dropped. */
bool lm_cp_store_part_release(sqlite3 *db, const char *id, int64_t now);
/* List: id, host, status, error, checks (JSON array or NULL), reported (1/0) of the per-host
 * validations under validation parent, oldest first. */
sqlite3_stmt *lm_cp_store_validation_hosts(sqlite3 *db, const char *parent);
/* Row: status, assigned (0: shards not spread yet), spec, org_id, window_end (-1: none) of
 * migration id when it is spread over several hosts; NULL otherwise. */
sqlite3_stmt *lm_cp_store_spread(sqlite3 *db, const char *id);
bool lm_cp_store_spread_assigned(sqlite3 *db, const char *id, int64_t now);
/* A command for every part of parent still running (role: only those of that role; NULL:
 * all). */
bool lm_cp_store_parts_command(sqlite3 *db, const char *parent, const char *kind, int64_t deadline,
                               const char *role, int64_t now);
/* Whether job_id has had a command of that kind. */
bool lm_cp_store_has_command(sqlite3 *db, const char *job_id, const char *kind);
/* List: migration id, lead part id of the spread migrations whose cutover was asked for, all
 * of whose followers are COMPLETE, and whose lead has no cutover yet (the lead goes last: it
 * starts the balancers again). */
sqlite3_stmt *lm_cp_store_lead_cutovers_due(sqlite3 *db);
/* List: id, parent, host, role, shards of the running parts agent_id holds. */
sqlite3_stmt *lm_cp_store_parts_held(sqlite3 *db, const char *agent_id);
/* Row: the agent id on host of org when it is linked (its link-token live), has sent a
 * heartbeat since `since` and is not marked lost; NULL otherwise. */
sqlite3_stmt *lm_cp_store_host_alive(sqlite3 *db, const char *org, const char *host, int64_t since);
/* List: id, parent, host, role of the running parts no agent has taken up, created before
 * `before` (their host may be gone: handed on when it is not alive). */
sqlite3_stmt *lm_cp_store_parts_unheld(sqlite3 *db, int64_t before);

#endif
