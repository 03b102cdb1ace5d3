/* log.c: levelled logging and the progress bar. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static it_log_level g_level = IT_LOG_INFO;
static int g_machine;

void it_log_set_level(it_log_level level) { g_level = level; }
it_log_level it_log_get_level(void) { return g_level; }
void it_log_set_machine_output(int on) { g_machine = on; }
int it_log_machine_output(void) { return g_machine; }

int it_log_level_parse(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

void it_log(it_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"error", "warning", "info", "debug"};
    if (level > g_level) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "intenttuner: %s: ", tags[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double it_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void it_format_duration(char *buf, int n, double s)
{
    if (s < 0 || s != s || s > 1e8) {
        snprintf(buf, (size_t)n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, (size_t)n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, (size_t)n, "%ld:%02ld", t / 60, t % 60);
}

void it_progress_start(it_progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t_start = it_time_now();
    p->active = !g_machine && g_level >= IT_LOG_INFO && isatty(STDERR_FILENO);
}

void it_progress_start_at(it_progress *p, const char *label, int64_t done, int64_t total)
{
    it_progress_start(p, label, total);
    p->done = p->first = done;
}

static void draw(it_progress *p, double now)
{
    double el = now - p->t_start;
    double rate = el > 0 ? (double)(p->done - p->first) / el : 0;
    const char *unit = p->unit ? p->unit : "it";
    char eta[32], ela[32];
    it_format_duration(ela, sizeof ela, el);
    if (p->total > 0 && rate > 0)
        it_format_duration(eta, sizeof eta, (double)(p->total - p->done) / rate);
    else
        snprintf(eta, sizeof eta, "--:--");
    char bar[32];
    int width = 24;
    int fill = p->total > 0 ? (int)((double)width * (double)p->done / (double)p->total) : 0;
    if (fill > width) fill = width;
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = '\0';
    if (p->total > 0)
        fprintf(stderr, "\r%s [%s] %lld/%lld %.2f %s/s %s ETA %s %s\033[K", p->label, bar,
                (long long)p->done, (long long)p->total, rate, unit, ela, eta, p->extra);
    else
        fprintf(stderr, "\r%s %lld %.2f %s/s %s %s\033[K", p->label, (long long)p->done, rate,
                unit, ela, p->extra);
    fflush(stderr);
}

void it_progress_update(it_progress *p, int64_t done, const char *extra)
{
    p->done = done;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    if (!p->active) return;
    double now = it_time_now();
    if (now - p->t_last_draw < 0.1 && done != p->total) return;
    p->t_last_draw = now;
    draw(p, now);
}

void it_progress_finish(it_progress *p)
{
    double now = it_time_now();
    if (p->active) {
        draw(p, now);
        fputc('\n', stderr);
    } else if (!g_machine) {
        char ela[32];
        it_format_duration(ela, sizeof ela, now - p->t_start);
        it_log(IT_LOG_DEBUG, "%s: %lld done in %s %s", p->label, (long long)p->done, ela,
               p->extra);
    }
}
