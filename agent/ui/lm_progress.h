/* lm_progress: what a person watching sees. On a terminal (stderr is a TTY) a live
 * display redrawn every second: phase, documents and bytes with rate and ETA, and the
 * collections being copied. Otherwise a log line every 5 seconds. */
#ifndef LM_PROGRESS_H
#define LM_PROGRESS_H

#include "lm_status.h"

typedef struct lm_progress lm_progress_t;

lm_progress_t *lm_progress_start(lm_status_t *st);
/* Stops the thread and clears the live display. NULL is fine. */
void lm_progress_stop(lm_progress_t *p);

#endif
