#!/bin/sh
# The delift program's frame: --help, --version, unknown commands, exit codes.
set -u
bin=${DELIFT_BIN:-./delift}
fail=0
check() { # expected-code description command...
    want=$1; shift; what=$1; shift
    "$@" >/tmp/dl_cli_out.$$ 2>&1; got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, expected $want"; sed 's/^/  | /' /tmp/dl_cli_out.$$; fail=1
    else
        echo "ok: $what"
    fi
}
check 0 "--help" "$bin" --help
check 0 "--version" "$bin" --version
check 1 "no command" "$bin"
check 1 "unknown command" "$bin" frobnicate
check 0 "help records" "$bin" help records
check 1 "help unknown" "$bin" help nope
"$bin" --version | grep -Eq '^delift [0-9]+\.[0-9]+\.[0-9]+$' || { echo "FAIL: version format"; fail=1; }
"$bin" --help | grep -q 'Exit codes' || { echo "FAIL: --help lacks exit codes"; fail=1; }
"$bin" frobnicate 2>&1 | grep -q "unknown command 'frobnicate'" || { echo "FAIL: unknown command message"; fail=1; }
rm -f /tmp/dl_cli_out.$$
exit $fail
