#!/bin/sh
# Makes a CA and a certificate for the exporter (names: exporter, localhost, 127.0.0.1), once.
set -eu
cd /certs
[ -f server.crt ] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
  -subj "/CN=clouddevice demo CA" -keyout ca.key -out ca.crt
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=exporter" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:exporter,DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 \
  -extfile server.ext -out server.crt
chmod 644 ca.crt server.crt server.key
