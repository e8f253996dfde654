/* fuzz_main.c: runs a libFuzzer-style target over files, without libFuzzer.
 *
 * Every fuzz target (tests/fuzz_<parser>.c) defines
 *   int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
 * Linked with this main, it becomes a regression test: `make check` feeds it
 * every file named on the command line (the seed and crash corpus).  Built
 * with clang -fsanitize=fuzzer instead (make fuzz), the same target is a
 * coverage-guided fuzzer.  A target must never crash, leak or hang.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int ran = 0;
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "fuzz_main: cannot open %s\n", argv[i]);
            return 1;
        }
        size_t cap = 1 << 16, len = 0;
        uint8_t *buf = malloc(cap);
        size_t got;
        while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
            len += got;
            if (len == cap) {
                uint8_t *nb = realloc(buf, cap *= 2);
                if (!nb) {
                    free(buf);
                    buf = NULL;
                }
                buf = nb;
            }
        }
        fclose(f);
        if (!buf) {
            fprintf(stderr, "fuzz_main: out of memory on %s\n", argv[i]);
            return 1;
        }
        /* Exact-size copy so ASan sees reads past the end. */
        uint8_t *exact = malloc(len ? len : 1);
        if (!exact) {
            free(buf);
            return 1;
        }
        for (size_t k = 0; k < len; k++)
            exact[k] = buf[k];
        free(buf);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
        ran++;
    }
    printf("fuzz_main: %d inputs ran cleanly\n", ran);
    return 0;
}
