#!/usr/bin/env bash
# Seeds each fuzz target's corpus from what the tests use: the MDM webhook
# fixtures, OCSP requests made by the real `openssl ocsp` client (with and
# without nonce, SHA-1 and SHA-256 CertIDs) and their GET encodings, and
# ACME request shapes, CSRs made by `openssl req` (P-256, P-384, RSA,
# Ed25519; PEM and DER; with subjectAltNames), and attestation objects
# wrapping the real Apple attestation leaf from the tests, and the config
# files the tests and README write, and the real scepclient PKCSReq of the
# scep crate's tests, and a real TPM's structures. Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
c=corpus
mkdir -p $c/ocsp_request $c/ocsp_get_path $c/acme_jws $c/webhook_payloads $c/webhook_signature \
  $c/csr $c/apple_attestation $c/config_file $c/scep_message $c/tpm_attestation
cp ../tests/data/mdm/*.json $c/webhook_payloads/
cp ../scep/tests/fixtures/scepclient-pkcsreq.der $c/scep_message/
# A real TPM's TPMT_PUBLIC and TPMS_ATTEST (swtpm), each alone.
cp ../attest/tests/fixtures/swtpm-pubarea.bin ../attest/tests/fixtures/swtpm-certinfo.bin $c/tpm_attestation/
printf '{"kind":"lost","serial":"C02X","occurred_at":"2026-01-01T00:00:00Z"}' > $c/webhook_payloads/standard.json
printf '{"webhook":{"webhookEvent":"SmartGroupComputerMembershipChange","eventTimestamp":1700000000000},"event":{"name":"Lost Devices","groupAddedDevicesIds":[12,13]}}' > $c/webhook_payloads/jamf_smart_group.json
printf 'msg_1\n1700000000\nv1,AAAA\n{"kind":"lost","serial":"X"}' > $c/webhook_signature/basic
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" \
  -out "$tmp/ca.pem" -subj /CN=seed -days 1 2>/dev/null
n=0
for extra in "-no_nonce" "" "-sha256 -no_nonce" "-sha256"; do
  n=$((n + 1))
  # shellcheck disable=SC2086
  # (digest options must come before -serial)
  openssl ocsp $extra -issuer "$tmp/ca.pem" -serial 0x1A2B3C4D5E6F -reqout "$c/ocsp_request/req$n.der" 2>/dev/null
  base64 -w0 "$c/ocsp_request/req$n.der" | sed 's#/#%2F#g; s#+#%2B#g; s#=#%3D#g' > "$c/ocsp_get_path/get$n"
done
printf '{"protected":"eyJhbGciOiJFUzI1NiIsIm5vbmNlIjoiYWJjIiwidXJsIjoiaHR0cHM6Ly9leGFtcGxlL2FjbWUvbmV3LWFjY291bnQiLCJqd2siOnsia3R5IjoiRUMiLCJjcnYiOiJQLTI1NiIsIngiOiJmODNPSjNEMnhGMUJnOHZ1YjlqTExCMUtTdTBQdTFDZGhaeTljUzFwMXJBIiwieSI6Ik5NR3h6SXhyRjZPMVg1dU9vaGRsN0RZdWdxNFhtc1BJdThqSTJ0VjhDMmMifX0","payload":"eyJ0ZXJtc09mU2VydmljZUFncmVlZCI6dHJ1ZX0","signature":"AAAA"}' > $c/acme_jws/new_account.json
printf '{"protected":"eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIiwidXJsIjoiaHR0cHM6Ly9leGFtcGxlIn0","payload":"","signature":"AAAA"}' > $c/acme_jws/post_as_get.json

# CSRs: every key type custos accepts, with names, as PEM and DER.
i=0
for key in "ec -pkeyopt ec_paramgen_curve:P-256" "ec -pkeyopt ec_paramgen_curve:P-384" "rsa:2048" "ed25519"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  openssl req -new -newkey $key -nodes -keyout "$tmp/k$i" -subj "/CN=dev$i/O=Seed" \
    -addext "subjectAltName=DNS:dev$i.corp.example,IP:10.0.0.$i,email:a@corp.example,URI:urn:x:$i" \
    -out "$c/csr/req$i.pem" 2>/dev/null
  openssl req -in "$c/csr/req$i.pem" -outform DER -out "$c/csr/req$i.der" 2>/dev/null
done
openssl pkey -in "$tmp/k1" -pubout -outform DER -out "$c/csr/spki.der" 2>/dev/null

# Attestation objects: {"fmt":"apple","attStmt":{"x5c":[leaf, ...]}} in
# CBOR, with the real Apple leaf (once alone, once with the seed CA after
# it), and the leaf's DER alone.
leaf="$tmp/leaf.der"
openssl x509 -in ../tests/data/real-apple-attestation-leaf-2025.pem -outform DER -out "$leaf"
openssl x509 -in "$tmp/ca.pem" -outform DER -out "$tmp/ca.der"
cp "$leaf" $c/apple_attestation/leaf.der
bstr() { # a CBOR byte string holding the file $1 (length < 65536)
  local n; n=$(wc -c <"$1")
  printf "\\x59\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))"
  cat "$1"
}
att() { # fmt "apple", attStmt.x5c = the files given
  printf '\xa2\x63fmt\x65apple\x67attStmt\xa1\x63x5c'
  printf "\\x$(printf %02x $((0x80 + $#)))"
  for f in "$@"; do bstr "$f"; done
}
att "$leaf" > $c/apple_attestation/leaf_only.cbor
att "$leaf" "$tmp/ca.der" > $c/apple_attestation/leaf_and_ca.cbor

# Config files: every section, as the README documents them.
cat > $c/config_file/full.toml <<'TOML'
http_listen = "0.0.0.0:8080"
https_listen = "0.0.0.0:8443"
public_http_url = "http://ca.corp.example"
default_profile = "device"
[http]
header_timeout_secs = 10
max_connections = 100
[ocsp]
response_validity_hours = 24
refresh_fraction = 0.5
sign_with = "issuer"
refresh_schedule = "0 */5 * * * *"
[crl]
shards = 16
refresh_schedule = "0 0 * * * *"
[acme]
allowed_ip_ranges = ["10.0.0.0/8", "fd00::/8"]
allowed_dns_suffixes = ["corp.example"]
dns_resolver = "127.0.0.1:53"
[acme.device_attest]
profile = "device"
[profiles.device]
validity_days = 14
extended_key_usage = ["clientAuth"]
[webhooks.fleet]
kind = "fleet"
token = "t"
allowed_ips = ["192.0.2.0/24"]
[webhooks.jamf]
kind = "jamf"
username = "u"
password = "p"
smart_groups = { "Lost Devices" = "lost" }
[webhook_reasons]
lost = "keyCompromise"
[notify.subscribers.radius]
url = "https://radius.corp.example/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOML
printf '[crl]\nshards = 3\n' > $c/config_file/small.toml
