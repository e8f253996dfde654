/* dl_utf8.c: strict UTF-8 validation (RFC 3629, table in section 4). */
#include "dl_utf8.h"

/* Length of the sequence a lead byte starts, 0 for bytes that cannot lead
 * (continuations 80..BF, overlong leads C0/C1, F5..FF). */
static int utf8_seq_len(uint8_t b)
{
    if (b < 0x80)
        return 1;
    if (b < 0xC2)
        return 0;
    if (b < 0xE0)
        return 2;
    if (b < 0xF0)
        return 3;
    if (b < 0xF5)
        return 4;
    return 0;
}

int dl_utf8_valid(const void *s, size_t n, size_t *bad_at)
{
    const uint8_t *p = s;
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        int len = utf8_seq_len(b);
        if (len == 0 || (size_t)len > n - i)
            goto bad;
        /* The second byte's range depends on the lead: it is what rules out
         * overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4). */
        uint8_t lo = 0x80, hi = 0xBF;
        if (b == 0xE0)
            lo = 0xA0;
        else if (b == 0xED)
            hi = 0x9F;
        else if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;
        if (p[i + 1] < lo || p[i + 1] > hi)
            goto bad;
        for (int k = 2; k < len; k++)
            if ((p[i + (size_t)k] & 0xC0) != 0x80)
                goto bad;
        i += (size_t)len;
    }
    return 1;
bad:
    if (bad_at)
        *bad_at = i;
    return 0;
}

size_t dl_utf8_count(const void *s, size_t n)
{
    const uint8_t *p = s;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += (p[i] & 0xC0) != 0x80;
    return count;
}
