#!/usr/bin/env bash
# Makes throwaway test certificates with openssl and a veltrixd config that
# serves mutual TLS on every port with them (docs/security.md):
#
#   scripts/tls-test-certs.sh DIR
#   cargo run -p appliance --bin veltrixd -- --config DIR/veltrix.toml
#   redis-cli --tls --cacert DIR/ca.pem --cert DIR/client.pem --key DIR/client.key ping
#
# DIR gets a CA (ca.pem, ca.key), the server's certificate for localhost
# and 127.0.0.1 (server.pem, server.key), a client certificate (client.pem,
# client.key) and veltrix.toml. For tests and trying it out only: the keys
# are unencrypted, the CA key sits beside them, and they live 30 days.
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/CN=veltrix test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
issue() { # name subject extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm "$1.csr" "$1.ext"
}
issue server "/CN=veltrixd" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
issue client "/CN=veltrix test client" "extendedKeyUsage=clientAuth"
cat > veltrix.toml <<TOML
[server]
data_dir = "$PWD/data"

[tls]
enabled = true
cert_file = "$PWD/server.pem"
key_file = "$PWD/server.key"
client_ca_file = "$PWD/ca.pem"
TOML
echo "wrote test certificates and $PWD/veltrix.toml (mutual TLS on every port)"
