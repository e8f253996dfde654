/* bench_synth.h: writes a synthetic qwen2 model of a real model's shape, with
 * seeded random weights, as a GGUF v3 file, so that benchmarks measure the
 * engine at sizes users run without downloading a model.  The bytes go
 * through the tests' GGUF writer (tests/gguf_build.h), streamed to the file.
 *
 * File layout (what lm_gguf.h reads):
 *   keys     general.architecture "qwen2", general.name, general.file_type,
 *            qwen2.{context_length, embedding_length, block_count,
 *            feed_forward_length, attention.head_count, attention.head_count_kv,
 *            rope.freq_base, attention.layer_norm_rms_epsilon}, and a small
 *            but valid byte-level BPE tokenizer (tokenizer.ggml.model "gpt2",
 *            pre "qwen2"): the 256 byte symbols, the 676 two-letter merges of
 *            a-z, numbered filler tokens, and Qwen's three control tokens at
 *            the top of the vocabulary (bos = eos = <|endoftext|>);
 *   tensors  token_embd.weight [n_vocab, n_embd] (also the tied output),
 *            per layer attn_norm, attn_{q,k,v}.{weight,bias}, attn_output,
 *            ffn_norm, ffn_{gate,up,down}; output_norm.weight.
 * Matrices are stored as the requested type; norms and biases as F32.
 *
 * Values: every matrix element uniform with standard deviation 0.02 (the
 * usual initialisation scale; activations stay O(1) through the RMSNorms),
 * biases the same, norm gains uniform in [0.9, 1.1].  Each tensor draws
 * from its own generator seeded by (seed, tensor index), so files of
 * different types hold the same values before rounding: their scores are
 * comparable.  Q8_0 blocks are ggml's: fp16 scale d = max|x| / 127, then 32
 * int8 values round(x / d).
 *
 * Thread-safety: reentrant (no shared state).
 */
#ifndef DL_BENCH_SYNTH_H
#define DL_BENCH_SYNTH_H

#include <stdint.h>

#include "dl_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bench_synth_shape {
    const char *name; /* general.name, borrowed */
    int64_t n_vocab;  /* > 932: bytes, merges and the control tokens */
    int64_t n_embd;   /* multiple of 32 and of n_head */
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv; /* divides n_head */
    int64_t n_ff;      /* multiple of 32 */
    int64_t n_ctx;     /* qwen2.context_length */
    float rope_freq_base;
    float rms_eps;
} bench_synth_shape;

/* Qwen2.5-0.5B: 896 wide, 24 layers, 14 query and 2 key/value heads of 64,
 * FFN 4864, 151,936 tokens, rope base 1e6, RMS eps 1e-6, context 32768. */
bench_synth_shape bench_synth_qwen25_05b(void);

/* Elements of every tensor the file holds (the tied output counted once). */
int64_t bench_synth_n_params(const bench_synth_shape *s);

/* Writes the model to `path` (created or truncated) with matrices of `type`
 * (LM_QTYPE_F32, _F16 or _Q8_0).  DL_ERR_USAGE for another type or a shape
 * the layout cannot hold, DL_ERR_IO when writing fails (a partial file may be
 * left: the caller removes it), DL_ERR_NOMEM. */
dl_status bench_synth_write(const char *path, const bench_synth_shape *s, uint32_t type,
                            uint64_t seed, dl_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DL_BENCH_SYNTH_H */
