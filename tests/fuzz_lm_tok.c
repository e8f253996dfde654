/* fuzz_lm_tok.c: libFuzzer target for the tokenizers.
 *
 * Input starting with "GGUF" is a model file: lm_tok_from_gguf must build a
 * tokenizer or return a coded error, and a built one must encode and decode
 * the input bytes.  Any other input is text, encoded with small built-in
 * vocabularies, one SPM and one BPE per pre-tokenizer family, checking:
 *   SPM: decode(encode(x)) == x for any bytes (byte fallback);
 *   BPE: decode(encode(x)) == x for valid UTF-8 (pre-tokenizers lose and
 *        duplicate nothing; byte-level BPE covers every byte).
 * A violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_utf8.h"
#include "lm_gguf.h"
#include "lm_tok.h"
#include "lm_unicode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_lm_tok: %s\n", what);
        abort();
    }
}

/* Encodes then decodes; checks the round trip when want_trip. */
static void trip(const lm_tok *tok, const char *s, size_t n, int want_trip)
{
    lm_tok_ids ids = {0};
    dl_error err;
    dl_error_clear(&err);
    dl_status st = lm_tok_encode(tok, s, n, 0, &ids, &err);
    if (st != DL_OK) {
        require(err.code != DL_OK && err.message[0], "encode failed without a message");
        require(!want_trip, "encode failed on a complete vocabulary");
        return;
    }
    for (int64_t i = 0; i < ids.n; i++)
        require(ids.ids[i] >= 0 && ids.ids[i] < lm_tok_n_vocab(tok), "id out of range");
    char *out = NULL;
    size_t len = 0;
    require(lm_tok_decode(tok, ids.ids, ids.n, LM_TOK_DECODE_STRIP_SPACE, &out, &len, &err) ==
                DL_OK,
            "decode failed");
    if (want_trip)
        require(len == n && !memcmp(out, s, n), "decode(encode(x)) != x");
    free(out);
    lm_tok_ids_free(&ids);
}

static void fuzz_gguf(const uint8_t *data, size_t size)
{
    dl_error err;
    dl_error_clear(&err);
    lm_gguf *g = lm_gguf_open_buffer(data, size, &err);
    if (!g)
        return;
    lm_tok *tok = lm_tok_from_gguf(g, &err);
    lm_gguf_free(g); /* the tokenizer must not borrow from the file */
    if (!tok) {
        require(err.code != DL_OK && err.message[0], "loader failed without a message");
        return;
    }
    trip(tok, (const char *)data, size, 0);
    lm_tok_free(tok);
}

#define N_BYTE_TOKENS 256

static void fuzz_text(const char *s, size_t n)
{
    static const char *const spm_extra[] = {"\xe2\x96\x81", "\xe2\x96\x81t", "he",
                                            "\xe2\x96\x81the", "e", "t", "h", "in", "a"};
    static const char *const merges[] = {"\xc4\xa0 t", "h e", "i n", "\xc4\xa0t he", "e r",
                                         "1 2", "12 3"};
    static const char *const merged[] = {"\xc4\xa0t", "he", "in", "\xc4\xa0the", "er", "12",
                                         "123"};
    static const char *const pres[] = {"default", "gpt-2", "llama-bpe", "qwen2", "smollm",
                                       "falcon", "deepseek-coder", "deepseek-llm"};
    char text[N_BYTE_TOKENS + 16][8];
    lm_tok_bytes toks[N_BYTE_TOKENS + 16], mg[8];
    float scores[N_BYTE_TOKENS + 16];
    int32_t types[N_BYTE_TOKENS + 16];
    lm_tok_vocab v;
    dl_error err;

    /* SPM: <unk> <s> </s>, <0x00>..<0xFF>, a few pieces. */
    int k = 0;
    static const char *const head[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++, k++) {
        toks[k] = (lm_tok_bytes){head[i], strlen(head[i])};
        types[k] = i ? LM_TOK_TYPE_CONTROL : LM_TOK_TYPE_UNKNOWN;
        scores[k] = 0;
    }
    for (int b = 0; b < N_BYTE_TOKENS; b++, k++) {
        snprintf(text[k], sizeof text[k], "<0x%02X>", b);
        toks[k] = (lm_tok_bytes){text[k], 6};
        types[k] = LM_TOK_TYPE_BYTE;
        scores[k] = 0;
    }
    for (size_t i = 0; i < sizeof spm_extra / sizeof spm_extra[0]; i++, k++) {
        toks[k] = (lm_tok_bytes){spm_extra[i], strlen(spm_extra[i])};
        types[k] = LM_TOK_TYPE_NORMAL;
        scores[k] = -(float)(i % 3);
    }
    lm_tok_vocab_init(&v);
    v.n_tokens = k;
    v.tokens = toks;
    v.scores = scores;
    v.types = types;
    v.unk_id = 0;
    dl_error_clear(&err);
    lm_tok *tok = lm_tok_new(&v, &err);
    require(tok != NULL, "synthetic SPM vocabulary refused");
    trip(tok, s, n, 1);
    lm_tok_free(tok);

    /* BPE: the 256 GPT-2 characters and a few merges, every pre family. */
    k = 0;
    for (int b = 0; b < N_BYTE_TOKENS; b++, k++) {
        size_t len = lm_unicode_encode(lm_unicode_byte_to_cp((unsigned char)b), text[k]);
        toks[k] = (lm_tok_bytes){text[k], len};
    }
    for (size_t i = 0; i < sizeof merged / sizeof merged[0]; i++, k++) {
        toks[k] = (lm_tok_bytes){merged[i], strlen(merged[i])};
        mg[i] = (lm_tok_bytes){merges[i], strlen(merges[i])};
    }
    int valid = dl_utf8_valid(s, n, NULL);
    for (size_t p = 0; p < sizeof pres / sizeof pres[0]; p++) {
        lm_tok_vocab_init(&v);
        v.kind = LM_TOK_KIND_BPE;
        v.pre = pres[p];
        v.n_tokens = k;
        v.tokens = toks;
        v.n_merges = (int64_t)(sizeof merges / sizeof merges[0]);
        v.merges = mg;
        dl_error_clear(&err);
        tok = lm_tok_new(&v, &err);
        require(tok != NULL, "synthetic BPE vocabulary refused");
        trip(tok, s, n, valid);
        lm_tok_free(tok);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && !memcmp(data, "GGUF", 4))
        fuzz_gguf(data, size);
    else
        fuzz_text((const char *)data, size);
    return 0;
}
