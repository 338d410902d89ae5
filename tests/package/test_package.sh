#!/usr/bin/env bash
# test_package (ctest label `package`): builds the .deb and .rpm packages with CPack from
# this build tree, inspects them, verifies the systemd units, then installs the .debs on
# this machine (root only: CI's machine is a fresh one), checks the installed config and
# binaries, upgrades to a rebuilt package and checks an edited conffile and the state
# survive, removes (config and state stay) and purges (both go).
#
#   test_package.sh BUILD_DIR SOURCE_DIR VERSION
#
# Refuses to touch a machine where livemig packages are already installed (exit 77: ctest
# reports the test as skipped and says why).
set -euo pipefail
build=$1 src=$2 version=$3
work=$(mktemp -d)
pkgs=(livemig-agent livemig-controlplane livemig)
installed_by_us=0

fail() { printf 'test_package: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'test_package: ok: %s\n' "$*"; }
purge_all() {
    if [ "$installed_by_us" = 1 ]; then
        dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap purge_all EXIT

# ---- build both formats, and a second version for the upgrade ----
(cd "$build" && cpack -G "DEB;RPM" -B "$work/v1" >"$work/cpack1.log" 2>&1) ||
    fail "cpack: $(tail -20 "$work/cpack1.log")"
next="$version.1"
(cd "$build" && cpack -G DEB -B "$work/v2" -D CPACK_PACKAGE_VERSION="$next" >"$work/cpack2.log" 2>&1) ||
    fail "cpack (upgrade build): $(tail -20 "$work/cpack2.log")"
deb() { echo "$work/$1/$2_${3}_amd64.deb"; }
rpmf() { echo "$work/v1/$1-$version-1.x86_64.rpm"; }
for p in "${pkgs[@]}"; do
    [ -f "$(deb v1 "$p" "$version")" ] || fail "no .deb for $p: $(ls "$work/v1")"
    [ -f "$(rpmf "$p")" ] || fail "no .rpm for $p: $(ls "$work/v1")"
done
ok "cpack built 3 .deb and 3 .rpm packages (version $version) and an upgrade build ($next)"

# ---- the .debs ----
agent_deb=$(deb v1 livemig-agent "$version")
cp_deb=$(deb v1 livemig-controlplane "$version")
cli_deb=$(deb v1 livemig "$version")
[ "$(dpkg-deb -f "$agent_deb" Version)" = "$version" ] || fail "agent .deb version"
depends=$(dpkg-deb -f "$agent_deb" Depends)
for lib in libmongoc-1.0-0 libcurl4 libyaml-0-2 libmicrohttpd12 passwd; do
    [[ $depends == *"$lib"* ]] || fail "agent Depends lacks $lib: $depends"
done
[[ $(dpkg-deb -f "$cp_deb" Depends) == *libsqlite3-0* ]] || fail "control plane Depends lacks libsqlite3-0"
contents=$(dpkg-deb -c "$agent_deb")
for f in ./usr/bin/livemig-agent ./usr/lib/systemd/system/livemig-agent.service \
    ./etc/livemig/agent.yaml; do
    grep -q " $f\$" <<<"$contents" || fail "agent .deb lacks $f"
done
grep -q ' ./usr/bin/livemig-controlplane$' <<<"$(dpkg-deb -c "$cp_deb")" || fail "control plane binary"
grep -q ' ./usr/bin/livemig$' <<<"$(dpkg-deb -c "$cli_deb")" || fail "CLI binary"
mkdir -p "$work/ctl"
dpkg-deb -e "$agent_deb" "$work/ctl/agent"
[ "$(cat "$work/ctl/agent/conffiles")" = /etc/livemig/agent.yaml ] || fail "agent conffiles"
dpkg-deb -e "$cp_deb" "$work/ctl/cp"
[ "$(cat "$work/ctl/cp/conffiles")" = /etc/livemig/controlplane.yaml ] || fail "cp conffiles"
grep -q useradd "$work/ctl/agent/postinst" || fail "agent postinst creates no user"
grep -q 'rm -rf /var/lib/livemig$' "$work/ctl/agent/postrm" || fail "agent postrm purge"
# the shipped configs are what the binaries print: every key, commented
dpkg-deb -x "$agent_deb" "$work/root"
dpkg-deb -x "$cp_deb" "$work/root"
diff <("$build/agent/livemig-agent" --sample-config) "$work/root/etc/livemig/agent.yaml" ||
    fail "conf/agent.yaml is stale: livemig-agent --sample-config > conf/agent.yaml"
diff <("$build/controlplane/livemig-controlplane" --sample-config) \
    "$work/root/etc/livemig/controlplane.yaml" ||
    fail "conf/controlplane.yaml is stale: livemig-controlplane --sample-config > conf/controlplane.yaml"
ok ".deb: version, Depends from the linked libraries, files, conffiles, maintainer scripts, configs"

# ---- the .rpms ----
agent_rpm=$(rpmf livemig-agent)
[ "$(rpm -qp --qf '%{VERSION}' "$agent_rpm" 2>/dev/null)" = "$version" ] || fail "rpm version"
files=$(rpm -qlp "$agent_rpm" 2>/dev/null)
grep -qx /usr/bin/livemig-agent <<<"$files" || fail "rpm lacks the binary"
grep -qx /usr/lib/systemd/system/livemig-agent.service <<<"$files" || fail "rpm lacks the unit"
[ "$(rpm -qp --configfiles "$agent_rpm" 2>/dev/null)" = /etc/livemig/agent.yaml ] || fail "rpm %config"
long=$(rpm -qlvp "$agent_rpm" 2>/dev/null)
grep -q -- '-rw-r----- .* root *livemig .*/etc/livemig/agent.yaml' <<<"$long" ||
    fail "rpm: agent.yaml is not 0640 root:livemig: $long"
scripts=$(rpm -qp --scripts "$agent_rpm" 2>/dev/null)
for s in preinstall postinstall preuninstall postuninstall useradd 'try-restart'; do
    [[ $scripts == *"$s"* ]] || fail "rpm scripts lack $s"
done
grep -q 'libmongoc-1.0.so.0' <<<"$(rpm -qp --requires "$agent_rpm" 2>/dev/null)" || fail "rpm requires"
ok ".rpm: version, files, %config 0640 root:livemig, scriptlets, Requires"

# ---- the units ----
# as packaged, with ExecStart pointed at this build's binary (verify wants it to exist)
mkdir -p "$work/units"
for u in livemig-agent livemig-controlplane; do
    unit="$work/root/usr/lib/systemd/system/$u.service"
    bin=$build/agent/$u
    [ $u = livemig-agent ] || bin=$build/controlplane/$u
    sed "s|/usr/bin/$u|$bin|" "$unit" >"$work/units/$u.service"
    out=$(systemd-analyze verify "$work/units/$u.service" 2>&1) ||
        fail "systemd-analyze verify $u: $out"
    [ -z "$out" ] || fail "systemd-analyze verify $u warns: $out"
    user=livemig
    [ $u = livemig-agent ] || user=livemig-cp
    for key in 'Restart=on-failure' "User=$user\$" 'NoNewPrivileges=yes' 'ProtectSystem=strict' \
        'UMask=0077' 'ReadWritePaths=/var/lib/' 'LimitCORE=0$' 'SystemCallFilter=@system-service' \
        'ProtectProc=invisible' 'ProcSubset=pid' 'MemoryDenyWriteExecute=yes' 'LockPersonality=yes' \
        'RestrictNamespaces=yes' 'CapabilityBoundingSet=$' 'RestrictAddressFamilies=' \
        'PrivateIPC=yes'; do
        grep -q "^$key" "$unit" || fail "$u.service lacks $key"
    done
    # systemd's own rating of the sandbox (it was 3.2 before the options above)
    if systemd-analyze security --help 2>&1 | grep -q -- --offline; then
        level=$(systemd-analyze security --offline=yes "$work/units/$u.service" 2>&1 |
            sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }' ||
            fail "$u.service: systemd-analyze security exposure '$level' (want <= 2.0)"
    fi
done
ok "systemd-analyze verify and security: both units, own users, no core dumps, sandboxed"

# ---- installed on this machine ----
if [ "$(id -u)" != 0 ]; then
    echo "test_package: SKIP install: not root (CI runs as root on a fresh machine)"
    exit 77
fi
for p in "${pkgs[@]}"; do
    if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q installed; then
        echo "test_package: SKIP install: $p is installed here already; not touching it"
        exit 77
    fi
done
installed_by_us=1
dpkg -i "$agent_deb" "$cp_deb" "$cli_deb" >"$work/install.log" 2>&1 || fail "dpkg -i: $(cat "$work/install.log")"
getent passwd livemig >/dev/null || fail "no livemig user"
getent passwd livemig-cp >/dev/null || fail "no livemig-cp user (the control plane's)"
! id -nG livemig | tr ' ' '\n' | grep -qx livemig-cp &&
    ! id -nG livemig-cp | tr ' ' '\n' | grep -qx livemig ||
    fail "the agent's and the control plane's users share a group"
[ "$(stat -c '%a %U %G' /var/lib/livemig)" = "700 livemig livemig" ] ||
    fail "/var/lib/livemig is $(stat -c '%a %U %G' /var/lib/livemig)"
[ "$(stat -c '%a %U %G' /var/lib/livemig-controlplane)" = "700 livemig-cp livemig-cp" ] ||
    fail "/var/lib/livemig-controlplane"
[ "$(stat -c '%a %U %G' /etc/livemig/agent.yaml)" = "640 root livemig" ] ||
    fail "/etc/livemig/agent.yaml is $(stat -c '%a %U %G' /etc/livemig/agent.yaml)"
[ "$(stat -c '%a %U %G' /etc/livemig/controlplane.yaml)" = "640 root livemig-cp" ] ||
    fail "/etc/livemig/controlplane.yaml is $(stat -c '%a %U %G' /etc/livemig/controlplane.yaml)"
# one service cannot read the other's state
! runuser -u livemig -- ls /var/lib/livemig-controlplane >/dev/null 2>&1 ||
    fail "the agent's user can read the control plane's state"
! runuser -u livemig-cp -- ls /var/lib/livemig >/dev/null 2>&1 ||
    fail "the control plane's user can read the agent's state"
[ "$(/usr/bin/livemig-agent --version)" = "livemig-agent $version" ] || fail "--version"
out=$(runuser -u livemig -- /usr/bin/livemig-agent --config /etc/livemig/agent.yaml --check-config 2>&1) ||
    fail "--check-config as livemig: $out"
[ "$out" = "/etc/livemig/agent.yaml: OK" ] || fail "--check-config said: $out"
# an unconfigured control plane says what is missing, with the exit code systemd will not retry
set +e
out=$(/usr/bin/livemig-controlplane --config /etc/livemig/controlplane.yaml --check-config 2>&1)
rc=$?
set -e
[ $rc = 2 ] && [[ $out == *"tls.cert_file"* ]] || fail "control plane --check-config: $rc $out"
# the agent started without a link-token refuses with exit 2 and says what to do
set +e
out=$(runuser -u livemig -- timeout 20 /usr/bin/livemig-agent --config /etc/livemig/agent.yaml 2>&1)
rc=$?
set -e
[ $rc = 2 ] && [[ $out == *"not linked"* ]] || fail "agent without a token: $rc $out"
/usr/bin/livemig --help >/dev/null 2>&1 || fail "livemig --help"
# nothing enabled or started by the install
state=$(systemctl is-enabled livemig-agent 2>/dev/null || true)
[ "$state" = disabled ] || fail "livemig-agent is '$state' after install"
systemd-analyze verify /usr/lib/systemd/system/livemig-agent.service \
    /usr/lib/systemd/system/livemig-controlplane.service || fail "verify the installed units"
ok "installed: user, /var/lib dirs 0700, config 0640 root:livemig, --version, --check-config, not enabled"

# ---- upgrade keeps an edited conffile and the state ----
sed -i 's/^log_level: info$/log_level: debug  # edited by test_package/' /etc/livemig/agent.yaml
grep -q 'edited by test_package' /etc/livemig/agent.yaml || fail "could not edit the conffile"
echo marker >/var/lib/livemig/marker
dpkg -i --force-confold "$(deb v2 livemig-agent "$next")" >"$work/upgrade.log" 2>&1 ||
    fail "upgrade: $(cat "$work/upgrade.log")"
[ "$(dpkg-query -W -f '${Version}' livemig-agent)" = "$next" ] || fail "not upgraded"
grep -q 'edited by test_package' /etc/livemig/agent.yaml || fail "the upgrade lost the edited conffile"
[ -f /var/lib/livemig/marker ] || fail "the upgrade lost the state"
[ "$(stat -c '%a %U %G' /etc/livemig/agent.yaml)" = "640 root livemig" ] || fail "upgrade changed modes"
ok "upgrade to $next: edited conffile and state kept"

# ---- an upgrade from a version whose control plane ran as livemig hands its files over ----
echo marker >/var/lib/livemig-controlplane/cp.db
chown livemig:livemig /var/lib/livemig-controlplane/cp.db
chgrp livemig /etc/livemig/controlplane.yaml
dpkg -i --force-confold "$(deb v2 livemig-controlplane "$next")" >"$work/upgrade-cp.log" 2>&1 ||
    fail "control plane upgrade: $(cat "$work/upgrade-cp.log")"
[ "$(stat -c '%U %G' /var/lib/livemig-controlplane/cp.db)" = "livemig-cp livemig-cp" ] ||
    fail "the upgrade left the control plane's database to $(stat -c '%U' /var/lib/livemig-controlplane/cp.db)"
[ "$(stat -c '%a %U %G' /etc/livemig/controlplane.yaml)" = "640 root livemig-cp" ] ||
    fail "the upgrade left controlplane.yaml as $(stat -c '%a %U %G' /etc/livemig/controlplane.yaml)"
ok "control plane upgrade from a livemig-owned install: database and config handed to livemig-cp"

# ---- remove keeps config and state; purge removes them ----
dpkg -r livemig-agent >"$work/remove.log" 2>&1 || fail "remove: $(cat "$work/remove.log")"
[ ! -e /usr/bin/livemig-agent ] || fail "remove left the binary"
[ -f /etc/livemig/agent.yaml ] && [ -f /var/lib/livemig/marker ] || fail "remove took config or state"
dpkg -P livemig-agent >"$work/purge.log" 2>&1 || fail "purge: $(cat "$work/purge.log")"
[ ! -e /etc/livemig/agent.yaml ] || fail "purge left the config"
[ ! -e /var/lib/livemig ] || fail "purge left /var/lib/livemig"
[ -f /etc/livemig/controlplane.yaml ] || fail "purging the agent took the control plane's config"
dpkg -P livemig-controlplane livemig >"$work/purge2.log" 2>&1 || fail "purge: $(cat "$work/purge2.log")"
[ ! -e /etc/livemig ] && [ ! -e /var/lib/livemig-controlplane ] || fail "purge left files"
installed_by_us=0
ok "remove kept config and state; purge removed them"
