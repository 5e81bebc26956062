#!/usr/bin/env bash
# Regenerates tests/fixtures/: a test CA, the certificate the fake upstream presents for the LLM
# hosts it poses as, and a self-signed certificate no one trusts (for the verification test).
# Also two RSA keys a fake identity provider signs JWTs with.
# The files are committed; run this only to renew them (they are valid for 20 years).
set -euo pipefail
cd "$(dirname "$0")/../tests/fixtures"

hosts="api.openai.com eu.api.openai.com us.api.openai.com api.anthropic.com
  generativelanguage.googleapis.com aiplatform.googleapis.com
  europe-west4-aiplatform.googleapis.com us-central1-aiplatform.googleapis.com
  bedrock-runtime.eu-central-1.amazonaws.com bedrock-runtime.us-east-1.amazonaws.com
  api.mistral.ai api.eu.mistral.ai contoso-eu.openai.azure.com contoso-us.openai.azure.com
  idp.example tunneled.example other.example localhost"
san=$(printf 'DNS:%s,' $hosts)IP:127.0.0.1

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7300 \
  -keyout upstream-ca.key -out upstream-ca.crt -subj "/CN=Tollgate Test Upstream CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout upstream.key -out upstream.csr -subj "/CN=fake upstream"
openssl x509 -req -in upstream.csr -CA upstream-ca.crt -CAkey upstream-ca.key -CAcreateserial \
  -days 7300 -out upstream.crt -extfile <(printf '%s\n' \
    "subjectAltName=$san" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid")
rm -f upstream.csr upstream-ca.srl upstream-ca.key

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7300 \
  -keyout untrusted.key -out untrusted.crt -subj "/CN=api.openai.com" \
  -addext "subjectAltName=$san"

for key in jwt-rsa.key jwt-rsa-2.key; do
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key"
done
