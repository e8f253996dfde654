#!/usr/bin/env python3
"""gen_tok_seeds.py: writes the seed corpus of tests/fuzz_lm_tok.c into
tests/data/lm_tok/ (text inputs, tiny GGUF vocabularies and broken ones).

Usage: python3 tests/gen/gen_tok_seeds.py tests/data/lm_tok
"""
import os
import struct
import sys

STRING, ARRAY, UINT32, FLOAT32, BOOL, INT32 = 8, 9, 4, 6, 7, 5


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack('<Q', len(b)) + b


def kv(key, typ, payload):
    return s(key) + struct.pack('<I', typ) + payload


def arr(typ, items):
    out = struct.pack('<IQ', typ, len(items))
    for it in items:
        if typ == STRING:
            out += s(it)
        elif typ == FLOAT32:
            out += struct.pack('<f', it)
        else:
            out += struct.pack('<i', it)
    return out


def gguf(kvs):
    return b'GGUF' + struct.pack('<IQQ', 3, 0, len(kvs)) + b''.join(kvs)


def spm(n_scores=266):
    toks = ['<unk>', '<s>', '</s>'] + ['<0x%02X>' % b for b in range(256)] + \
        ['\u2581', '\u2581t', 'he', '\u2581the', 'e', 't', 'h']
    types = [2, 3, 3] + [6] * 256 + [1] * 7
    scores = [0.0] * 259 + [-1.0, -2.0, -2.0, -0.5, -3.0, -3.0, -3.0]
    return gguf([kv('tokenizer.ggml.model', STRING, s('llama')),
                 kv('tokenizer.ggml.tokens', ARRAY, arr(STRING, toks)),
                 kv('tokenizer.ggml.scores', ARRAY, arr(FLOAT32, scores[:n_scores])),
                 kv('tokenizer.ggml.token_type', ARRAY, arr(INT32, types)),
                 kv('tokenizer.ggml.bos_token_id', UINT32, struct.pack('<I', 1)),
                 kv('tokenizer.ggml.add_space_prefix', BOOL, b'\x01')])


def gpt2_chars():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


def bpe(pre):
    toks = gpt2_chars() + ['\u0120t', 'he', '\u0120the', '<|endoftext|>']
    types = [1] * 259 + [3]
    return gguf([kv('tokenizer.ggml.model', STRING, s('gpt2')),
                 kv('tokenizer.ggml.pre', STRING, s(pre)),
                 kv('tokenizer.ggml.tokens', ARRAY, arr(STRING, toks)),
                 kv('tokenizer.ggml.token_type', ARRAY, arr(INT32, types)),
                 kv('tokenizer.ggml.merges', ARRAY, arr(STRING, ['\u0120 t', 'h e', '\u0120t he']))])


def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    texts = {
        'text-ascii.txt': b"Hello world, y'all! It's 3.14159 -- ok?\n",
        'text-spaces.txt': b'   leading\t\ttabs\n\n\n  trailing   ',
        'text-unicode.txt': 'Café naïve Ελληνικά русский 日本語 한국어 😀🎉 ½ ①'.encode(),
        'text-malformed.txt': b'a\xff\x80z\xe6\x97\xc3 \x00q\xf4\x90\x80\x80\xed\xa0\x80',
        'text-digits.txt': '1234567890 3333333 3.3 3..3 ０１２'.encode(),
        'text-special.txt': b'<s>hi</s><|endoftext|> <unk>',
    }
    for name, data in texts.items():
        open(os.path.join(d, name), 'wb').write(data)
    good = {'gguf-spm.gguf': spm(), 'gguf-bpe-llama3.gguf': bpe('llama-bpe'),
            'gguf-bpe-deepseek.gguf': bpe('deepseek-llm')}
    for name, data in good.items():
        open(os.path.join(d, name), 'wb').write(data)
    # Broken: truncated, an unknown pre-tokenizer, a wrong scores count.
    open(os.path.join(d, 'gguf-truncated.gguf'), 'wb').write(spm()[:300])
    open(os.path.join(d, 'gguf-bad-pre.gguf'), 'wb').write(bpe('no-such-pre'))
    open(os.path.join(d, 'gguf-bad-scores.gguf'), 'wb').write(spm(265))


if __name__ == '__main__':
    main()
