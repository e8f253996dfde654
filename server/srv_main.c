/* srv_main.c: delift-server, the HTTP daemon (docs/server.md).
 *
 * The selection pipeline (`delift select`) is not part of the build yet, so
 * the daemon runs without an executor: it stores datasets and answers every
 * route, and refuses selection jobs with 501 instead of pretending to run
 * them.  When the pipeline lands, its executor is passed here. */
#include "config.h"

#include "srv_app.h"

int main(int argc, char **argv)
{
    return srv_app_main(argc, argv, NULL);
}
