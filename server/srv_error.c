/* srv_error.c: HTTP error bodies (see srv_error.h). */
#include "srv_error.h"

#include <stdio.h>
#include <string.h>

unsigned srv_error_http_status(dl_status code)
{
    switch (code) {
    case DL_OK: return 200;
    case DL_ERR_USAGE:
    case DL_ERR_INPUT: return 400;
    case DL_ERR_NOT_FOUND: return 404;
    case DL_ERR_CANCELLED: return 409;
    case DL_ERR_UNSUPPORTED: return 415;
    case DL_ERR_NOMEM: return 503;
    default: return 500;
    }
}

json_t *srv_error_body_new(const dl_error *err, unsigned http_status)
{
    dl_status code = err ? err->code : DL_ERR_INTERNAL;
    if (http_status == 0)
        http_status = srv_error_http_status(code);
    /* The message keeps line and field (they refer to the client's own
     * upload) but not the server-side file name. */
    char msg[DL_ERROR_MSG_MAX + DL_ERROR_FIELD_MAX + 64];
    msg[0] = '\0';
    if (err) {
        dl_error shown = *err;
        shown.file[0] = '\0';
        dl_error_format(&shown, msg, sizeof msg);
    }
    if (code == DL_ERR_INTERNAL || code == DL_ERR_IO)
        snprintf(msg, sizeof msg, "internal error");
    json_t *inner = json_pack("{s:i, s:s, s:s}", "code", (json_int_t)http_status,
                              "type", dl_status_name(code), "message", msg);
    if (!inner)
        return NULL;
    if (err && code != DL_ERR_INTERNAL && code != DL_ERR_IO) {
        if (err->line > 0)
            json_object_set_new(inner, "line", json_integer((json_int_t)err->line));
        if (err->line > 0 && err->column > 0)
            json_object_set_new(inner, "column", json_integer((json_int_t)err->column));
        if (err->field[0])
            json_object_set_new(inner, "field", json_string(err->field));
    }
    return json_pack("{s:o}", "error", inner);
}

json_t *srv_error_body_msg(unsigned http_status, dl_status code, const char *message)
{
    return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", (json_int_t)http_status, "type",
                     dl_status_name(code), "message", message ? message : "");
}
