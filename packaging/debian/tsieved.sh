#!/bin/sh
# /usr/bin/tsieved: the tsieved command, run by Debian's Node.js.
exec /usr/bin/node /usr/lib/tsieved/dist/tsieved.cjs "$@"
