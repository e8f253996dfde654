/* lm_tok.h: the tokenizers of GGUF models, compatible with llama.cpp's.
 *
 * Two kinds, chosen by the GGUF key tokenizer.ggml.model:
 *   "llama" (SPM): SentencePiece-style.  One space is prepended to the text
 *       (tokenizer.ggml.add_space_prefix, default true), every ' ' becomes
 *       U+2581, the text is cut into UTF-8 characters, and the adjacent pair
 *       whose concatenation is a vocabulary token of the highest score is
 *       merged, leftmost first on ties, until no pair is a token.  Pieces
 *       left that are not tokens become byte tokens <0xXX> (byte fallback),
 *       or the one-byte token, or the unknown token.
 *   "gpt2" (BPE): byte-level BPE.  A pre-tokenizer (tokenizer.ggml.pre, see
 *       docs/tokenizers.md for the supported names) splits the text into
 *       words with hand-written equivalents of llama.cpp's regexes; every
 *       byte of a word is mapped to a printable code point (GPT-2's table),
 *       and the adjacent pair of lowest merge rank (tokenizer.ggml.merges)
 *       is merged, leftmost first on ties, until no pair has a rank.
 * Both merge loops use a priority queue over a linked list of symbols:
 * O(n log n) in the length of a word, never quadratic.
 *
 * Special tokens: before either algorithm runs, the text is cut at every
 * occurrence of a USER_DEFINED token's text (always, as llama.cpp does) and,
 * with LM_TOK_PARSE_SPECIAL only, of CONTROL and UNKNOWN tokens' texts;
 * longer tokens are matched first.  DELIFT tokenises prompts and responses
 * without special tokens (spec section 2): no flag is the default.  In SPM,
 * the text after a matched token gets the space prefix again.
 *
 * Malformed UTF-8 is not an error.  SPM passes the bytes through the merge
 * loop and each stray byte ends as its <0xXX> token, so every byte of the
 * input is represented.  BPE, like llama.cpp, turns each malformed byte into
 * U+FFFD before pre-tokenising.  NUL bytes are ordinary characters.
 *
 * Ownership: lm_tok_new and lm_tok_from_gguf return an owned tokenizer
 * (lm_tok_free) that copies what it needs: the vocabulary description and
 * the GGUF handle may be freed afterwards.  Pointers it returns are borrowed
 * and live until lm_tok_free.
 * Thread-safety: a tokenizer is immutable once built; any number of threads
 * may encode and decode with it concurrently (each call has its own scratch).
 */
#ifndef LM_TOK_H
#define LM_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "lm_gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lm_tok lm_tok;

typedef enum lm_tok_kind {
    LM_TOK_KIND_SPM = 1, /* tokenizer.ggml.model = "llama" */
    LM_TOK_KIND_BPE = 2  /* tokenizer.ggml.model = "gpt2" */
} lm_tok_kind;

/* tokenizer.ggml.token_type values (stable, on-disk). */
typedef enum lm_tok_type {
    LM_TOK_TYPE_UNDEFINED = 0,
    LM_TOK_TYPE_NORMAL = 1,
    LM_TOK_TYPE_UNKNOWN = 2,
    LM_TOK_TYPE_CONTROL = 3,
    LM_TOK_TYPE_USER_DEFINED = 4,
    LM_TOK_TYPE_UNUSED = 5,
    LM_TOK_TYPE_BYTE = 6
} lm_tok_type;

/* Borrowed bytes (not NUL-terminated). */
typedef struct lm_tok_bytes {
    const char *ptr;
    size_t len;
} lm_tok_bytes;

/* A plain description of a vocabulary, everything borrowed: what a loader
 * fills from a GGUF file (or a test builds by hand) for lm_tok_new. */
typedef struct lm_tok_vocab {
    lm_tok_kind kind;
    const char *pre;            /* BPE pre-tokenizer name; NULL = "default" */
    int64_t n_tokens;           /* 1 .. INT32_MAX */
    const lm_tok_bytes *tokens; /* [n_tokens]; duplicates: the last id wins */
    const float *scores;        /* [n_tokens] or NULL (all 0); SPM merge order */
    const int32_t *types;       /* [n_tokens] lm_tok_type, or NULL (all NORMAL) */
    int64_t n_merges;           /* BPE: rank = index; duplicates: first wins */
    const lm_tok_bytes *merges; /* [n_merges] "left right" (split at the first
                                   space after the first byte) */
    int32_t bos_id, eos_id, unk_id; /* -1 = none */
    int add_space_prefix;       /* SPM only: 1 or 0 */
    int add_bos, add_eos;       /* the model's own defaults (informational) */
} lm_tok_vocab;

/* Fills v with defaults: no tokens, kind SPM, ids -1, add_space_prefix 1,
 * add_bos 0, add_eos 0. */
void lm_tok_vocab_init(lm_tok_vocab *v);

/* ---- building ---------------------------------------------------------- */

/* Builds a tokenizer from v (copied).  NULL on failure with err filled:
 * DL_ERR_INPUT for an inconsistent vocabulary (no tokens, an id out of
 * range, an empty token, a BPE vocabulary without merges, field names the
 * part), DL_ERR_UNSUPPORTED for an unknown kind or pre-tokenizer name,
 * DL_ERR_NOMEM.  Owned: lm_tok_free. */
lm_tok *lm_tok_new(const lm_tok_vocab *v, dl_error *err);

/* Reads the tokenizer.ggml.* keys of g (the GGUF handle is not kept).
 * Required: model, tokens; SPM also reads scores, token_type,
 * add_space_prefix; BPE merges and pre.  Errors as lm_tok_new, plus
 * DL_ERR_INPUT naming the key for a missing or mistyped key and
 * DL_ERR_UNSUPPORTED for tokenizer.ggml.model other than llama/gpt2. */
lm_tok *lm_tok_from_gguf(const lm_gguf *g, dl_error *err);

/* NULL is a no-op. */
void lm_tok_free(lm_tok *tok);

/* ---- encoding ---------------------------------------------------------- */

/* Encoding flags (OR them). */
enum {
    LM_TOK_ADD_BOS = 1u,       /* prepend the BOS token (if the vocab has one) */
    LM_TOK_ADD_EOS = 2u,       /* append the EOS token (if the vocab has one) */
    LM_TOK_PARSE_SPECIAL = 4u  /* match CONTROL/UNKNOWN token texts too */
};

/* A caller-owned, growable list of token ids; zero-initialise it
 * (lm_tok_ids v = {0}) and release with lm_tok_ids_free.  Encoding appends,
 * so one list can collect several encodes (prompt, EOS, response, EOS). */
typedef struct lm_tok_ids {
    int32_t *ids;
    int64_t n;
    int64_t cap;
} lm_tok_ids;

/* Frees v->ids and zeroes v.  NULL is a no-op. */
void lm_tok_ids_free(lm_tok_ids *v);

/* Appends id to v, growing it.  DL_ERR_NOMEM on failure. */
dl_status lm_tok_ids_push(lm_tok_ids *v, int32_t id, dl_error *err);

/* Tokenises len bytes of text (NULL allowed when len is 0) and APPENDS the
 * ids to out.  Empty text gives no ids (only BOS/EOS when asked).  Errors:
 * DL_ERR_USAGE (NULL tok/out), DL_ERR_NOMEM, DL_ERR_UNSUPPORTED for a text
 * over 256 MiB or an SPM vocabulary that cannot represent a byte (no byte,
 * one-byte or unknown token); out keeps what it had on failure (its n is
 * restored).  Cost: O(n log n) time, O(n) scratch (about 40 bytes per input
 * byte at worst), allocated per call and freed before returning. */
dl_status lm_tok_encode(const lm_tok *tok, const char *text, size_t len, unsigned flags,
                        lm_tok_ids *out, dl_error *err);

/* ---- decoding ---------------------------------------------------------- */

/* Flags for pieces and lm_tok_decode. */
enum {
    LM_TOK_DECODE_SPECIAL = 1u,     /* render CONTROL/UNKNOWN tokens' text */
    LM_TOK_DECODE_STRIP_SPACE = 2u  /* SPM with add_space_prefix: drop the
                                       one leading space of the result */
};

/* The bytes token id stands for in generated text, llama.cpp's
 * token_to_piece: SPM NORMAL tokens with U+2581 as ' ', BYTE tokens as their
 * byte, BPE NORMAL tokens mapped back through GPT-2's table (a code point
 * that is no byte's image is kept as UTF-8), USER_DEFINED as stored, and
 * CONTROL/UNKNOWN/UNUSED as "" (CONTROL/UNKNOWN: their text with
 * LM_TOK_DECODE_SPECIAL).  Borrowed; *len gets the length.  NULL (and
 * *len 0) when id is out of range. */
const char *lm_tok_piece(const lm_tok *tok, int32_t id, unsigned flags, size_t *len);

/* Concatenates the pieces of ids[0..n) into a new NUL-terminated buffer
 * (*out, owned: free()), length in *out_len.  DL_ERR_INPUT for an id out of
 * range (err->offset = its index), DL_ERR_NOMEM. */
dl_status lm_tok_decode(const lm_tok *tok, const int32_t *ids, int64_t n, unsigned flags,
                        char **out, size_t *out_len, dl_error *err);

/* ---- vocabulary facts --------------------------------------------------- */

int64_t lm_tok_n_vocab(const lm_tok *tok);
lm_tok_kind lm_tok_kind_of(const lm_tok *tok);
/* The pre-tokenizer family in use ("llama3", "gpt2", ...; "" for SPM).
 * Borrowed static string. */
const char *lm_tok_pre_name(const lm_tok *tok);
int32_t lm_tok_bos(const lm_tok *tok); /* -1 when none */
int32_t lm_tok_eos(const lm_tok *tok);
int32_t lm_tok_unk(const lm_tok *tok);
/* The model's tokenizer.ggml.add_bos_token / add_eos_token (0 when absent). */
int lm_tok_add_bos_default(const lm_tok *tok);
int lm_tok_add_eos_default(const lm_tok *tok);
/* Stored text of token id (borrowed, *len bytes), NULL when out of range. */
const char *lm_tok_text(const lm_tok *tok, int32_t id, size_t *len);
/* lm_tok_type of id; LM_TOK_TYPE_UNDEFINED when out of range. */
lm_tok_type lm_tok_type_of(const lm_tok *tok, int32_t id);
/* Id of the token whose text is exactly text[0..len), or -1. */
int32_t lm_tok_find(const lm_tok *tok, const char *text, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* LM_TOK_H */
