#!/usr/bin/env bash
# Installs Tollgate's CA certificate as trusted for TLS in the macOS System keychain.
# Usage: sudo scripts/install-ca-macos.sh [path/to/tollgate-ca.crt]   (default: ca/tollgate-ca.crt)
# Remove with: sudo security delete-certificate -c "<the CA's common name>" /Library/Keychains/System.keychain
# Fleet-wide, push the same certificate with a "Certificate" payload in an MDM configuration profile.
set -euo pipefail
cert=${1:-ca/tollgate-ca.crt}
[ -r "$cert" ] || { echo "no certificate at $cert (run: tollgate ca export > tollgate-ca.crt)" >&2; exit 64; }
security add-trusted-cert -d -r trustRoot -p ssl -k /Library/Keychains/System.keychain "$cert"
echo "Installed. Node-based tools still need NODE_EXTRA_CA_CERTS=$cert; Python SDKs need SSL_CERT_FILE."
