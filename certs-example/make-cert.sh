#!/bin/sh
# Makes a throwaway self-signed certificate for trying tsieved out (NOT for
# production: clients verify certificates, and Thunderbird's add-on and
# sieve-connect refuse a self-signed one unless told otherwise).
#   sh certs-example/make-cert.sh [DIR] [HOSTNAME]
set -eu
dir=${1:-.}
host=${2:-localhost}
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 90 \
  -keyout "$dir/tsieved-key.pem" -out "$dir/tsieved-cert.pem" \
  -subj "/CN=$host" -addext "subjectAltName=DNS:$host"
echo "wrote $dir/tsieved-cert.pem and $dir/tsieved-key.pem for $host"
