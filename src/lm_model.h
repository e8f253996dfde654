/* lm_model.h: a decoder-only transformer bound to the tensors of a GGUF file.
 *
 * Architectures (general.architecture):
 *   llama  RMSNorm, grouped-query attention, rotary on adjacent pairs
 *          (x[2i], x[2i+1]), SwiGLU FFN, no biases.  Llama-3 files may carry
 *          `rope_freqs.weight` (per-pair frequency divisors).  The output
 *          projection is `output.weight`, or the token embeddings when that
 *          tensor is absent (tied).
 *   qwen2  as llama, but rotary on half-split pairs (x[i], x[i + n_rot/2],
 *          "NEOX") and biases on the q, k and v projections.
 *
 * Every hyperparameter comes from the GGUF keys "<arch>.<name>":
 *   embedding_length (n_embd), block_count (n_layer), feed_forward_length
 *   (n_ff), attention.head_count (n_head), attention.head_count_kv (n_head_kv,
 *   default n_head), attention.key_length (head_dim, default n_embd/n_head),
 *   rope.dimension_count (n_rot, default head_dim), rope.freq_base (default
 *   10000), attention.layer_norm_rms_epsilon (default 1e-5 for llama, 1e-6 for
 *   qwen2), context_length (n_ctx_train), vocab_size (default: rows of
 *   token_embd.weight).  Special tokens: tokenizer.ggml.bos_token_id /
 *   eos_token_id (-1 when absent).
 *
 * Weights are borrowed pointers into the read-only mapping of the file: a
 * model costs no copy of its weights, and any number of contexts and
 * threads may share one.  Every tensor's type, shape and alignment is
 * checked at load time, so the kernels never see a bad tensor.
 *
 * Thread-safety: a loaded model is immutable; share it freely.
 */
#ifndef LM_MODEL_H
#define LM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dl_error.h"
#include "lm_gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lm_arch {
    LM_ARCH_LLAMA = 0,
    LM_ARCH_QWEN2 = 1
} lm_arch;

/* Which pairs of a head's first n_rot values rotary rotates together. */
typedef enum lm_rope_style {
    LM_ROPE_ADJACENT = 0, /* (2i, 2i+1): llama.cpp's "norm" rope */
    LM_ROPE_NEOX = 1      /* (i, i + n_rot/2): qwen2, GPT-NeoX */
} lm_rope_style;

typedef struct lm_hparams {
    lm_arch arch;
    lm_rope_style rope_style;
    int64_t n_vocab;
    int64_t n_embd;     /* model width */
    int64_t n_layer;
    int64_t n_head;     /* query heads */
    int64_t n_head_kv;  /* key/value heads; n_head % n_head_kv == 0 */
    int64_t head_dim;
    int64_t n_ff;       /* FFN hidden width */
    int64_t n_rot;      /* rotated values per head (even, <= head_dim) */
    int64_t n_ctx_train;
    float rope_freq_base;
    float rms_eps;
    int32_t bos_id;     /* -1 when the file names none */
    int32_t eos_id;
} lm_hparams;

/* One weight tensor as the kernels see it: n_rows rows of n_cols values
 * (ne[1] x ne[0] in GGUF terms), so a matmul computes y = W x with
 * len(x) = n_cols and len(y) = n_rows.  1-D tensors (norms, biases) have
 * n_rows == 1 and are always F32. */
typedef struct lm_weight {
    const char *name;      /* borrowed from the GGUF handle */
    uint32_t type;         /* lm_qtype */
    int64_t n_cols;
    int64_t n_rows;
    size_t row_bytes;
    const void *data;      /* borrowed: the file mapping */
    int32_t slot;          /* 0 .. n_weights-1: backends index private
                              copies (device uploads) by it */
} lm_weight;

typedef struct lm_layer {
    const lm_weight *attn_norm;            /* [n_embd] */
    const lm_weight *wq, *wk, *wv;         /* [n_head*hd | n_head_kv*hd rows, n_embd cols] */
    const lm_weight *bq, *bk, *bv;         /* qwen2 biases; NULL for llama */
    const lm_weight *wo;                   /* [n_embd rows, n_head*hd cols] */
    const lm_weight *ffn_norm;             /* [n_embd] */
    const lm_weight *w_gate, *w_up;        /* [n_ff rows, n_embd cols] */
    const lm_weight *w_down;               /* [n_embd rows, n_ff cols] */
} lm_layer;

typedef struct lm_model {
    lm_hparams hp;
    const lm_weight *tok_embd;    /* [n_vocab rows, n_embd cols] */
    const lm_weight *output_norm; /* [n_embd] */
    const lm_weight *output;      /* [n_vocab rows, n_embd cols]; == tok_embd when tied */
    const lm_weight *rope_freqs;  /* [n_rot/2] divisors, or NULL */
    lm_layer *layers;             /* [n_layer], owned */
    lm_weight *weights;           /* [n_weights], owned */
    int32_t n_weights;
    int64_t n_params;             /* elements of all bound tensors (tied counted once) */
    uint32_t weight_type;         /* type of wq in layer 0: the file's "main" type */
    lm_gguf *gguf;                /* owned when loaded by lm_model_load */
    int owns_gguf;
} lm_model;

/* ---- loading ------------------------------------------------------------- */

/* Opens and maps `path` and binds the model.  *out is owned (lm_model_free).
 * DL_ERR_IO (cannot open), DL_ERR_INPUT (malformed file, missing tensor,
 * wrong shape or key, err->field names it), DL_ERR_UNSUPPORTED (another
 * architecture or tensor type), DL_ERR_NOMEM. */
dl_status lm_model_load(const char *path, lm_model **out, dl_error *err);

/* As lm_model_load on an already open handle, which is borrowed: it must
 * outlive the model. */
dl_status lm_model_from_gguf(lm_gguf *g, lm_model **out, dl_error *err);

/* Frees the model (and its GGUF handle when it owns it).  NULL is a no-op. */
void lm_model_free(lm_model *m);

/* "llama" / "qwen2". Borrowed static string. */
const char *lm_arch_name(lm_arch a);

/* Matmul FLOPs of one token's forward pass at the projections and the
 * output layer (2 per multiply-add), attention excluded: the usual
 * "2 x parameters" count for model FLOPs utilisation. */
double lm_model_flops_per_token(const lm_model *m);

#ifdef __cplusplus
}
#endif

#endif /* LM_MODEL_H */
