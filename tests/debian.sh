#!/usr/bin/env bash
# The Debian package as an operator meets it (run by .ci/run, as root): built with cargo-deb,
# installed with dpkg, its binary answering from /usr/bin and serving as the package's user, its
# unit verified and rated by systemd-analyze, its conffile edited and the edit kept through an
# upgrade (a second revision, packaged with `cargo deb --no-build`), then removed (config stays)
# and purged (nothing stays).
set -euo pipefail
cd "$(dirname "$0")/.."
package=prometheus-clouddevice-exporter

echo "debian: cargo deb"
cargo deb --locked
deb=$(ls -t target/debian/${package}_*.deb | head -n 1)
echo "debian: the files of $deb"
dpkg-deb -c "$deb" | awk '{ print $1, $6 }'

echo "debian: dpkg -i"
dpkg -i "$deb"
/usr/bin/clouddevice_exporter --version
getent passwd clouddevice_exporter
owner=$(stat -c '%a %U:%G' /etc/clouddevice_exporter)
[ "$owner" = "750 root:clouddevice_exporter" ] || { echo "/etc/clouddevice_exporter is $owner"; exit 1; }
installed=$(dpkg -L "$package")
conffiles=$(dpkg-query -W -f='${Conffiles}\n' "$package" | awk 'NF { print $1 }')
[ "$conffiles" = "/etc/default/$package" ] || { echo "conffiles: $conffiles"; exit 1; }
# As shipped, the default names no file the package does not install: no sign-in at all.
grep -qx 'ARGS=""' "/etc/default/$package" || { echo "the shipped ARGS is not empty"; exit 1; }

unit=$(echo "$installed" | grep "/$package.service$")
echo "debian: systemd-analyze verify $unit"
systemd-analyze verify "$unit"
echo "debian: systemd-analyze security $unit"
# --threshold is the exposure times ten: fail above 2.0 (the unit rates 1.1).
systemd-analyze security --offline=true --threshold=20 "$unit"

echo "debian: the installed binary serves as the package's user, and its healthcheck sees it"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u clouddevice_exporter -- /usr/bin/clouddevice_exporter --demo --web.listen-address "127.0.0.1:$port" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  /usr/bin/clouddevice_exporter healthcheck --url "http://127.0.0.1:$port/-/healthy" 2>/dev/null && break
  sleep 0.2
done
/usr/bin/clouddevice_exporter healthcheck --url "http://127.0.0.1:$port/-/healthy"
kill "$server"
wait "$server" || true

echo "debian: the operator's edit to the conffile is kept through an upgrade"
sed -i 's|^ARGS=""$|ARGS="--clouddevice.auth-token-file=/etc/clouddevice_exporter/token"|' "/etc/default/$package"
version=$(dpkg-query -W -f='${Version}' "$package")
cargo deb --locked --no-build --deb-revision 2
upgrade=$(ls target/debian/${package}_*-2_*.deb)
dpkg -i "$upgrade" </dev/null 2>&1 | tee "${TMPDIR:-/tmp}/clouddevice-upgrade.log"
now=$(dpkg-query -W -f='${Version}' "$package")
[ "$now" != "$version" ] || { echo "the upgrade left version $version"; exit 1; }
grep -qx 'ARGS="--clouddevice.auth-token-file=/etc/clouddevice_exporter/token"' "/etc/default/$package" \
  || { echo "the upgrade lost the edit:"; cat "/etc/default/$package"; exit 1; }
[ ! -e "/etc/default/$package.dpkg-new" ] && [ ! -e "/etc/default/$package.dpkg-old" ] \
  || { echo "the upgrade left .dpkg-new or .dpkg-old files"; exit 1; }
rm -f "${TMPDIR:-/tmp}/clouddevice-upgrade.log" "$upgrade"
echo "debian: upgraded $version -> $now, the edit kept"

echo "debian: dpkg -r leaves the configuration and nothing else"
dpkg -r "$package"
left=0
while read -r path; do
  [ -f "$path" ] || [ -L "$path" ] || continue
  if [ "$path" != "/etc/default/$package" ]; then
    echo "left after dpkg -r: $path"
    left=1
  fi
done <<< "$installed"
[ "$left" = 0 ]
[ -f "/etc/default/$package" ] || { echo "dpkg -r removed the configuration"; exit 1; }
[ -d /etc/clouddevice_exporter ] || { echo "dpkg -r removed the secrets folder"; exit 1; }

echo "debian: dpkg -P removes the configuration too"
dpkg -P "$package"
[ ! -e "/etc/default/$package" ] && [ ! -e /etc/clouddevice_exporter ] || { echo "dpkg -P left configuration"; exit 1; }
echo "debian: all checks passed"
