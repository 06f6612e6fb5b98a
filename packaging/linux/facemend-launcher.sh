#!/bin/sh
# /usr/bin/facemend: runs the bundle installed beside it in ../lib/facemend.
# Resolved relative to this script (not a fixed /usr/lib path) so the same
# launcher works from an unpacked .deb (`dpkg -x pkg.deb root/`) as installed.
here=$(dirname "$(readlink -f "$0")")
exec "$here/../lib/facemend/facemend" "$@"
