#!/bin/sh
# Installs a built switchyard (`make build`) as a systemd service:
#   $PREFIX/lib/switchyard/       the program: dist/, the addon, the BPF object, production node_modules
#   $PREFIX/bin/switchyard        the command (runs the program with this node)
#   /etc/switchyard/config.json   the example config, only if there is none yet
#   /etc/systemd/system/switchyard.service
# DESTDIR stages everything under another root (packaging, tests); systemd is
# only told (daemon-reload) when installing for real on a machine it runs.
# Nothing is enabled or started.
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-/etc/systemd/system}
NODE=${NODE:-$(command -v node || true)}

src=$(cd "$(dirname "$0")/.." && pwd)
lib=$PREFIX/lib/switchyard

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

case $PREFIX in /*) ;; *) fail "PREFIX must be an absolute path, got '$PREFIX'" ;; esac
[ -n "$NODE" ] || fail "node not found in PATH (set NODE=/path/to/node)"
for f in dist/cli/main.js dist/worker/main.js native/build/Release/switchyard.node native/build/steering.bpf.o; do
  [ -e "$src/$f" ] || fail "$f is missing: run 'make build' first"
done

# Stage the whole tree next to its destination, then swap it in: a half-copied
# tree is never what $PREFIX/bin/switchyard runs.
stage=$DESTDIR$lib.new.$$
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/dist" "$stage/native/build/Release" "$stage/config"
cp "$src/package.json" "$src/README.md" "$stage/"
cp "$src/bin/switchyard.js" "$stage/bin/"
# Tests and benchmarks stay behind. Times kept: a bundle is used only while no module is newer (common/bundle-choice.ts).
for d in cli common config native supervisor worker; do cp -pR "$src/dist/$d" "$stage/dist/"; done
cp "$src/native/build/Release/switchyard.node" "$stage/native/build/Release/"
cp "$src/native/build/steering.bpf.o" "$stage/native/build/"
cp -R "$src/config/examples" "$stage/config/"
# The Grafana dashboard and the Prometheus alerting rules, for the operator to import.
cp -R "$src/ops" "$stage/"
# Production dependencies only, as npm resolved them (no network needed).
(cd "$src" && npm ls --omit=dev --all --parseable) | while read -r dir; do
  rel=${dir#"$src"/}
  [ "$rel" != "$dir" ] || continue # the project itself
  mkdir -p "$stage/$(dirname "$rel")"
  cp -R "$dir" "$stage/$rel"
done
[ -d "$stage/node_modules/chokidar" ] || fail "could not copy node_modules (run 'make build' first)"

mkdir -p "$DESTDIR$PREFIX/lib"
if [ -e "$DESTDIR$lib" ]; then
  mv "$DESTDIR$lib" "$DESTDIR$lib.old.$$"
  mv "$stage" "$DESTDIR$lib"
  rm -rf "$DESTDIR$lib.old.$$"
else
  mv "$stage" "$DESTDIR$lib"
fi
trap - EXIT

mkdir -p "$DESTDIR$PREFIX/bin"
cat > "$DESTDIR$PREFIX/bin/switchyard.tmp" <<EOF
#!/bin/sh
exec "$NODE" "$lib/bin/switchyard.js" "\$@"
EOF
chmod 0755 "$DESTDIR$PREFIX/bin/switchyard.tmp"
mv "$DESTDIR$PREFIX/bin/switchyard.tmp" "$DESTDIR$PREFIX/bin/switchyard"

# An operator's config is never overwritten.
mkdir -p "$DESTDIR$SYSCONFDIR/switchyard"
if [ ! -e "$DESTDIR$SYSCONFDIR/switchyard/config.json" ]; then
  install -m 0644 "$src/config/examples/default.json" "$DESTDIR$SYSCONFDIR/switchyard/config.json"
  echo "installed the example config: $SYSCONFDIR/switchyard/config.json"
fi

mkdir -p "$DESTDIR$UNITDIR"
sed -e "s#/usr/local/bin/switchyard#$PREFIX/bin/switchyard#g" \
    -e "s#/usr/local/lib/switchyard#$lib#g" \
    -e "s#/etc/switchyard/config.json#$SYSCONFDIR/switchyard/config.json#g" \
    "$src/systemd/switchyard.service" > "$DESTDIR$UNITDIR/switchyard.service.tmp"
chmod 0644 "$DESTDIR$UNITDIR/switchyard.service.tmp"
mv "$DESTDIR$UNITDIR/switchyard.service.tmp" "$DESTDIR$UNITDIR/switchyard.service"

echo "installed switchyard in $DESTDIR$lib, $DESTDIR$PREFIX/bin/switchyard, $DESTDIR$UNITDIR/switchyard.service"
# /run/systemd/system exists only while systemd is PID 1 (sd_booted(3)); a
# staged (DESTDIR) or elsewhere-put unit is none of the running systemd's business.
if [ -z "$DESTDIR" ] && [ "$UNITDIR" = /etc/systemd/system ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "next: edit $SYSCONFDIR/switchyard/config.json, then: systemctl enable --now switchyard"
else
  echo "no daemon-reload: systemd is not running here, or the unit was not installed in /etc/systemd/system"
fi
