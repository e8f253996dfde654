/* lm_unicode.c: UTF-8 coding, class lookup and GPT-2's byte mapping. */
#include "lm_unicode.h"

unsigned lm_unicode_class(uint32_t cp)
{
    if (cp > 0x10FFFF)
        return LM_UNICODE_UNDEFINED;
    /* Last run whose first code point is <= cp; run 0 starts at U+0000. */
    int64_t lo = 0, hi = lm_unicode_n_runs - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if ((lm_unicode_runs[mid] >> 4) <= cp)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lm_unicode_runs[lo] & 15u;
}

size_t lm_unicode_lead_len(unsigned char lead)
{
    static const unsigned char len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                                         1, 1, 1, 1, 2, 2, 3, 4};
    return len_by_high_nibble[lead >> 4];
}

uint32_t lm_unicode_decode(const char *s, size_t n, size_t *pos)
{
    const unsigned char *p = (const unsigned char *)s + *pos;
    size_t left = n - *pos;
    unsigned char b = p[0];
    size_t len;
    uint32_t cp;
    if (b < 0x80) {
        *pos += 1;
        return b;
    }
    if ((b & 0xE0) == 0xC0) {
        len = 2;
        cp = b & 0x1Fu;
    } else if ((b & 0xF0) == 0xE0) {
        len = 3;
        cp = b & 0x0Fu;
    } else if ((b & 0xF8) == 0xF0) {
        len = 4;
        cp = b & 0x07u;
    } else {
        *pos += 1; /* stray continuation byte or F8..FF */
        return LM_UNICODE_REPLACEMENT;
    }
    if (left < len) {
        *pos += 1;
        return LM_UNICODE_REPLACEMENT;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *pos += 1;
            return LM_UNICODE_REPLACEMENT;
        }
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp > 0x10FFFF) {
        *pos += 1;
        return LM_UNICODE_REPLACEMENT;
    }
    *pos += len;
    return cp;
}

size_t lm_unicode_seq_len(const char *s, size_t n, size_t pos)
{
    size_t at = pos;
    lm_unicode_decode(s, n, &at);
    return at - pos;
}

size_t lm_unicode_encode(uint32_t cp, char out[4])
{
    unsigned char *o = (unsigned char *)out;
    if (cp > 0x10FFFF)
        cp = LM_UNICODE_REPLACEMENT;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Bytes GPT-2 keeps as themselves: visible ASCII and most of Latin-1. */
static int byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t lm_unicode_byte_to_cp(unsigned char b)
{
    if (byte_is_printable(b))
        return b;
    /* The others, in byte order, take U+0100, U+0101, ...: the rank of b
     * among the non-printable bytes 0x00..0x20, 0x7F..0xA0, 0xAD. */
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100u + 0x21u + (b - 0x7Fu);
    return 0x100u + 0x21u + 0x22u; /* 0xAD */
}

int lm_unicode_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    if (cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp <= 0x142)
        return (int)(0x7F + (cp - 0x121));
    if (cp == 0x143)
        return 0xAD;
    return -1;
}
