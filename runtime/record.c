#include "runtime/record.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/timeutil.h"

int rt_invocation_id(char id[RT_INVOCATION_ID_LEN + 1])
{
    unsigned char raw[RT_INVOCATION_ID_LEN / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof raw; i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 15];
    }
    id[RT_INVOCATION_ID_LEN] = '\0';
    return 0;
}

int rt_json_string(struct fm_buf *out, const char *s, size_t n)
{
    fm_buf_puts(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fm_buf_printf(out, "\\%c", c);
        else if (c < 0x20)
            fm_buf_printf(out, "\\u%04x", c);
        else
            fm_buf_append(out, &s[i], 1);
    }
    return fm_buf_puts(out, "\"");
}

/* The fields every record starts with, up to and including "time". */
static void common_fields(const struct rt_invocation *inv, const char *type, const char *id_tail,
                          int64_t when, struct fm_buf *out)
{
    char t[FM_TIME_BUFSZ];
    fm_time_format(when, t, sizeof t);
    fm_buf_printf(out, "{\"id\":\"%s:%s\",\"type\":\"%s\",\"invocation_id\":\"%s\"", inv->id,
                  id_tail, type, inv->id);
    /* Tenant and function names are validated to need no escaping. */
    fm_buf_printf(out, ",\"tenant\":\"%s\",\"function\":\"%s\",\"time\":\"%s\"",
                  inv->fn->tenant, inv->fn->name, t);
    if (inv->correlation_id) {
        fm_buf_puts(out, ",\"correlation_id\":");
        rt_json_string(out, inv->correlation_id, strlen(inv->correlation_id));
    }
}

int rt_record_start(const struct rt_invocation *inv, struct fm_buf *out)
{
    common_fields(inv, "start", "start", inv->start_wall_us, out);
    fm_buf_printf(out,
                  ",\"memory_mb\":%d,\"timeout_ms\":%" PRId64
                  ",\"cold_start\":%s,\"trigger\":\"%s\"}",
                  inv->fn->memory_mb, inv->fn->timeout_ms, inv->cold_start ? "true" : "false",
                  inv->trigger);
    return out->failed ? -1 : 0;
}

int rt_record_stop(const struct rt_invocation *inv, const struct rt_stop_info *stop,
                   struct fm_buf *out)
{
    const struct rt_exec_result *r = stop->run;
    common_fields(inv, "stop", "stop", stop->stop_wall_us, out);
    fm_buf_printf(out, ",\"memory_mb\":%d,\"cold_start\":%s", inv->fn->memory_mb,
                  inv->cold_start ? "true" : "false");
    fm_buf_printf(out,
                  ",\"duration_us\":%" PRId64 ",\"init_us\":%" PRId64
                  ",\"status\":\"%s\",\"exit_code\":%d",
                  r->duration_us, stop->init_us, rt_run_status_name(r->status), r->exit_code);
    fm_buf_printf(out,
                  ",\"cpu_user_us\":%" PRId64 ",\"cpu_sys_us\":%" PRId64
                  ",\"max_rss_kb\":%" PRId64 ",\"bytes_in\":%" PRId64 ",\"bytes_out\":%" PRId64
                  "}",
                  r->cpu_user_us, r->cpu_sys_us, r->max_rss_kb, stop->bytes_in,
                  stop->bytes_out);
    return out->failed ? -1 : 0;
}

int rt_record_resource(const struct rt_invocation *inv, int n, int64_t when,
                       const struct rt_usage_sample *use, struct fm_buf *out)
{
    char tail[32];
    snprintf(tail, sizeof tail, "res:%d", n);
    common_fields(inv, "resource", tail, when, out);
    fm_buf_printf(out,
                  ",\"cpu_user_us\":%" PRId64 ",\"cpu_sys_us\":%" PRId64 ",\"max_rss_kb\":%" PRId64
                  "}",
                  use->cpu_user_us, use->cpu_sys_us, use->max_rss_kb);
    return out->failed ? -1 : 0;
}
