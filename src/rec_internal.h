/* rec_internal.h: pieces shared by the records module's files (rec_map.c,
 * rec_reader.c, rec_pool.c).  Not part of the public API. */
#ifndef DL_REC_INTERNAL_H
#define DL_REC_INTERNAL_H

#include <jansson.h>

#include "rec.h"

/* Where a record sits in its file, for error messages. */
typedef struct rec_loc {
    const char *file;
    int64_t line;
    int64_t column;
    int64_t offset;
} rec_loc;

/* A growable byte buffer; p is owned.  Zero-initialise, rec_buf_free. */
typedef struct rec_buf {
    char *p;
    size_t n;
    size_t cap;
} rec_buf;

/* Makes room for want bytes in total; DL_ERR_NOMEM on failure (b intact). */
dl_status rec_buf_reserve(rec_buf *b, size_t want, dl_error *err);
dl_status rec_buf_append(rec_buf *b, const void *data, size_t n, dl_error *err);
void rec_buf_free(rec_buf *b);

/* The mapped content of one record: pointers borrowed from the JSON object
 * or from the fold buffer given to rec_map_extract. */
typedef struct rec_fields {
    const char *instruction;
    size_t instruction_len;
    const char *input;
    size_t input_len;
    const char *output;
    size_t output_len;
} rec_fields;

/* Fills m with the first shape obj matches (order in rec.h); returns 0 and
 * leaves m alone when none matches. */
int rec_map_detect(json_t *obj, rec_map *m);

/* Maps obj through m into out.  fold holds the folded chat input for the
 * messages shape (reset here).  Errors name the field, at loc. */
dl_status rec_map_extract(const rec_map *m, json_t *obj, rec_buf *fold,
                          rec_fields *out, const rec_loc *loc, dl_error *err);

/* Human name of a JSON value's type ("integer", "null", ...). */
const char *rec_json_type_name(const json_t *v);

#endif /* DL_REC_INTERNAL_H */
