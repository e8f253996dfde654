#!/usr/bin/env python3
"""gen_pretok_classes.py: prints the code point ranges of the bracket
expression in llama.cpp's DEEPSEEK_LLM letter regex (\\s?[A-Za-z...]+), as
the C array pasted into src/lm_tok_pretok.c (deepseek_llm_letters).

Usage: python3 tests/gen/gen_pretok_classes.py ../shared/tokenizers/pretokenizer-regexes.json
The JSON (in the shared fixtures, extracted from llama.cpp's
src/llama-vocab.cpp, MIT) lists each pre-tokenizer's regexes.
"""
import json
import sys


def parse_class(body):
    """Ranges of a bracket body made of literal characters and a-b ranges."""
    cps = [ord(c) for c in body]
    ranges, i = [], 0
    while i < len(cps):
        if i + 2 < len(cps) and cps[i + 1] == ord('-'):
            ranges.append((cps[i], cps[i + 2]))
            i += 3
        else:
            ranges.append((cps[i], cps[i]))
            i += 1
    return sorted(ranges)


def main():
    regexes = json.load(open(sys.argv[1], encoding='utf-8'))['DEEPSEEK_LLM']
    rx = regexes[1]['regex']
    assert rx.startswith('\\s?[') and rx.endswith(']+'), rx
    ranges = parse_class(rx[4:-2])
    for i in range(0, len(ranges), 4):
        print('    ' + ' '.join('{0x%04X, 0x%04X},' % r for r in ranges[i:i + 4]))
    print('/* %d ranges */' % len(ranges))


if __name__ == '__main__':
    main()
