/*
 * State shared by all server threads: the journal of the last
 * EMU_JOURNAL_SIZE requests, counters per endpoint and per status, and the
 * fail_first counters per tag. One mutex guards all of it, and each request
 * holds it for a few copies only.
 */

#include <inttypes.h>
#include <pthread.h>
#include <string.h>

#include "emu.h"

#define EMU_TAGS_MAX  64

typedef struct {
    char      tag[EMU_TAG_MAX];
    unsigned  seen;              /* requests that carried the tag */
    uint64_t  last_used;         /* for eviction of the least recently used */
} emu_tag_counter_t;

static pthread_mutex_t     emu_lock = PTHREAD_MUTEX_INITIALIZER;

static emu_record_t        emu_journal[EMU_JOURNAL_SIZE];
static uint64_t            emu_journal_next;     /* seq of the next record */
static uint64_t            emu_journal_first;    /* oldest seq still listed */

static uint64_t            emu_endpoint_counts[EMU_ENDPOINT_COUNT];
static uint64_t            emu_status_counts[600];

static emu_tag_counter_t   emu_tags[EMU_TAGS_MAX];
static uint64_t            emu_tag_clock;

static uint64_t            emu_id_counter;

static const char  *emu_endpoint_names[EMU_ENDPOINT_COUNT] = {
    "chat_completions", "messages", "ollama_chat", "models", "ollama_tags",
    "control", "other"
};


int
emu_journal_init(void)
{
    emu_journal_next = 1;
    emu_journal_first = 1;
    return 0;
}


uint64_t
emu_next_id(void)
{
    return __atomic_add_fetch(&emu_id_counter, 1, __ATOMIC_RELAXED);
}


/* Copies the record into the ring and assigns its sequence number. */
void
emu_journal_add(const emu_record_t *record)
{
    emu_record_t  *slot;

    pthread_mutex_lock(&emu_lock);

    slot = &emu_journal[emu_journal_next % EMU_JOURNAL_SIZE];
    *slot = *record;
    slot->seq = emu_journal_next++;

    if (emu_journal_next - emu_journal_first > EMU_JOURNAL_SIZE) {
        emu_journal_first = emu_journal_next - EMU_JOURNAL_SIZE;
    }

    pthread_mutex_unlock(&emu_lock);
}


/* Empties the journal and forgets every fail_first tag. */
void
emu_journal_clear(void)
{
    pthread_mutex_lock(&emu_lock);
    emu_journal_first = emu_journal_next;
    memset(emu_tags, 0, sizeof(emu_tags));
    pthread_mutex_unlock(&emu_lock);
}


static void
emu_journal_write_record(struct evbuffer *out, const emu_record_t *r)
{
    evbuffer_add_printf(out, "{\"seq\":%" PRIu64 ",\"time\":%.3f,\"method\":",
                        r->seq, r->time);
    emu_json_string(out, r->method, strlen(r->method));
    evbuffer_add_printf(out, ",\"path\":");
    emu_json_string(out, r->path, strlen(r->path));

    if (r->format == EMU_FORMAT_NONE) {
        evbuffer_add_printf(out, ",\"format\":null,\"model\":");
    } else {
        evbuffer_add_printf(out, ",\"format\":\"%s\",\"model\":",
                            emu_format_name(r->format));
    }

    if (r->model[0] == '\0') {
        evbuffer_add(out, "null", 4);
    } else {
        emu_json_string(out, r->model, strlen(r->model));
    }

    evbuffer_add_printf(out, ",\"stream\":%s,\"credential_sha256\":",
                        r->stream ? "true" : "false");
    if (r->has_credential) {
        evbuffer_add_printf(out, "\"%s\"", r->credential_sha256);
    } else {
        evbuffer_add(out, "null", 4);
    }

    evbuffer_add_printf(out, ",\"status\":%d,\"knobs\":%s}", r->status,
                        r->knobs_json[0] ? r->knobs_json : "{}");
}


/* Writes the journal as a JSON array, oldest request first. */
void
emu_journal_write(struct evbuffer *out)
{
    uint64_t  seq;

    evbuffer_add(out, "[", 1);

    pthread_mutex_lock(&emu_lock);

    for (seq = emu_journal_first; seq < emu_journal_next; seq++) {
        if (seq != emu_journal_first) {
            evbuffer_add(out, ",", 1);
        }
        emu_journal_write_record(out, &emu_journal[seq % EMU_JOURNAL_SIZE]);
    }

    pthread_mutex_unlock(&emu_lock);

    evbuffer_add(out, "]\n", 2);
}


void
emu_stats_count(emu_endpoint_t endpoint, int status)
{
    pthread_mutex_lock(&emu_lock);

    emu_endpoint_counts[endpoint]++;
    if (status >= 100 && status < 600) {
        emu_status_counts[status]++;
    }

    pthread_mutex_unlock(&emu_lock);
}


/* Writes {"requests":N,"endpoints":{...},"status":{"200":N,...}}. */
void
emu_stats_write(struct evbuffer *out)
{
    uint64_t  total = 0;
    int       i;
    bool      first;

    pthread_mutex_lock(&emu_lock);

    for (i = 0; i < EMU_ENDPOINT_COUNT; i++) {
        total += emu_endpoint_counts[i];
    }

    evbuffer_add_printf(out, "{\"requests\":%" PRIu64 ",\"endpoints\":{",
                        total);
    for (i = 0; i < EMU_ENDPOINT_COUNT; i++) {
        evbuffer_add_printf(out, "%s\"%s\":%" PRIu64, i ? "," : "",
                            emu_endpoint_names[i], emu_endpoint_counts[i]);
    }

    evbuffer_add(out, "},\"status\":{", 12);
    first = true;
    for (i = 100; i < 600; i++) {
        if (emu_status_counts[i] != 0) {
            evbuffer_add_printf(out, "%s\"%d\":%" PRIu64, first ? "" : ",", i,
                                emu_status_counts[i]);
            first = false;
        }
    }

    pthread_mutex_unlock(&emu_lock);

    evbuffer_add(out, "}}\n", 3);
}


/*
 * Counts one request carrying the tag and returns true while the count is
 * at most fail_first. When the table is full, the least recently used tag
 * is forgotten, so it starts again from zero if it comes back.
 */
bool
emu_fail_first_hit(const char *tag, int fail_first)
{
    emu_tag_counter_t  *slot = NULL, *oldest = &emu_tags[0];
    bool                hit;
    int                 i;

    pthread_mutex_lock(&emu_lock);

    for (i = 0; i < EMU_TAGS_MAX; i++) {
        if (emu_tags[i].last_used != 0 && strcmp(emu_tags[i].tag, tag) == 0) {
            slot = &emu_tags[i];
            break;
        }
        if (emu_tags[i].last_used < oldest->last_used) {
            oldest = &emu_tags[i];
        }
    }

    if (slot == NULL) {
        slot = oldest;
        memset(slot, 0, sizeof(*slot));
        strncpy(slot->tag, tag, EMU_TAG_MAX - 1);
    }

    slot->last_used = ++emu_tag_clock;
    slot->seen++;
    hit = slot->seen <= (unsigned) fail_first;

    pthread_mutex_unlock(&emu_lock);

    return hit;
}
