#!/usr/bin/env bash
# Regenerates the test-only certificates in this directory with the openssl command-line tool.
#
#   ca.pem / ca.key                      test CA (trusted by the tests)
#   server.pem / server.key / server.p12 server certificate signed by the test CA,
#                                        for localhost, 127.0.0.1 and ::1 (PKCS#12 password "test")
#   client.pem / client.key              client certificate signed by the test CA
#   untrusted-ca.pem / untrusted-ca.key  a second CA that the tests do not trust
#   untrusted-server.pem / .key          server certificate for localhost signed by the untrusted CA
#   untrusted-client.pem / .key          client certificate signed by the untrusted CA
#   expired-client.pem / .key            client certificate signed by the test CA, valid in 2000 only
#
# All keys are PKCS#8 PEM without a password. Everything else expires in 100 years.
# These files are for tests only: never use them anywhere else.
set -euo pipefail
cd "$(dirname "$0")"

DAYS=36500
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ca() { # name subject
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days "$DAYS" -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1.pem"
}

leaf() { # name ca subject extensions
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$3" -out "$tmp/$1.csr"
    printf '%s\n' "$4" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
        -CAserial "$tmp/$2.srl" -days "$DAYS" -sha256 -extfile "$tmp/$1.ext" -out "$1.pem" 2>/dev/null
}

SERVER_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
CLIENT_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'

ca ca "mllp test CA"
leaf server ca localhost "$SERVER_EXT"
leaf client ca "mllp test client" "$CLIENT_EXT"
openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem \
    -passout pass:test -out server.p12

ca untrusted-ca "mllp untrusted test CA"
leaf untrusted-server untrusted-ca localhost "$SERVER_EXT"

leaf untrusted-client untrusted-ca "mllp untrusted test client" "$CLIENT_EXT"

# `openssl x509` cannot back-date a certificate; `openssl ca` can.
key expired-client.key
openssl req -new -key expired-client.key -subj "/CN=mllp expired test client" -out "$tmp/expired.csr"
touch "$tmp/index.txt"
echo 01 >"$tmp/serial"
cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = test
[test]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
[client]
$CLIENT_EXT
EOF
openssl ca -batch -config "$tmp/ca.cnf" -cert ca.pem -keyfile ca.key -in "$tmp/expired.csr" \
    -out expired-client.pem -startdate 20000101000000Z -enddate 20010101000000Z \
    -extensions client -notext 2>/dev/null
