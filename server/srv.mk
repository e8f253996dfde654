# server/srv.mk: the HTTP daemon's library.
server_libdlsrv_la_SOURCES += server/srv_error.c server/srv_error.h
