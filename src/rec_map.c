/* rec_map.c: field maps (presets, --fields parsing, detection), mapping a
 * JSON object onto (instruction, input, output), and the content hash. */
#include "rec_internal.h"

#include <stdlib.h>
#include <string.h>

#include "dl_sha256.h"

/* ---- buffers --------------------------------------------------------- */

dl_status rec_buf_reserve(rec_buf *b, size_t want, dl_error *err)
{
    if (want <= b->cap)
        return DL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return dl_error_set(err, DL_ERR_NOMEM, "out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return DL_OK;
}

dl_status rec_buf_append(rec_buf *b, const void *data, size_t n, dl_error *err)
{
    if (n > SIZE_MAX - b->n - 1)
        return dl_error_set(err, DL_ERR_NOMEM, "buffer size overflow");
    dl_status st = rec_buf_reserve(b, b->n + n + 1, err);
    if (st != DL_OK)
        return st;
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0'; /* always a C string, for the record's fields */
    return DL_OK;
}

void rec_buf_free(rec_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- names ------------------------------------------------------------ */

const char *rec_shape_name(rec_shape shape)
{
    switch (shape) {
    case REC_SHAPE_AUTO: return "auto";
    case REC_SHAPE_ALPACA: return "alpaca";
    case REC_SHAPE_PROMPT_COMPLETION: return "prompt-completion";
    case REC_SHAPE_QUESTION_ANSWER: return "question-answer";
    case REC_SHAPE_MESSAGES: return "messages";
    case REC_SHAPE_CUSTOM: return "custom";
    }
    return "unknown";
}

const char *rec_form_name(rec_form form)
{
    switch (form) {
    case REC_FORM_JSONL: return "jsonl";
    case REC_FORM_ARRAY: return "json-array";
    case REC_FORM_UNKNOWN: break;
    }
    return "unknown";
}

const char *rec_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

/* ---- presets and parsing ---------------------------------------------- */

static void map_set(char *dst, const char *src)
{
    /* Callers pass keys already checked to fit REC_KEY_MAX. */
    snprintf(dst, REC_KEY_MAX, "%s", src);
}

void rec_map_init(rec_map *m, rec_shape shape)
{
    memset(m, 0, sizeof *m);
    m->shape = shape;
    map_set(m->id, "id");
    switch (shape) {
    case REC_SHAPE_ALPACA:
        map_set(m->instruction, "instruction");
        map_set(m->input, "input");
        map_set(m->output, "output");
        break;
    case REC_SHAPE_PROMPT_COMPLETION:
        map_set(m->instruction, "prompt");
        map_set(m->output, "completion");
        break;
    case REC_SHAPE_QUESTION_ANSWER:
        map_set(m->instruction, "question");
        map_set(m->output, "answer");
        break;
    case REC_SHAPE_MESSAGES:
        map_set(m->messages, "messages");
        break;
    case REC_SHAPE_AUTO:
    case REC_SHAPE_CUSTOM:
        break;
    }
}

static const rec_shape map_presets[] = {REC_SHAPE_AUTO, REC_SHAPE_ALPACA,
                                        REC_SHAPE_PROMPT_COMPLETION,
                                        REC_SHAPE_QUESTION_ANSWER, REC_SHAPE_MESSAGES};

/* Copies s[0..n) without surrounding spaces/tabs into out (size REC_KEY_MAX
 * + slack); returns the trimmed length, or SIZE_MAX when it does not fit. */
static size_t map_trim(const char *s, size_t n, char *out, size_t cap)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        return SIZE_MAX;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

enum { MAP_T_INSTRUCTION, MAP_T_INPUT, MAP_T_OUTPUT, MAP_T_ID, MAP_T_MESSAGES, MAP_T_COUNT };
static const char *const map_targets[MAP_T_COUNT] = {"instruction", "input", "output", "id",
                                                     "messages"};

/* Parses one "target=key" entry into the slots of tmp. */
static dl_status map_parse_entry(const char *s, size_t n, rec_map *tmp, int seen[MAP_T_COUNT],
                                 dl_error *err)
{
    char target[REC_KEY_MAX], key[REC_KEY_MAX];
    const char *eq = memchr(s, '=', n);
    if (!eq) {
        char item[REC_KEY_MAX];
        if (map_trim(s, n, item, sizeof item) == 0)
            return dl_error_set(err, DL_ERR_USAGE, "empty entry in the field map");
        return dl_error_set(err, DL_ERR_USAGE, "expected TARGET=KEY in the field map, got '%.*s'",
                            (int)(n > 64 ? 64 : n), s);
    }
    size_t tn = map_trim(s, (size_t)(eq - s), target, sizeof target);
    if (tn == 0)
        return dl_error_set(err, DL_ERR_USAGE, "empty target name before '=' in the field map");
    if (tn == SIZE_MAX)
        return dl_error_set(err, DL_ERR_USAGE, "target name too long in the field map");
    int t = 0;
    while (t < MAP_T_COUNT && strcmp(target, map_targets[t]))
        t++;
    if (t == MAP_T_COUNT)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, target,
                               "unknown target '%s' (expected instruction, input, output, id "
                               "or messages)", target);
    if (seen[t])
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, target,
                               "target '%s' given twice", target);
    size_t kn = map_trim(eq + 1, n - (size_t)(eq + 1 - s), key, sizeof key);
    if (kn == 0)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, target,
                               "empty key name for target '%s'", target);
    if (kn == SIZE_MAX)
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, target,
                               "key name for target '%s' longer than %d bytes", target,
                               REC_KEY_MAX - 1);
    seen[t] = 1;
    char *slots[MAP_T_COUNT] = {tmp->instruction, tmp->input, tmp->output, tmp->id,
                                tmp->messages};
    map_set(slots[t], key);
    return DL_OK;
}

dl_status rec_map_parse(const char *spec, rec_map *m, dl_error *err)
{
    if (!spec)
        return dl_error_set(err, DL_ERR_USAGE, "no field map given");
    if (!strchr(spec, '=')) {
        char name[REC_KEY_MAX];
        size_t nn = map_trim(spec, strlen(spec), name, sizeof name);
        for (size_t i = 0; nn != SIZE_MAX && i < sizeof map_presets / sizeof map_presets[0]; i++) {
            if (!strcmp(name, rec_shape_name(map_presets[i]))) {
                rec_map_init(m, map_presets[i]);
                return DL_OK;
            }
        }
        return dl_error_set(err, DL_ERR_USAGE,
                            "unknown field map '%.64s' (expected auto, alpaca, prompt-completion, "
                            "question-answer, messages or TARGET=KEY,...)", spec);
    }
    rec_map tmp;
    rec_map_init(&tmp, REC_SHAPE_CUSTOM);
    int seen[MAP_T_COUNT] = {0};
    const char *s = spec;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        dl_status st = map_parse_entry(s, n, &tmp, seen, err);
        if (st != DL_OK)
            return st;
        if (!comma)
            break;
        s = comma + 1;
    }
    if (seen[MAP_T_MESSAGES]) {
        if (seen[MAP_T_INSTRUCTION] || seen[MAP_T_INPUT] || seen[MAP_T_OUTPUT])
            return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, "messages",
                                   "'messages' cannot be combined with instruction, input "
                                   "or output");
        tmp.shape = REC_SHAPE_MESSAGES;
    } else if (!seen[MAP_T_INSTRUCTION] || !seen[MAP_T_OUTPUT]) {
        const char *missing = seen[MAP_T_INSTRUCTION] ? "output" : "instruction";
        return dl_error_set_at(err, DL_ERR_USAGE, NULL, 0, 0, -1, missing,
                               "the field map needs '%s=KEY' (or messages=KEY)", missing);
    }
    *m = tmp;
    return DL_OK;
}

char *rec_map_describe(const rec_map *m, char *buf, size_t n)
{
    if (!buf || n == 0)
        return buf;
    const char *name = rec_shape_name(m->shape);
    if (m->shape == REC_SHAPE_AUTO)
        snprintf(buf, n, "auto (detect from the first record)");
    else if (m->messages[0])
        snprintf(buf, n, "%s (messages=%s, id=%s)", name, m->messages, m->id);
    else if (m->input[0])
        snprintf(buf, n, "%s (instruction=%s, input=%s?, output=%s, id=%s)", name,
                 m->instruction, m->input, m->output, m->id);
    else
        snprintf(buf, n, "%s (instruction=%s, output=%s, id=%s)", name, m->instruction,
                 m->output, m->id);
    return buf;
}

/* ---- detection and extraction ------------------------------------------ */

int rec_map_detect(json_t *obj, rec_map *m)
{
    if (!json_is_object(obj))
        return 0;
    rec_shape shape;
    if (json_is_array(json_object_get(obj, "messages")))
        shape = REC_SHAPE_MESSAGES;
    else if (json_object_get(obj, "instruction") && json_object_get(obj, "output"))
        shape = REC_SHAPE_ALPACA;
    else if (json_object_get(obj, "prompt") && json_object_get(obj, "completion"))
        shape = REC_SHAPE_PROMPT_COMPLETION;
    else if (json_object_get(obj, "question") && json_object_get(obj, "answer"))
        shape = REC_SHAPE_QUESTION_ANSWER;
    else
        return 0;
    rec_map_init(m, shape);
    return 1;
}

static dl_status field_fail(const rec_loc *loc, const char *field, dl_error *err, const char *msg,
                            const char *detail)
{
    return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                           field, "%s%s", msg, detail ? detail : "");
}

/* Reads obj[key] as a string; a missing optional key gives "".  Errors name
 * `field` (the key, or a path such as "messages[2].role"). */
static dl_status field_string(json_t *obj, const char *key, const char *field, const char *role,
                              int required, const char **s, size_t *n, const rec_loc *loc,
                              dl_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (!required) {
            *s = "";
            *n = 0;
            return DL_OK;
        }
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               field, "missing (it is the %s)", role);
    }
    if (!json_is_string(v))
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               field, "expected a string, got %s", rec_json_type_name(v));
    *s = json_string_value(v);
    *n = json_string_length(v);
    return DL_OK;
}

static const char *const chat_roles[3] = {"system", "user", "assistant"};

/* One chat message: its role index (0 system, 1 user, 2 assistant) and content. */
static dl_status chat_message(json_t *msgs, size_t i, const char *key, int *role,
                              const char **content, size_t *len, const rec_loc *loc,
                              dl_error *err)
{
    char field[REC_KEY_MAX + 48];
    json_t *el = json_array_get(msgs, i);
    snprintf(field, sizeof field, "%s[%zu]", key, i);
    if (!json_is_object(el))
        return field_fail(loc, field, err, "expected an object {role, content}, got ",
                          rec_json_type_name(el));
    snprintf(field, sizeof field, "%s[%zu].role", key, i);
    const char *r;
    size_t rn;
    dl_status st = field_string(el, "role", field, "message's role", 1, &r, &rn, loc, err);
    if (st != DL_OK)
        return st;
    for (*role = 0; *role < 3 && strcmp(r, chat_roles[*role]); (*role)++)
        ;
    if (*role == 3)
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               field, "unknown role '%.40s' (expected system, user or "
                               "assistant)", r);
    snprintf(field, sizeof field, "%s[%zu].content", key, i);
    return field_string(el, "content", field, "message's content", 1, content, len, loc, err);
}

/* The messages shape (rec.h): last = output, the one before = instruction,
 * the rest folded into input. */
static dl_status map_extract_chat(const rec_map *m, json_t *obj, rec_buf *fold, rec_fields *out,
                                  const rec_loc *loc, dl_error *err)
{
    static const char *const prefix[3] = {"System: ", "User: ", "Assistant: "};
    json_t *msgs = json_object_get(obj, m->messages);
    if (!msgs)
        return field_fail(loc, m->messages, err, "missing (it holds the chat)", NULL);
    if (!json_is_array(msgs))
        return field_fail(loc, m->messages, err, "expected an array of messages, got ",
                          rec_json_type_name(msgs));
    size_t n = json_array_size(msgs);
    if (n < 2)
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               m->messages, "a chat needs a user and an assistant message "
                               "(got %zu message%s)", n, n == 1 ? "" : "s");
    fold->n = 0;
    dl_status st = rec_buf_append(fold, "", 0, err);
    int role_prev = 0, role_last = 0;
    for (size_t i = 0; st == DL_OK && i < n; i++) {
        int role = 0;
        const char *c;
        size_t cn;
        st = chat_message(msgs, i, m->messages, &role, &c, &cn, loc, err);
        if (st != DL_OK)
            break;
        if (i == n - 1) {
            role_last = role;
            out->output = c;
            out->output_len = cn;
        } else if (i == n - 2) {
            role_prev = role;
            out->instruction = c;
            out->instruction_len = cn;
        } else {
            if (i > 0)
                st = rec_buf_append(fold, "\n", 1, err);
            if (st == DL_OK)
                st = rec_buf_append(fold, prefix[role], strlen(prefix[role]), err);
            if (st == DL_OK)
                st = rec_buf_append(fold, c, cn, err);
        }
    }
    if (st != DL_OK)
        return st;
    if (role_last != 2)
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               m->messages, "the last message must be the assistant's (got "
                               "role '%s')", chat_roles[role_last]);
    if (role_prev != 1)
        return dl_error_set_at(err, DL_ERR_INPUT, loc->file, loc->line, loc->column, loc->offset,
                               m->messages, "the message before the last must be the user's "
                               "(got role '%s')", chat_roles[role_prev]);
    out->input = fold->p;
    out->input_len = fold->n;
    return DL_OK;
}

dl_status rec_map_extract(const rec_map *m, json_t *obj, rec_buf *fold, rec_fields *out,
                          const rec_loc *loc, dl_error *err)
{
    if (m->shape == REC_SHAPE_MESSAGES)
        return map_extract_chat(m, obj, fold, out, loc, err);
    dl_status st = field_string(obj, m->instruction, m->instruction, "instruction", 1, &out->instruction,
                                &out->instruction_len, loc, err);
    if (st == DL_OK && m->input[0])
        st = field_string(obj, m->input, m->input, "input", 0, &out->input, &out->input_len, loc, err);
    else if (st == DL_OK) {
        out->input = "";
        out->input_len = 0;
    }
    if (st == DL_OK)
        st = field_string(obj, m->output, m->output, "output", 1, &out->output, &out->output_len, loc, err);
    return st;
}

/* ---- content hash ------------------------------------------------------ */

static void hash_field(dl_sha256_ctx *ctx, const char *s, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    dl_sha256_update(ctx, len, sizeof len);
    dl_sha256_update(ctx, s, n);
}

void rec_hash_content(const char *instruction, size_t instruction_len, const char *input,
                      size_t input_len, const char *output, size_t output_len,
                      uint8_t out[REC_HASH_LEN])
{
    static const char tag[] = "delift-record-v1"; /* the 0x00 after it is hashed too */
    dl_sha256_ctx ctx;
    dl_sha256_init(&ctx);
    dl_sha256_update(&ctx, tag, sizeof tag);
    hash_field(&ctx, instruction, instruction_len);
    hash_field(&ctx, input, input_len);
    hash_field(&ctx, output, output_len);
    dl_sha256_final(&ctx, out);
}
