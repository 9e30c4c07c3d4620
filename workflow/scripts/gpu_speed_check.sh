#!/usr/bin/env bash
# The name the committed GPU results cite; the script is speed_check.sh (GPU by default).
exec bash "$(dirname "$0")/speed_check.sh" "$@"
