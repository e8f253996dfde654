/* check_rec.c: the records module: SHA-256, UTF-8, field maps, the
 * streaming reader over every shape and form, ids, offsets, raw bytes,
 * hashes, every malformed case, skip_invalid, limits, failing allocation.
 *
 * Independent references: FIPS 180 example vectors and sha256sum(1) for
 * SHA-256; content hashes computed with Python's hashlib over the encoding
 * documented in rec.h; a bit-arithmetic UTF-8 decoder for the validator;
 * byte positions found with memmem in the test's own input. */
#define _GNU_SOURCE /* fopencookie, memmem */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dl_sha256.h"
#include "dl_test.h"
#include "dl_utf8.h"
#include "rec.h"

/* ---- helpers ---------------------------------------------------------- */

/* A read-only stream over n bytes (a temporary file: NULs and n == 0 work). */
static FILE *mem_stream(const void *data, size_t n)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    if (n)
        ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    rewind(f);
    return f;
}

typedef struct problems {
    int n;
    dl_error first[16];
} problems;

static void collect_problem(void *ctx, const dl_error *e)
{
    problems *p = ctx;
    if (p->n < 16)
        p->first[p->n] = *e;
    p->n++;
}

/* Reads a whole in-memory pool; returns the final status, the records' ids
 * joined by ',' in ids (when non-NULL) and the count in *n. */
static dl_status read_all(const char *text, size_t len, const rec_reader_opts *opts, char *ids,
                          size_t ids_cap, int64_t *n, dl_error *err)
{
    FILE *f = mem_stream(text, len);
    rec_reader *r = NULL;
    dl_error_clear(err);
    ck_assert_int_eq(rec_reader_open_stream(f, "mem", opts, &r, err), DL_OK);
    const rec_record *rec;
    dl_status st;
    *n = 0;
    if (ids)
        ids[0] = '\0';
    while ((st = rec_reader_next(r, &rec, err)) == DL_OK && rec) {
        if (ids) {
            size_t used = strlen(ids);
            snprintf(ids + used, ids_cap - used, "%s%s", used ? "," : "", rec->id);
        }
        ck_assert_int_eq(rec->index, *n);
        (*n)++;
    }
    rec_reader_free(r);
    fclose(f);
    return st;
}

static dl_status read_str(const char *text, const rec_reader_opts *opts, char *ids,
                          size_t ids_cap, int64_t *n, dl_error *err)
{
    return read_all(text, strlen(text), opts, ids, ids_cap, n, err);
}

static void hex_of(const uint8_t d[32], char out[65])
{
    dl_sha256_hex(d, out);
}

/* ---- SHA-256 ------------------------------------------------------------ */

START_TEST(test_sha256_fips_vectors)
{
    static const struct {
        const char *msg;
        const char *hex;
    } v[] = {
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    uint8_t d[32];
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        dl_sha256(v[i].msg, strlen(v[i].msg), d);
        ck_assert_str_eq(dl_sha256_hex(d, hex), v[i].hex);
    }
    /* One million 'a', fed in uneven pieces. */
    static char a[2048]; /* pieces are at most 1057 bytes */
    memset(a, 'a', sizeof a);
    dl_sha256_ctx ctx;
    dl_sha256_init(&ctx);
    size_t left = 1000000, piece = 1;
    while (left) {
        size_t k = piece < left ? piece : left;
        dl_sha256_update(&ctx, a, k);
        left -= k;
        piece = piece % 997 + 61;
    }
    dl_sha256_final(&ctx, d);
    ck_assert_str_eq(dl_sha256_hex(d, hex),
                     "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

/* Every length 0..300 (all padding cases) and a few large ones, against
 * sha256sum(1); and split updates against the one-shot digest. */
START_TEST(test_sha256_against_sha256sum)
{
    if (system("sha256sum --version >/dev/null 2>&1") != 0) {
        printf("sha256sum not found: comparison skipped\n");
        return;
    }
    char dir[] = "/tmp/dl_check_rec_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    static uint8_t buf[70000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    size_t lens[200];
    size_t n_lens = 0;
    for (size_t l = 0; l <= 300; l += 1 + (l > 130) * 6)
        lens[n_lens++] = l;
    lens[n_lens++] = 4095;
    lens[n_lens++] = 65536;
    lens[n_lens++] = sizeof buf;
    /* One sha256sum call over every file, in order. */
    static char cmd[200 * 64];
    size_t used = (size_t)snprintf(cmd, sizeof cmd, "sha256sum");
    for (size_t t = 0; t < n_lens; t++) {
        char path[64];
        snprintf(path, sizeof path, "%s/%zu", dir, t);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(buf, 1, lens[t], f), lens[t]);
        fclose(f);
        used += (size_t)snprintf(cmd + used, sizeof cmd - used, " %s", path);
    }
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    for (size_t t = 0; t < n_lens; t++) {
        size_t len = lens[t];
        char line[256] = "", path[64];
        ck_assert_ptr_nonnull(fgets(line, sizeof line, p));
        line[64] = '\0';
        uint8_t d[32], d2[32];
        char hex[65];
        dl_sha256(buf, len, d);
        ck_assert_msg(!strcmp(dl_sha256_hex(d, hex), line), "length %zu: %s vs %s", len, hex,
                      line);
        dl_sha256_ctx ctx;
        dl_sha256_init(&ctx);
        size_t split = len / 3;
        dl_sha256_update(&ctx, buf, split);
        dl_sha256_update(&ctx, NULL, 0);
        dl_sha256_update(&ctx, buf + split, len - split);
        dl_sha256_final(&ctx, d2);
        ck_assert_mem_eq(d, d2, 32);
        snprintf(path, sizeof path, "%s/%zu", dir, t);
        unlink(path);
    }
    ck_assert_int_eq(pclose(p), 0);
    rmdir(dir);
}
END_TEST

/* Expected values from Python: sha256(b"delift-record-v1\0" +
 * b"".join(struct.pack(">Q", len(f)) + f for f in fields)). */
START_TEST(test_content_hash_encoding)
{
    uint8_t d[32], d2[32];
    char hex[65];
    rec_hash_content("Add.", 4, "1+1", 3, "2", 1, d);
    hex_of(d, hex);
    ck_assert_str_eq(hex, "b27cea2a2424c680c3894685df80fc7ceb005ef1f14a9d864abe9f3a0800770d");
    rec_hash_content(NULL, 0, NULL, 0, NULL, 0, d);
    hex_of(d, hex);
    ck_assert_str_eq(hex, "0b3748bcaab84622ba76af3cac65765c2a89dff931aeff2791226734b11b616f");
    const char *i = "\xc3\x9c" "bersetze: caf\xc3\xa9", *n = "na\xc3\xafve \xe2\x80\x94 ok",
               *o = "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89";
    rec_hash_content(i, strlen(i), n, strlen(n), o, strlen(o), d);
    hex_of(d, hex);
    ck_assert_str_eq(hex, "ce0b57d553483317444a338cd92789380ab1e299b79a916802baf1a33de47205");
    /* Unambiguous: moving a byte between fields changes the hash. */
    rec_hash_content("ab", 2, "", 0, "c", 1, d);
    rec_hash_content("a", 1, "b", 1, "c", 1, d2);
    hex_of(d, hex);
    ck_assert_str_eq(hex, "73b807d5e8cc05e1c7f478e7b8867318f663eb104dc19bc823f089fac2df9a4c");
    hex_of(d2, hex);
    ck_assert_str_eq(hex, "c0a506a5b95822df62d890c8a1675b2266b6302abb4b67daab90923c33866c8d");
}
END_TEST

/* ---- UTF-8 ----------------------------------------------------------------- */

START_TEST(test_utf8_table)
{
    static const struct {
        const char *s;
        size_t n;
        int ok;
        size_t bad;
    } v[] = {
        {"plain ascii", 11, 1, 0},
        {"\xc2\x80\xdf\xbf", 4, 1, 0},                 /* U+0080, U+07FF */
        {"\xe0\xa0\x80\xef\xbf\xbf", 6, 1, 0},         /* U+0800, U+FFFF */
        {"\xed\x9f\xbf\xee\x80\x80", 6, 1, 0},         /* U+D7FF, U+E000 */
        {"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8, 1, 0}, /* U+10000, U+10FFFF */
        {"a\0b", 3, 1, 0},                             /* NUL is UTF-8 */
        {"ab\xc0\x80", 4, 0, 2},                       /* overlong NUL */
        {"\xc1\xbf", 2, 0, 0},                         /* overlong */
        {"x\xe0\x80\x80", 4, 0, 1},                    /* overlong 3-byte */
        {"\xe0\x9f\xbf", 3, 0, 0},                     /* overlong U+07FF */
        {"\xf0\x8f\xbf\xbf", 4, 0, 0},                 /* overlong U+FFFF */
        {"ok\xed\xa0\x80", 5, 0, 2},                   /* surrogate U+D800 */
        {"\xed\xbf\xbf", 3, 0, 0},                     /* surrogate U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0, 0},                 /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0, 0},
        {"\xff", 1, 0, 0},
        {"abc\x80", 4, 0, 3}, /* stray continuation */
        {"\xe2\x82", 2, 0, 0}, /* truncated at the end */
        {"\xe2\x82z", 3, 0, 0},
        {"\xf0\x9f\x8e", 3, 0, 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t bad = 999;
        ck_assert_msg(dl_utf8_valid(v[i].s, v[i].n, &bad) == v[i].ok, "case %zu", i);
        if (!v[i].ok)
            ck_assert_msg(bad == v[i].bad, "case %zu: bad at %zu", i, bad);
    }
    ck_assert_int_eq(dl_utf8_valid(NULL, 0, NULL), 1);
    ck_assert_uint_eq(dl_utf8_count("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8e\x89", 10), 4);
}
END_TEST

/* The oracle: decode with plain bit arithmetic, then accept iff the code
 * point is in range, not a surrogate, and its shortest encoding is s. */
static int oracle_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len;
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if ((s[i] & 0xE0) == 0xC0) {
            len = 2, cp = s[i] & 0x1Fu;
        } else if ((s[i] & 0xF0) == 0xE0) {
            len = 3, cp = s[i] & 0x0Fu;
        } else if ((s[i] & 0xF8) == 0xF0) {
            len = 4, cp = s[i] & 0x07u;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        size_t shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (shortest != len || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

START_TEST(test_utf8_against_oracle)
{
    uint8_t s[4];
    /* Every 2-byte string, and every 3-byte string that starts with a
     * 3-byte lead (E0..EF), where overlongs and surrogates live. */
    for (uint32_t v = 0; v < (1u << 16); v++) {
        s[0] = (uint8_t)(v >> 8), s[1] = (uint8_t)v;
        if (dl_utf8_valid(s, 2, NULL) != oracle_valid(s, 2))
            ck_abort_msg("disagree on %02x %02x", s[0], s[1]);
    }
    for (uint32_t v = 0; v < (1u << 20); v++) {
        s[0] = (uint8_t)(0xE0 | v >> 16), s[1] = (uint8_t)(v >> 8), s[2] = (uint8_t)v;
        if (dl_utf8_valid(s, 3, NULL) != oracle_valid(s, 3))
            ck_abort_msg("disagree on %02x %02x %02x", s[0], s[1], s[2]);
    }
    /* 4-byte strings: every lead F0..F7 with every second byte, then
     * pseudo-random tails. */
    uint32_t x = 99;
    for (int t = 0; t < 600000; t++) {
        x = x * 1664525u + 1013904223u;
        s[0] = (uint8_t)(0xF0 + (t & 7)), s[1] = (uint8_t)(t >> 3);
        s[2] = (uint8_t)(x >> 8), s[3] = (uint8_t)(x >> 16);
        if (t & 1)
            s[2] = (uint8_t)(0x80 | (s[2] & 0x3F)), s[3] = (uint8_t)(0x80 | (s[3] & 0x3F));
        if (dl_utf8_valid(s, 4, NULL) != oracle_valid(s, 4))
            ck_abort_msg("disagree on %02x %02x %02x %02x", s[0], s[1], s[2], s[3]);
    }
}
END_TEST

/* ---- field maps -------------------------------------------------------------- */

START_TEST(test_map_parse_presets_and_custom)
{
    rec_map m;
    dl_error e;
    char buf[256];
    dl_error_clear(&e);
    ck_assert_int_eq(rec_map_parse("alpaca", &m, &e), DL_OK);
    ck_assert_int_eq(m.shape, REC_SHAPE_ALPACA);
    ck_assert_str_eq(m.input, "input");
    ck_assert_int_eq(rec_map_parse(" question-answer ", &m, &e), DL_OK);
    ck_assert_str_eq(rec_map_describe(&m, buf, sizeof buf),
                     "question-answer (instruction=question, output=answer, id=id)");
    ck_assert_int_eq(rec_map_parse("prompt-completion", &m, &e), DL_OK);
    ck_assert_str_eq(m.instruction, "prompt");
    ck_assert_str_eq(m.output, "completion");
    ck_assert_int_eq(rec_map_parse("messages", &m, &e), DL_OK);
    ck_assert_str_eq(m.messages, "messages");
    ck_assert_int_eq(rec_map_parse("auto", &m, &e), DL_OK);
    ck_assert_int_eq(m.shape, REC_SHAPE_AUTO);

    ck_assert_int_eq(rec_map_parse("instruction=question,output=answer", &m, &e), DL_OK);
    ck_assert_int_eq(m.shape, REC_SHAPE_CUSTOM);
    ck_assert_str_eq(m.instruction, "question");
    ck_assert_str_eq(m.output, "answer");
    ck_assert_str_eq(m.input, "");
    ck_assert_str_eq(m.id, "id");
    ck_assert_int_eq(rec_map_parse(" output = code , instruction=text,id=task_id, input=ctx ",
                                   &m, &e), DL_OK);
    ck_assert_str_eq(rec_map_describe(&m, buf, sizeof buf),
                     "custom (instruction=text, input=ctx?, output=code, id=task_id)");
    ck_assert_int_eq(rec_map_parse("messages=conversation,id=uid", &m, &e), DL_OK);
    ck_assert_int_eq(m.shape, REC_SHAPE_MESSAGES);
    ck_assert_str_eq(m.messages, "conversation");
    ck_assert_str_eq(m.id, "uid");
    ck_assert_int_eq(e.code, DL_OK);
}
END_TEST

START_TEST(test_map_parse_errors)
{
    static const struct {
        const char *spec;
        const char *field;
        const char *msg;
    } v[] = {
        {"instruction=a,outptu=b", "outptu", "unknown target 'outptu'"},
        {"=a,output=b", "", "empty target name"},
        {"instruction=,output=b", "instruction", "empty key name for target 'instruction'"},
        {"instruction=a,output=b,instruction=c", "instruction", "given twice"},
        {"instruction=a", "output", "needs 'output=KEY'"},
        {"output=a,input=b", "instruction", "needs 'instruction=KEY'"},
        {"messages=m,output=b", "messages", "cannot be combined"},
        {"instruction=a,output=b,", "", "empty entry"},
        {"instruction=a,,output=b", "", "empty entry"},
        {"instruction=a,output", "", "expected TARGET=KEY"},
        {"alpacca", "", "unknown field map 'alpacca'"},
        {"", "", "unknown field map"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        rec_map m;
        rec_map_init(&m, REC_SHAPE_ALPACA);
        dl_error e;
        dl_error_clear(&e);
        ck_assert_msg(rec_map_parse(v[i].spec, &m, &e) == DL_ERR_USAGE, "%s", v[i].spec);
        ck_assert_str_eq(e.field, v[i].field);
        ck_assert_msg(strstr(e.message, v[i].msg), "%s: %s", v[i].spec, e.message);
        ck_assert_int_eq(m.shape, REC_SHAPE_ALPACA); /* untouched */
    }
    char longkey[300] = "instruction=";
    memset(longkey + 12, 'k', 200);
    strcpy(longkey + 212, ",output=x");
    rec_map m;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(rec_map_parse(longkey, &m, &e), DL_ERR_USAGE);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than"));
    ck_assert_int_eq(rec_map_parse(NULL, &m, NULL), DL_ERR_USAGE);
}
END_TEST

/* ---- shapes ---------------------------------------------------------------------- */

/* Reads text expecting exactly one record and checks its three fields. */
static void expect_one(const char *text, const rec_map *map, rec_shape shape, const char *ins,
                       const char *inp, const char *out, const char *id)
{
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    if (map)
        o.map = *map;
    FILE *f = mem_stream(text, strlen(text));
    rec_reader *r;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(rec_reader_open_stream(f, "t", &o, &r, &e), DL_OK);
    const rec_record *rec;
    ck_assert_msg(rec_reader_next(r, &rec, &e) == DL_OK, "%s", e.message);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(rec->instruction, ins);
    ck_assert_str_eq(rec->input, inp);
    ck_assert_str_eq(rec->output, out);
    ck_assert_uint_eq(rec->instruction_len, strlen(ins));
    ck_assert_uint_eq(rec->input_len, strlen(inp));
    ck_assert_uint_eq(rec->output_len, strlen(out));
    ck_assert_str_eq(rec->id, id);
    ck_assert_int_eq(rec_reader_map(r)->shape, shape);
    uint8_t h[32];
    rec_hash_content(ins, strlen(ins), inp, strlen(inp), out, strlen(out), h);
    ck_assert_mem_eq(rec->hash, h, 32);
    ck_assert_int_eq(rec_reader_next(r, &rec, &e), DL_OK);
    ck_assert_ptr_null(rec);
    rec_reader_free(r);
    fclose(f);
}

START_TEST(test_shapes)
{
    expect_one("{\"instruction\":\"I\",\"input\":\"N\",\"output\":\"O\"}", NULL, REC_SHAPE_ALPACA,
               "I", "N", "O", "1");
    expect_one("{\"output\":\"O\",\"instruction\":\"I\",\"id\":\"x-1\"}\n", NULL,
               REC_SHAPE_ALPACA, "I", "", "O", "x-1");
    expect_one("{\"prompt\":\"P\\n\",\"completion\":\" C<|endoftext|>\"}\n", NULL,
               REC_SHAPE_PROMPT_COMPLETION, "P\n", "", " C<|endoftext|>", "1");
    expect_one("{\"question\":\"Q \\u00e9\",\"answer\":\"A\",\"id\":-42}\n", NULL,
               REC_SHAPE_QUESTION_ANSWER, "Q \xc3\xa9", "", "A", "-42");
    /* messages: system and earlier turns folded into input, in order. */
    expect_one("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
               "{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":"
               "\"Hello\"},{\"role\":\"user\",\"content\":\"2+2?\"},{\"role\":\"assistant\","
               "\"content\":\"4\"}]}",
               NULL, REC_SHAPE_MESSAGES, "2+2?", "System: Be brief.\nUser: Hi\nAssistant: Hello",
               "4", "1");
    expect_one("{\"messages\":[{\"role\":\"user\",\"content\":\"U\"},{\"role\":\"assistant\","
               "\"content\":\"A\"}],\"id\":7}",
               NULL, REC_SHAPE_MESSAGES, "U", "", "A", "7");
    /* messages wins over alpaca keys in detection. */
    expect_one("{\"instruction\":\"no\",\"output\":\"no\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"U\"},{\"role\":\"assistant\",\"content\":\"A\"}]}",
               NULL, REC_SHAPE_MESSAGES, "U", "", "A", "1");
    rec_map m;
    ck_assert_int_eq(rec_map_parse("instruction=text,output=code,id=task_id", &m, NULL), DL_OK);
    expect_one("{\"text\":\"T\",\"code\":\"C\",\"task_id\":511,\"id\":\"ignored\"}", &m,
               REC_SHAPE_CUSTOM, "T", "", "C", "511");
    ck_assert_int_eq(rec_map_parse("instruction=q,input=ctx,output=a", &m, NULL), DL_OK);
    expect_one("{\"q\":\"Q\",\"ctx\":\"X\",\"a\":\"A\"}", &m, REC_SHAPE_CUSTOM, "Q", "X", "A",
               "1");
    ck_assert_int_eq(rec_map_parse("messages=conv", &m, NULL), DL_OK);
    expect_one("{\"conv\":[{\"role\":\"user\",\"content\":\"U\"},{\"role\":\"assistant\","
               "\"content\":\"A\"}]}",
               &m, REC_SHAPE_MESSAGES, "U", "", "A", "1");
}
END_TEST

/* ---- ids, lines, offsets, raw bytes -------------------------------------------- */

START_TEST(test_jsonl_positions_and_raw)
{
    /* BOM, CRLF, blank lines, leading blanks, no final newline. */
    const char text[] = "\xef\xbb\xbf{\"instruction\":\"a\",\"output\":\"b\"}\r\n"
                        "\r\n"
                        "  \t\n"
                        "   {\"instruction\":\"c\",\"output\":\"d\",\"id\":99}  \r\n"
                        "\n"
                        "{\"instruction\":\"e\",\"output\":\"f\"}";
    const char *raws[3] = {"{\"instruction\":\"a\",\"output\":\"b\"}",
                           "{\"instruction\":\"c\",\"output\":\"d\",\"id\":99}",
                           "{\"instruction\":\"e\",\"output\":\"f\"}"};
    const int64_t lines[3] = {1, 4, 6};
    const char *ids[3] = {"1", "99", "6"};
    FILE *f = mem_stream(text, sizeof text - 1);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, "t", NULL, &r, NULL), DL_OK);
    const rec_record *rec;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rec_reader_next(r, &rec, NULL), DL_OK);
        ck_assert_ptr_nonnull(rec);
        const char *at = memmem(text, sizeof text - 1, raws[i], strlen(raws[i]));
        ck_assert_int_eq(rec->offset, at - text);
        ck_assert_int_eq(rec->line, lines[i]);
        ck_assert_str_eq(rec->id, ids[i]);
        ck_assert_uint_eq(rec->raw_len, strlen(raws[i]));
        ck_assert_str_eq(rec->raw, raws[i]);
    }
    ck_assert_int_eq(rec_reader_form(r), REC_FORM_JSONL);
    ck_assert_int_eq(rec_reader_detected_line(r), 1);
    ck_assert_int_eq(rec_reader_next(r, &rec, NULL), DL_OK);
    ck_assert_ptr_null(rec);
    ck_assert_int_eq(rec_reader_next(r, &rec, NULL), DL_OK); /* the end stays the end */
    ck_assert_ptr_null(rec);
    ck_assert_int_eq(rec_reader_n_records(r), 3);
    rec_reader_free(r);
    fclose(f);
}
END_TEST

START_TEST(test_array_positions_and_raw)
{
    const char text[] = "  [\n"
                        "  {\"instruction\": \"a ] } [ {\", \"output\": \"b \\\" ]\"},\n"
                        "  {\n    \"instruction\": \"c\",\n    \"output\": \"d\",\n    \"id\": \"k\"\n  }"
                        " ,{\"instruction\":\"e\",\"output\":\"f\"}\n"
                        "]\n\n";
    const char *raws[3] = {"{\"instruction\": \"a ] } [ {\", \"output\": \"b \\\" ]\"}",
                           "{\n    \"instruction\": \"c\",\n    \"output\": \"d\",\n    \"id\": "
                           "\"k\"\n  }",
                           "{\"instruction\":\"e\",\"output\":\"f\"}"};
    const int64_t lines[3] = {2, 3, 7};
    const char *ids[3] = {"1", "k", "3"};
    FILE *f = mem_stream(text, sizeof text - 1);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, "t", NULL, &r, NULL), DL_OK);
    const rec_record *rec;
    for (int i = 0; i < 3; i++) {
        dl_error e;
        dl_error_clear(&e);
        ck_assert_msg(rec_reader_next(r, &rec, &e) == DL_OK, "%s", e.message);
        ck_assert_ptr_nonnull(rec);
        const char *at = memmem(text, sizeof text - 1, raws[i], strlen(raws[i]));
        ck_assert_int_eq(rec->offset, at - text);
        ck_assert_int_eq(rec->line, lines[i]);
        ck_assert_str_eq(rec->id, ids[i]);
        ck_assert_str_eq(rec->raw, raws[i]);
    }
    ck_assert_str_eq(rec->instruction, "e");
    ck_assert_int_eq(rec_reader_form(r), REC_FORM_ARRAY);
    ck_assert_int_eq(rec_reader_next(r, &rec, NULL), DL_OK);
    ck_assert_ptr_null(rec);
    rec_reader_free(r);
    fclose(f);
}
END_TEST

/* Array element ids count skipped elements, so ids do not shift. */
START_TEST(test_ids_stable_under_skipping)
{
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    o.skip_invalid = 1;
    char ids[256];
    int64_t n;
    dl_error e;
    ck_assert_int_eq(read_str("[{\"instruction\":\"a\",\"output\":\"b\"}, 5, "
                              "{\"instruction\":\"c\",\"output\":\"d\"}]",
                              &o, ids, sizeof ids, &n, &e), DL_OK);
    ck_assert_str_eq(ids, "1,3");
    ck_assert_int_eq(read_str("{\"instruction\":\"a\",\"output\":\"b\"}\n{oops\n\n"
                              "{\"instruction\":\"c\",\"output\":\"d\"}\n",
                              &o, ids, sizeof ids, &n, &e), DL_OK);
    ck_assert_str_eq(ids, "1,4");
}
END_TEST

START_TEST(test_duplicate_ids)
{
    const char *text = "{\"id\":\"a\",\"instruction\":\"1\",\"output\":\"1\"}\n"
                       "{\"id\":2,\"instruction\":\"2\",\"output\":\"2\"}\n"
                       "{\"instruction\":\"3\",\"output\":\"3\"}\n" /* auto id "3" */
                       "{\"id\":\"2\",\"instruction\":\"4\",\"output\":\"4\"}\n"
                       "{\"id\":\"a\",\"instruction\":\"5\",\"output\":\"5\"}\n";
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    char ids[256];
    int64_t n;
    dl_error e;
    ck_assert_int_eq(read_str(text, &o, ids, sizeof ids, &n, &e), DL_ERR_INPUT);
    ck_assert_int_eq(e.line, 4);
    ck_assert_str_eq(e.field, "id");
    ck_assert_str_eq(e.message, "duplicate id '2' (first seen at line 2)");
    o.allow_duplicate_ids = 1;
    ck_assert_int_eq(read_str(text, &o, ids, sizeof ids, &n, &e), DL_OK);
    ck_assert_str_eq(ids, "a,2,3,2,a");
    o.allow_duplicate_ids = 0;
    o.skip_invalid = 1;
    problems p = {0};
    o.on_problem = collect_problem;
    o.problem_ctx = &p;
    ck_assert_int_eq(read_str(text, &o, ids, sizeof ids, &n, &e), DL_OK);
    ck_assert_str_eq(ids, "a,2,3");
    ck_assert_int_eq(p.n, 2);
    ck_assert_int_eq(p.first[1].line, 5);
    ck_assert_str_eq(p.first[1].message, "duplicate id 'a' (first seen at line 1)");
    /* Many ids: the table grows and still finds every repeat. */
    size_t cap = 5000 * 64;
    char *big = malloc(cap);
    size_t used = 0;
    for (int i = 0; i < 5000; i++)
        used += (size_t)snprintf(big + used, cap - used,
                                 "{\"id\":\"r%d\",\"instruction\":\"i\",\"output\":\"o\"}\n",
                                 i % 4000);
    p.n = 0;
    ck_assert_int_eq(read_all(big, used, &o, NULL, 0, &n, &e), DL_OK);
    ck_assert_int_eq(n, 4000);
    ck_assert_int_eq(p.n, 1000);
    free(big);
}
END_TEST

/* ---- malformed input ---------------------------------------------------------------- */

typedef struct bad_case {
    const char *text;
    size_t len; /* 0: strlen */
    dl_status code;
    int64_t line, column; /* column -1: do not check */
    const char *field;
    const char *msg;
} bad_case;

#define A "{\"instruction\":\"i\",\"output\":\"o\"}"

static const bad_case bad_cases[] = {
    {"", 0, DL_ERR_INPUT, 0, 0, "", "empty file: no records"},
    {" \n\r\n\t", 0, DL_ERR_INPUT, 0, 0, "", "only whitespace"},
    {"[]", 0, DL_ERR_INPUT, 0, 0, "", "the JSON array is empty"},
    {A "\n{\"instruction\":\"i\" \"output\":\"o\"}\n", 0, DL_ERR_INPUT, 2, -1, "", "invalid JSON"},
    {A "\n{\"instruction\":\"\xc0\xaf\",\"output\":\"o\"}\n", 0, DL_ERR_INPUT, 2, 17, "",
     "invalid UTF-8 (byte 0xC0)"},
    {A "\n{\"instruction\":\"\xed\xa0\x80\",\"output\":\"o\"}\n", 0, DL_ERR_INPUT, 2, 17, "",
     "invalid UTF-8 (byte 0xED)"},
    {"{\"instruction\":\"\xf4\x90\x80\x80\",\"output\":\"o\"}\n", 0, DL_ERR_INPUT, 1, 17, "",
     "invalid UTF-8 (byte 0xF4)"},
    {"{\"instruction\":\"i\",\"output\":\"o\xff\"}", 0, DL_ERR_INPUT, 1, 31, "",
     "invalid UTF-8 (byte 0xFF)"},
    {"{\"instruction\":\"\\udc00\",\"output\":\"o\"}\n", 0, DL_ERR_INPUT, 1, -1, "",
     "invalid Unicode"},
    {"{\"instruction\":\"a\0b\",\"output\":\"o\"}\n", 36, DL_ERR_INPUT, 1, 18, "", "NUL byte"},
    {"{\"instruction\":\"a\\u0000b\",\"output\":\"o\"}\n", 0, DL_ERR_INPUT, 1, -1, "",
     "JSON_ALLOW_NUL"},
    {A "\n" A "\n{\"instruction\":\"i\"}\n", 0, DL_ERR_INPUT, 3, 1, "output", "missing"},
    {A "\n{\"instruction\":true,\"output\":\"o\"}", 0, DL_ERR_INPUT, 2, 1, "instruction",
     "expected a string, got true"},
    {"{\"instruction\":\"i\",\"input\":[],\"output\":\"o\"}", 0, DL_ERR_INPUT, 1, 1, "input",
     "expected a string, got an array"},
    {"{\"question\":\"q\",\"answer\":{}}", 0, DL_ERR_INPUT, 1, 1, "answer",
     "expected a string, got an object"},
    {A " x\n", 0, DL_ERR_INPUT, 1, -1, "", "end of file expected"},
    {A A "\n", 0, DL_ERR_INPUT, 1, -1, "", "end of file expected"},
    {"  " A "\n  [1]\n", 0, DL_ERR_INPUT, 2, 3, "", "a record must be a JSON object, got an array"},
    {"\"just a string\"\n", 0, DL_ERR_INPUT, 1, 1, "", "got a string"},
    {"[" A "] x", 0, DL_ERR_INPUT, 1, 36, "", "trailing data after the JSON array"},
    {"[" A "]]", 0, DL_ERR_INPUT, 1, 35, "", "trailing data after the JSON array"},
    {"[" A " " A "]", 0, DL_ERR_INPUT, 1, 35, "", "expected ',' or ']'"},
    {"[" A ",]", 0, DL_ERR_INPUT, 1, 35, "", "trailing ','"},
    {"[,]", 0, DL_ERR_INPUT, 1, 2, "", "expected a record in the JSON array, got ','"},
    {"[" A ",\n{\"instruction\":\"i", 0, DL_ERR_INPUT, 2, 18, "", "starts at line 2"},
    {"[" A, 0, DL_ERR_INPUT, 1, 34, "", "the JSON array is not closed"},
    {"[" A ", tru]", 0, DL_ERR_INPUT, 1, -1, "", "invalid JSON"},
    {"[1, 2]", 0, DL_ERR_INPUT, 1, 2, "", "got an integer"},
    {"[" A ", {\"instruction\":\"i\",\"output\":7}]", 0, DL_ERR_INPUT, 1, 36, "output",
     "expected a string, got an integer"},
    {"{\"a\":1,\"b\":2}\n", 0, DL_ERR_INPUT, 1, 1, "", "cannot detect the record shape from its keys ('a', 'b')"},
    {"{}\n", 0, DL_ERR_INPUT, 1, 1, "", "keys (none)"},
    {"{\"instruction\":\"i\",\"output\":\"o\",\"output\":\"p\"}", 0, DL_ERR_INPUT, 1, -1, "",
     "duplicate object key"},
    {"{\"id\":null,\"instruction\":\"i\",\"output\":\"o\"}", 0, DL_ERR_INPUT, 1, 1, "id",
     "expected a string or an integer id, got null"},
    {"{\"id\":\"\",\"instruction\":\"i\",\"output\":\"o\"}", 0, DL_ERR_INPUT, 1, 1, "id", "empty id"},
    {"{\"id\":123456789012345678901234567890,\"instruction\":\"i\",\"output\":\"o\"}", 0,
     DL_ERR_INPUT, 1, -1, "", "too big"},
    {A "\n{\"prompt\":\"p\",\"completion\":\"c\"}\n", 0, DL_ERR_INPUT, 2, 1, "instruction",
     "missing (it is the instruction)"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n{\"messages\":{}}", 0, DL_ERR_INPUT, 2, 1, "messages", "expected an array of messages, got an object"},
    {"{\"messages\":[]}", 0, DL_ERR_INPUT, 1, 1, "messages", "got 0 messages"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"u\"},\"x\"]}", 0, DL_ERR_INPUT, 1, 1,
     "messages[1]", "expected an object {role, content}, got a string"},
    {"{\"messages\":[{\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}", 0,
     DL_ERR_INPUT, 1, 1, "messages[0].role", "missing"},
    {"{\"messages\":[{\"role\":\"human\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
     0, DL_ERR_INPUT, 1, 1, "messages[0].role", "unknown role 'human'"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":null},{\"role\":\"assistant\",\"content\":\"a\"}]}",
     0, DL_ERR_INPUT, 1, 1, "messages[0].content", "expected a string, got null"},
    {"{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"assistant\",\"content\":\"a\"}]}",
     0, DL_ERR_INPUT, 1, 1, "messages", "the message before the last must be the user's (got role 'system')"},
    {"{\"messages\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"user\",\"content\":\"a\"}]}",
     0, DL_ERR_INPUT, 1, 1, "messages", "the last message must be the assistant's (got role 'user')"},
};

START_TEST(test_malformed)
{
    const bad_case *c = &bad_cases[_i];
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    int64_t n;
    dl_error e;
    size_t len = c->len ? c->len : strlen(c->text);
    dl_status st = read_all(c->text, len, &o, NULL, 0, &n, &e);
    ck_assert_msg(st == c->code, "case %d: status %d (%s)", _i, st, e.message);
    ck_assert_int_eq(e.code, c->code);
    ck_assert_str_eq(e.file, "mem");
    ck_assert_msg(e.line == c->line, "case %d: line %lld", _i, (long long)e.line);
    if (c->column >= 0)
        ck_assert_msg(e.column == c->column, "case %d: column %lld", _i, (long long)e.column);
    ck_assert_msg(!strcmp(e.field, c->field), "case %d: field '%s'", _i, e.field);
    ck_assert_msg(strstr(e.message, c->msg), "case %d: message '%s'", _i, e.message);
    if (c->line > 0)
        ck_assert_int_ge(e.offset, 0);
    /* A finished reader keeps failing with the same code. */
    FILE *f = mem_stream(c->text, len);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, "mem", &o, &r, NULL), DL_OK);
    const rec_record *rec;
    while (rec_reader_next(r, &rec, NULL) == DL_OK && rec)
        ;
    ck_assert_int_eq(rec_reader_next(r, &rec, NULL), c->code);
    ck_assert_ptr_null(rec);
    rec_reader_free(r);
    fclose(f);
}
END_TEST

START_TEST(test_skip_invalid_reports_each)
{
    const char *text = A "\n"
                       "{broken\n"
                       "{\"instruction\":1,\"output\":\"o\"}\n"
                       "\n"
                       "{\"instruction\":\"\xc3\x28\",\"output\":\"o\"}\n"
                       "{\"instruction\":\"ok\",\"output\":\"fine\"}\n"
                       "[]\n";
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    o.skip_invalid = 1;
    problems p = {0};
    o.on_problem = collect_problem;
    o.problem_ctx = &p;
    char ids[64];
    int64_t n;
    dl_error e;
    ck_assert_int_eq(read_str(text, &o, ids, sizeof ids, &n, &e), DL_OK);
    ck_assert_str_eq(ids, "1,6");
    ck_assert_int_eq(p.n, 4);
    const int64_t lines[4] = {2, 3, 5, 7};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(p.first[i].line, lines[i]);
        ck_assert_int_eq(p.first[i].code, DL_ERR_INPUT);
        ck_assert_str_eq(p.first[i].file, "mem");
    }
    ck_assert_str_eq(p.first[1].field, "instruction");
    /* Nothing valid at all is still an error, naming the count. */
    p.n = 0;
    ck_assert_int_eq(read_str("{x\n[]\n", &o, ids, sizeof ids, &n, &e), DL_ERR_INPUT);
    ck_assert_str_eq(e.message, "no valid records (2 skipped)");
    /* Structural errors are not skippable. */
    ck_assert_int_eq(read_str("[" A "] x", &o, ids, sizeof ids, &n, &e), DL_ERR_INPUT);
    ck_assert_int_eq(n, 1);
    /* Without a callback, skipping still works. */
    o.on_problem = NULL;
    ck_assert_int_eq(read_str(text, &o, ids, sizeof ids, &n, &e), DL_OK);
    ck_assert_int_eq(n, 2);
}
END_TEST

/* Detection happens on the first GOOD record: a bad first record with
 * alpaca keys does not fix the shape in skip mode. */
START_TEST(test_detection_first_valid)
{
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    o.skip_invalid = 1;
    FILE *f = mem_stream("{\"x\":1}\n{\"instruction\":5,\"output\":\"o\"}\n"
                         "{\"question\":\"q\",\"answer\":\"a\"}\n", 69);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, NULL, &o, &r, NULL), DL_OK);
    ck_assert_int_eq(rec_reader_map(r)->shape, REC_SHAPE_AUTO);
    const rec_record *rec;
    ck_assert_int_eq(rec_reader_next(r, &rec, NULL), DL_OK);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(rec->instruction, "q");
    ck_assert_int_eq(rec_reader_map(r)->shape, REC_SHAPE_QUESTION_ANSWER);
    ck_assert_int_eq(rec_reader_detected_line(r), 3);
    ck_assert_int_eq(rec_reader_n_skipped(r), 2);
    rec_reader_free(r);
    fclose(f);
}
END_TEST

/* ---- streaming, limits, odd streams ------------------------------------------------- */

/* A generated stream: `n` records as JSONL or as an array, produced on the
 * fly so the pool never exists in memory; with chunk 1 every read returns
 * one byte (window edges everywhere). */
typedef struct gen {
    int64_t n, next;
    int array;
    size_t chunk;
    char pending[256];
    size_t p_len, p_pos;
    int done;
    int infinite; /* endless 'a' bytes, no newline */
} gen;

static ssize_t gen_read(void *cookie, char *buf, size_t size)
{
    gen *g = cookie;
    if (size > g->chunk)
        size = g->chunk;
    if (g->infinite) { /* the pending prefix, then 'a' forever */
        size_t k = g->p_len - g->p_pos < size ? g->p_len - g->p_pos : size;
        memcpy(buf, g->pending + g->p_pos, k);
        g->p_pos += k;
        memset(buf + k, 'a', size - k);
        return (ssize_t)size;
    }
    size_t out = 0;
    while (out < size) {
        if (g->p_pos == g->p_len) {
            if (g->done)
                break;
            g->p_pos = 0;
            if (g->next < g->n) {
                g->p_len = (size_t)snprintf(
                    g->pending, sizeof g->pending,
                    "%s{\"instruction\":\"task %lld\",\"input\":\"\",\"output\":\"r%lld\",\"id\":%lld}%s",
                    g->array ? (g->next ? "," : "[") : "", (long long)g->next,
                    (long long)(g->next * 7), (long long)g->next, g->array ? "\n" : "\r\n");
                g->next++;
            } else {
                g->p_len = (size_t)snprintf(g->pending, sizeof g->pending, "%s",
                                            g->array ? (g->n ? "]\n" : "[]") : "");
                g->done = 1;
            }
        }
        size_t k = g->p_len - g->p_pos;
        if (k > size - out)
            k = size - out;
        memcpy(buf + out, g->pending + g->p_pos, k);
        g->p_pos += k;
        out += k;
    }
    return (ssize_t)out;
}

static FILE *gen_open(gen *g)
{
    cookie_io_functions_t io = {gen_read, NULL, NULL, NULL};
    FILE *f = fopencookie(g, "r", io);
    ck_assert_ptr_nonnull(f);
    return f;
}

static void check_generated(int array, int64_t n, size_t chunk)
{
    gen g = {.n = n, .array = array, .chunk = chunk};
    FILE *f = gen_open(&g);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, "gen", NULL, &r, NULL), DL_OK);
    const rec_record *rec;
    int64_t count = 0;
    dl_error e;
    dl_error_clear(&e);
    /* Plain ifs in the loop: every ck_assert writes to Check's channel. */
    while (rec_reader_next(r, &rec, &e) == DL_OK && rec) {
        char want_id[32], want_out[32];
        snprintf(want_id, sizeof want_id, "%lld", (long long)count);
        snprintf(want_out, sizeof want_out, "r%lld", (long long)(count * 7));
        if (strcmp(rec->id, want_id) || strcmp(rec->output, want_out) || rec->line != count + 1)
            ck_abort_msg("record %lld: id %s, output %s, line %lld", (long long)count, rec->id,
                         rec->output, (long long)rec->line);
        count++;
    }
    ck_assert_msg(e.code == DL_OK, "%s", e.message);
    ck_assert_int_eq(count, n);
    ck_assert_int_eq(rec_reader_form(r), array ? REC_FORM_ARRAY : REC_FORM_JSONL);
    rec_reader_free(r);
    fclose(f);
}

START_TEST(test_streaming_generated)
{
    check_generated(0, 50000, 1 << 16);
    check_generated(1, 50000, 1 << 16);
    check_generated(0, 300, 1);
    check_generated(1, 300, 1);
    check_generated(0, 1000, 4093);
    check_generated(1, 1000, 7);
}
END_TEST

/* An endless line: the reader stops at the limit instead of reading forever. */
START_TEST(test_endless_line_stops_at_limit)
{
    gen g = {.infinite = 1, .chunk = 1 << 16};
    FILE *f = gen_open(&g);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, "endless", NULL, &r, NULL), DL_OK);
    const rec_record *rec;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(rec_reader_next(r, &rec, &e), DL_ERR_INPUT);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 67108864 bytes"));
    rec_reader_free(r);
    fclose(f);
    /* Inside an array's string too, with a small limit. */
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    o.max_record_bytes = 1000;
    gen g2 = {.infinite = 1, .chunk = 1 << 16, .pending = "[{\"instruction\":\"", .p_len = 17};
    f = gen_open(&g2);
    ck_assert_int_eq(rec_reader_open_stream(f, "endless", &o, &r, NULL), DL_OK);
    dl_error_clear(&e);
    ck_assert_int_eq(rec_reader_next(r, &rec, &e), DL_ERR_INPUT);
    ck_assert_msg(strstr(e.message, "longer than 1000 bytes"), "%s", e.message);
    rec_reader_free(r);
    fclose(f);
}
END_TEST

/* A long record is skipped whole, and the next one reads fine. */
START_TEST(test_long_record_skipped)
{
    size_t big = 3u << 20;
    for (int array = 0; array < 2; array++) {
        char *text = malloc(big + 256);
        size_t n = 0;
        n += (size_t)sprintf(text + n, "%s" A "%s", array ? "[" : "", array ? "," : "\n");
        n += (size_t)sprintf(text + n, "{\"instruction\":\"");
        memset(text + n, 'x', big);
        n += big;
        n += (size_t)sprintf(text + n, "\",\"output\":\"o\"}%s{\"instruction\":\"last\",\"output\":\"o\"}%s",
                             array ? "," : "\n", array ? "]" : "\n");
        rec_reader_opts o;
        rec_reader_opts_init(&o);
        o.max_record_bytes = 1 << 20;
        o.skip_invalid = 1;
        problems p = {0};
        o.on_problem = collect_problem;
        o.problem_ctx = &p;
        char ids[64];
        int64_t cnt;
        dl_error e;
        ck_assert_int_eq(read_all(text, n, &o, ids, sizeof ids, &cnt, &e), DL_OK);
        ck_assert_str_eq(ids, array ? "1,3" : "1,3");
        ck_assert_int_eq(p.n, 1);
        ck_assert_ptr_nonnull(strstr(p.first[0].message, "longer than 1048576 bytes"));
        ck_assert_int_eq(p.first[0].line, array ? 1 : 2);
        /* Exactly at the limit is fine. */
        o.max_record_bytes = strlen(A);
        o.skip_invalid = 0;
        ck_assert_int_eq(read_str(array ? "[" A "]" : A "\n", &o, ids, sizeof ids, &cnt, &e),
                         DL_OK);
        o.max_record_bytes = strlen(A) - 1;
        ck_assert_int_eq(read_str(array ? "[" A "]" : A "\n", &o, ids, sizeof ids, &cnt, &e),
                         DL_ERR_INPUT);
        free(text);
    }
}
END_TEST

/* A stream whose reads fail is DL_ERR_IO, not a parse error. */
static ssize_t failing_read(void *cookie, char *buf, size_t size)
{
    int *calls = cookie;
    if ((*calls)++ == 0 && size > 40) {
        memcpy(buf, A "\n", 33);
        return 33;
    }
    errno = EIO;
    return -1;
}

START_TEST(test_read_error_is_io)
{
    int calls = 0;
    cookie_io_functions_t io = {failing_read, NULL, NULL, NULL};
    FILE *f = fopencookie(&calls, "r", io);
    rec_reader *r;
    ck_assert_int_eq(rec_reader_open_stream(f, "bad-disk", NULL, &r, NULL), DL_OK);
    const rec_record *rec;
    dl_error e;
    dl_error_clear(&e);
    dl_status st;
    while ((st = rec_reader_next(r, &rec, &e)) == DL_OK && rec)
        ;
    ck_assert_int_eq(st, DL_ERR_IO);
    ck_assert_str_eq(e.file, "bad-disk");
    rec_reader_free(r);
    fclose(f);
}
END_TEST

START_TEST(test_open_errors)
{
    rec_reader *r = (rec_reader *)1;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_int_eq(rec_reader_open("/nonexistent/dir/pool.jsonl", NULL, &r, &e),
                     DL_ERR_NOT_FOUND);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(e.file, "/nonexistent/dir/pool.jsonl");
    dl_error_clear(&e);
    ck_assert_int_eq(rec_reader_open("/tmp", NULL, &r, &e), DL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(e.message, "directory"));
    rec_reader_free(NULL);
    rec_pool_free(NULL);
}
END_TEST

/* ---- failing allocation ------------------------------------------------------------- */

static int64_t alloc_budget;

static void *failing_malloc(size_t n)
{
    if (alloc_budget-- <= 0)
        return NULL;
    return malloc(n);
}

/* jansson's allocations fail after k successes, for every k until a full
 * read gets through: every outcome is an error status, never a crash or a
 * leak (ASan checks the leaks under --enable-sanitizers).  jansson reports
 * some failed allocations inside its lexer as syntax errors, so DL_ERR_INPUT
 * is accepted too; the loop ends when the real error of record 2 appears. */
START_TEST(test_jansson_allocation_failure)
{
    const char *text = "{\"instruction\":\"a\",\"input\":\"b\",\"output\":\"c\",\"id\":\"z\"}\n"
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}\n";
    rec_reader_opts o;
    rec_reader_opts_init(&o);
    int nomem_seen = 0, through = 0;
    for (int64_t k = 0; k < 400 && !through; k++) {
        json_set_alloc_funcs(failing_malloc, free);
        alloc_budget = k;
        int64_t n;
        dl_error e;
        dl_status st = read_str(text, &o, NULL, 0, &n, &e);
        json_set_alloc_funcs(malloc, free);
        ck_assert_msg(st == DL_ERR_NOMEM || st == DL_ERR_INPUT, "k=%lld: %d", (long long)k, st);
        nomem_seen |= st == DL_ERR_NOMEM;
        through = st == DL_ERR_INPUT && e.line == 2 && !strcmp(e.field, "instruction");
    }
    ck_assert(nomem_seen);
    ck_assert(through);
}
END_TEST

/* ---- the bundled sample and the pool ---------------------------------------------------- */

START_TEST(test_sample_pool)
{
    rec_pool *pool = NULL;
    dl_error e;
    dl_error_clear(&e);
    ck_assert_msg(rec_pool_load(dl_test_src("data/sample.jsonl"), NULL, &pool, &e) == DL_OK,
                  "%s", e.message);
    ck_assert_int_ge(pool->n, 48);
    ck_assert_int_le(pool->n, 56);
    ck_assert_int_eq(pool->map.shape, REC_SHAPE_ALPACA);
    ck_assert_int_eq(pool->form, REC_FORM_JSONL);
    for (int64_t i = 0; i < pool->n; i++) {
        const rec_record *r = &pool->records[i];
        ck_assert_int_eq(r->index, i);
        ck_assert_int_eq(r->line, i + 1);
        /* raw re-parsed by jansson gives back the same fields and id */
        json_t *j = json_loadb(r->raw, r->raw_len, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "id")), r->id);
        ck_assert_str_eq(json_string_value(json_object_get(j, "instruction")), r->instruction);
        ck_assert_str_eq(json_string_value(json_object_get(j, "output")), r->output);
        json_t *in = json_object_get(j, "input");
        ck_assert_str_eq(in ? json_string_value(in) : "", r->input);
        json_decref(j);
        uint8_t h[32];
        rec_hash_content(r->instruction, r->instruction_len, r->input, r->input_len, r->output,
                         r->output_len, h);
        ck_assert_mem_eq(h, r->hash, 32);
        for (int64_t k = 0; k < i; k++) {
            ck_assert_str_ne(pool->records[k].id, r->id);
            ck_assert(memcmp(pool->records[k].hash, r->hash, 32) != 0);
        }
        /* short enough for a 512-token context: well under 300 words */
        size_t words = 0;
        const char *parts[3] = {r->instruction, r->input, r->output};
        for (int p = 0; p < 3; p++)
            for (const char *s = parts[p]; *s; s++)
                words += (s == parts[p] || s[-1] == ' ' || s[-1] == '\n') && *s != ' ';
        ck_assert_uint_lt(words, 300);
    }
    rec_pool_free(pool);
}
END_TEST

static Suite *rec_suite(void)
{
    Suite *s = suite_create("rec");
    TCase *tc = tcase_create("hash");
    tcase_add_test(tc, test_sha256_fips_vectors);
    tcase_add_test(tc, test_sha256_against_sha256sum);
    tcase_add_test(tc, test_content_hash_encoding);
    suite_add_tcase(s, tc);
    tc = tcase_create("utf8");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_utf8_table);
    tcase_add_test(tc, test_utf8_against_oracle);
    suite_add_tcase(s, tc);
    tc = tcase_create("map");
    tcase_add_test(tc, test_map_parse_presets_and_custom);
    tcase_add_test(tc, test_map_parse_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("reader");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shapes);
    tcase_add_test(tc, test_jsonl_positions_and_raw);
    tcase_add_test(tc, test_array_positions_and_raw);
    tcase_add_test(tc, test_ids_stable_under_skipping);
    tcase_add_test(tc, test_duplicate_ids);
    tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    tcase_add_test(tc, test_skip_invalid_reports_each);
    tcase_add_test(tc, test_detection_first_valid);
    tcase_add_test(tc, test_streaming_generated);
    tcase_add_test(tc, test_endless_line_stops_at_limit);
    tcase_add_test(tc, test_long_record_skipped);
    tcase_add_test(tc, test_read_error_is_io);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_jansson_allocation_failure);
    tcase_add_test(tc, test_sample_pool);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return dl_test_run(rec_suite());
}
