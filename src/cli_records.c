/* placeholder until the records module lands (owned by the records work) */
#include "cli.h"
int cli_records_main(int argc, char **argv) { (void)argc; (void)argv; return CLI_EXIT_RUNTIME; }
