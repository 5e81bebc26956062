#!/usr/bin/env bash
# Installs Tollgate's CA certificate into the system trust store of a Debian or Ubuntu machine.
# Usage: sudo scripts/install-ca-debian.sh [path/to/tollgate-ca.crt]   (default: ca/tollgate-ca.crt)
# Remove with: sudo rm /usr/local/share/ca-certificates/tollgate-ca.crt && sudo update-ca-certificates --fresh
set -euo pipefail
cert=${1:-ca/tollgate-ca.crt}
[ -r "$cert" ] || { echo "no certificate at $cert (run: tollgate ca export > tollgate-ca.crt)" >&2; exit 64; }
openssl x509 -in "$cert" -noout -subject >/dev/null 2>&1 || { echo "$cert is not a PEM certificate" >&2; exit 64; }
install -m 0644 "$cert" /usr/local/share/ca-certificates/tollgate-ca.crt
update-ca-certificates
echo "Installed. Node needs NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/tollgate-ca.crt;"
echo "Python requests needs REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt."
