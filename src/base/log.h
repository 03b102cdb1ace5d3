/* log.h: levelled logging to stderr and the progress bar for long work.
 *
 * Owns: the process-wide log level, the "machine output" switch (--json: no
 * colours, no progress bars, so stdout stays parseable) and the progress bar.
 * Does not own command output: commands print results to stdout themselves. */
#ifndef IT_LOG_H
#define IT_LOG_H

#include <stdint.h>

typedef enum it_log_level {
    IT_LOG_ERROR = 0,
    IT_LOG_WARN = 1,
    IT_LOG_INFO = 2,
    IT_LOG_DEBUG = 3,
} it_log_level;

void it_log_set_level(it_log_level level);
it_log_level it_log_get_level(void);
/* Parses "error|warn|info|debug"; returns -1 if unknown. */
int it_log_level_parse(const char *s);

/* When on, progress bars stay silent (set by --json). */
void it_log_set_machine_output(int on);
int it_log_machine_output(void);

void it_log(it_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define IT_LOG_E(...) it_log(IT_LOG_ERROR, __VA_ARGS__)
#define IT_LOG_W(...) it_log(IT_LOG_WARN, __VA_ARGS__)
#define IT_LOG_I(...) it_log(IT_LOG_INFO, __VA_ARGS__)
#define IT_LOG_D(...) it_log(IT_LOG_DEBUG, __VA_ARGS__)

/* Progress bar on stderr: "label [=====>    ] 42/100 12.3 it/s ETA 0:05 loss 0.12".
 * Drawn only when stderr is a TTY, machine output is off and the level is at
 * least INFO; otherwise silent (a summary line is logged at the end at INFO
 * level when not a TTY, so logs still show that the work happened). Redraws
 * at most 10 times per second. */
typedef struct it_progress {
    const char *label;
    int64_t total;     /* 0 if unknown */
    int64_t done;
    int64_t first;     /* done at start (a resumed run): the rate counts from here */
    double t_start;    /* seconds, monotonic */
    double t_last_draw;
    int active;        /* drawing enabled */
    char extra[96];    /* caller-provided suffix, e.g. "loss 0.123" */
    const char *unit;  /* rate unit, "it" when NULL ("steps" -> "steps/s") */
} it_progress;

void it_progress_start(it_progress *p, const char *label, int64_t total);
/* For work resumed at `done` of `total`: the bar starts there and the rate
 * and ETA count only what this process does. */
void it_progress_start_at(it_progress *p, const char *label, int64_t done, int64_t total);
void it_progress_update(it_progress *p, int64_t done, const char *extra_or_null);
void it_progress_finish(it_progress *p);

/* Monotonic clock in seconds. */
double it_time_now(void);

/* Formats seconds as "h:mm:ss" or "m:ss" into buf. */
void it_format_duration(char *buf, int n, double seconds);

#endif
