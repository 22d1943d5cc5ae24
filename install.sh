#!/bin/sh
# install.sh: install, upgrade or remove coibox as a systemd service on Debian 12/13
# and Raspberry Pi OS (amd64, arm64, armv7).
#
#   sh install.sh you@example.org [quickstart flags]   first install
#   sh install.sh                                     upgrade in place (backup first,
#                                                     into /var/backups/coibox; roll
#                                                     back if the new binary does
#                                                     not come up healthy)
#   sh install.sh --uninstall [--purge]               remove; --purge also deletes
#                                                     the config, the data and the user
#
# The binary comes from a release tarball beside this script
# (coibox-VERSION-linux-ARCH.tar.gz, or an unpacked ./coibox), or is built from the
# checkout this script is in (needs Go and a C compiler). Environment:
#   COIBOX_BIN       use this binary instead
#   COIBOX_NO_START  1: install everything but do not start the service (no systemd)
set -eu

bindir=/usr/local/bin
bin=$bindir/coibox
etc=/etc/coibox
config=$etc/coibox.toml
data=/var/lib/coibox
backups=/var/backups/coibox
unit=/etc/systemd/system/coibox.service
user=coibox
here=$(cd "$(dirname "$0")" && pwd)

say() { printf 'install.sh: %s\n' "$*"; }
die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

uninstall=0
purge=0
address=
for arg in "$@"; do
	case $arg in
	--uninstall) uninstall=1 ;;
	--purge) purge=1 ;;
	-h | --help)
		sed -n '2,17p' "$0"
		exit 0
		;;
	esac
done
if [ $uninstall = 0 ] && [ $# -gt 0 ]; then
	case $1 in
	-*) die "the first argument must be the admin address (you@example.org)" ;;
	*) address=$1 ;;
	esac
	shift
fi

[ "$(id -u)" = 0 ] || die "run as root (sudo sh install.sh ...)"

systemd_up() {
	[ "${COIBOX_NO_START:-}" != 1 ] && [ -d /run/systemd/system ]
}

if [ $uninstall = 1 ]; then
	if systemd_up; then
		systemctl disable --now coibox.service 2>/dev/null || true
	fi
	rm -f "$unit" "$bin" "$bin.prev"
	systemd_up && systemctl daemon-reload
	if [ $purge = 1 ]; then
		rm -rf "$etc" "$data" "$backups"
		if id "$user" >/dev/null 2>&1; then
			userdel "$user" 2>/dev/null || deluser --system "$user" >/dev/null 2>&1 || true
		fi
		say "removed coibox, its config, its data and the $user user"
	else
		say "removed coibox; kept $etc and $data (--purge deletes them)"
	fi
	exit 0
fi

# The machine's architecture, as release tarballs name it.
case $(uname -m) in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
armv7l | armv7 | armv8l) arch=armv7 ;;
*) die "unsupported architecture $(uname -m) (amd64, arm64 and armv7 are)" ;;
esac

# Find or build the new binary into a temporary file.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tarball=
for f in "$here"/coibox-*-linux-"$arch".tar.gz; do
	[ -f "$f" ] && tarball=$f # the last in name order
done
if [ -n "${COIBOX_BIN:-}" ]; then
	cp "$COIBOX_BIN" "$tmp/coibox"
elif [ -x "$here/coibox" ]; then
	cp "$here/coibox" "$tmp/coibox"
elif [ -n "$tarball" ]; then
	tar -xzf "$tarball" -C "$tmp" coibox
elif [ -f "$here/go.mod" ] && grep -q '^module github.com/coibox/coibox' "$here/go.mod"; then
	command -v go >/dev/null || die "no release tarball here, and no Go to build from the checkout"
	say "building coibox from $here"
	(cd "$here" && CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o "$tmp/coibox" ./cmd/coibox)
else
	die "no coibox-*-linux-$arch.tar.gz beside this script, and not in a coibox checkout"
fi
chmod 0755 "$tmp/coibox"
"$tmp/coibox" version >/dev/null || die "the new binary does not run on this machine"
say "installing $("$tmp/coibox" version)"

# The service's user, and directories only it (and root) may read.
if ! id "$user" >/dev/null 2>&1; then
	if command -v adduser >/dev/null; then
		adduser --system --group --home "$data" --no-create-home --shell /usr/sbin/nologin "$user" >/dev/null
	else
		useradd --system --user-group --home-dir "$data" --no-create-home --shell /usr/sbin/nologin "$user"
	fi
fi
install -d -m 0750 -o root -g "$user" "$etc"
install -d -m 0750 -o "$user" -g "$user" "$data"

upgrade=0
backup=
if [ -f "$config" ]; then
	upgrade=1
elif [ -z "$address" ]; then
	die "first install: give the admin address: sh install.sh you@example.org"
fi

# Binary: the old one stays as coibox.prev until the new one is healthy.
if [ -f "$bin" ]; then
	cp -p "$bin" "$bin.prev"
fi
if [ $upgrade = 1 ] && [ -f "$data/coibox.db" ]; then
	# Outside the data directory, which backup refuses as a target.
	backup=$backups/$(date -u +%Y%m%dT%H%M%SZ)-$$
	say "backing up to $backup"
	install -d -m 0750 -o "$user" -g "$user" "$backups"
	if [ -x "$bin" ]; then
		runuser -u "$user" -- "$bin" --config "$config" backup "$backup" >/dev/null ||
			die "backup failed; nothing was changed"
	fi
fi
install -m 0755 "$tmp/coibox" "$bin.new"
mv -f "$bin.new" "$bin"

cat >"$unit" <<EOF
# Written by coibox's install.sh; a re-run of it rewrites this file.
[Unit]
Description=coibox mail and chat server
Documentation=https://github.com/coibox/coibox
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
ExecStart=$bin --config $config serve
Restart=on-failure
RestartSec=2s
TimeoutStopSec=30s
# Ports 25, 80, 443, 465, 587, 993 without root.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=$data
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
UMask=0027
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
EOF
chmod 0644 "$unit"

if [ $upgrade = 0 ]; then
	"$bin" --config "$config" quickstart --data-dir "$data" "$@" "$address" || die "quickstart failed"
	chown root:"$user" "$config"
	chmod 0640 "$config"
	chown -R "$user":"$user" "$data"
fi

if ! systemd_up; then
	say "systemd is not running here: installed, not started (systemctl enable --now coibox starts it)"
	exit 0
fi

systemctl daemon-reload
systemctl enable coibox.service >/dev/null 2>&1
systemctl restart coibox.service
if "$bin" --config "$config" health --wait 30s >/dev/null 2>&1; then
	rm -f "$bin.prev"
	say "coibox is running: $("$bin" version)"
	[ $upgrade = 1 ] || say "next: publish the DNS records printed above, then log in with the address and password"
	exit 0
fi

# Not healthy: put the previous binary back.
say "the new coibox did not become healthy within 30 s:"
journalctl -u coibox.service -n 20 --no-pager 2>/dev/null || true
if [ -f "$bin.prev" ]; then
	mv -f "$bin.prev" "$bin"
	systemctl restart coibox.service
	if "$bin" --config "$config" health --wait 30s >/dev/null 2>&1; then
		die "rolled back to the previous binary, which is running again"
	fi
	die "rolled back to the previous binary, but it is not healthy either${backup:+; the data before the upgrade is in $backup}"
fi
die "there is no previous binary to roll back to"
