#!/usr/bin/env bash
# `npm run images`: builds local stand-in images of etcd and ZooKeeper from the installed Debian
# binaries, for `sharedstruct/testing`'s runtime 'container' on a machine that reaches no registry
# (CI). No Dockerfile, no base image: each image is `docker import` of a tarball of exactly what
# the server needs, the libraries `ldd` names included.
#
#   etcd       /usr/bin/etcd + etcdctl, libc and the loader, an empty /tmp     (~40 MB)
#   zookeeper  the host's JRE (no jmods/include/man/docs), /usr/share/java, /etc/java-*,
#              /etc/zookeeper/conf, the libraries of java and libjvm, /conf/zoo.cfg   (~240 MB)
#
# Names: $SHAREDSTRUCT_ETCD_IMAGE / $SHAREDSTRUCT_ZOOKEEPER_IMAGE, by default
# sharedstruct/etcd:local and sharedstruct/zookeeper:local (what the harness then uses when the
# same variables are exported). The ZooKeeper image runs `QuorumPeerMain /conf/zoo.cfg`, as the
# official image reads /conf/zoo.cfg; the harness mounts its own config there.
set -euo pipefail

ETCD_IMAGE=${SHAREDSTRUCT_ETCD_IMAGE:-sharedstruct/etcd:local}
ZK_IMAGE=${SHAREDSTRUCT_ZOOKEEPER_IMAGE:-sharedstruct/zookeeper:local}

die() { echo "npm run images: $*" >&2; exit 1; }
command -v docker >/dev/null || die "no docker CLI: apt-get install -y docker.io"
docker info >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}): start dockerd"
ETCD=$(command -v etcd || true)
ETCDCTL=$(command -v etcdctl || true)
[ -n "$ETCD" ] && [ -n "$ETCDCTL" ] || die "no etcd binaries: apt-get install -y etcd-server etcd-client"
JAVA=$(readlink -f "$(command -v java || true)")
[ -x "$JAVA" ] && [ -f /usr/share/java/zookeeper.jar ] || die "no ZooKeeper: apt-get install -y zookeeper"
JRE=$(dirname "$(dirname "$JAVA")")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The shared libraries ELF files need (absolute paths, the loader included), minus those inside $JRE.
libs_of() {
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $1 !~ /:$/ { print $1 }' | grep -v "^$JRE/" | sort -u
}
# Adds host paths to a tar with their names (dereferenced: the image has no symlink targets).
add_deref() { local tarfile=$1; shift; tar -rhf "$tarfile" -C / "${@#/}"; }

started=$(date +%s%N)
echo "etcd: $ETCD ($("$ETCD" --version | head -1)) -> $ETCD_IMAGE"
mkdir -p "$work/etcd/tmp"
tar -cf "$work/etcd.tar" -C "$work/etcd" tmp
# shellcheck disable=SC2046
add_deref "$work/etcd.tar" "$ETCD" "$ETCDCTL" $(libs_of "$ETCD" "$ETCDCTL")
docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'CMD ["etcd"]' "$work/etcd.tar" "$ETCD_IMAGE" >/dev/null
echo "  $(docker image inspect -f '{{.Size}}' "$ETCD_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }') in $(( ($(date +%s%N) - started) / 1000000 )) ms"

started=$(date +%s%N)
echo "zookeeper: /usr/share/java/zookeeper.jar on $JRE -> $ZK_IMAGE"
mkdir -p "$work/zk/conf" "$work/zk/tmp"
cat > "$work/zk/conf/zoo.cfg" <<'EOF'
# Replaced by the harness's own (a bind mount); this one runs a standalone server on 2181.
tickTime=2000
dataDir=/tmp/zookeeper
clientPort=2181
admin.enableServer=false
EOF
tar -cf "$work/zk.tar" -C "$work/zk" conf tmp
# The JRE as installed (its own symlinks into /etc/java-* kept, those files added below).
tar -rf "$work/zk.tar" -C / --exclude="${JRE#/}/jmods" --exclude="${JRE#/}/include" --exclude="${JRE#/}/man" --exclude="${JRE#/}/docs" "${JRE#/}" usr/share/java etc/zookeeper/conf
for d in /etc/java-*; do tar -rf "$work/zk.tar" -C / "${d#/}"; done
# shellcheck disable=SC2046
add_deref "$work/zk.tar" $(libs_of "$JAVA" $(find "$JRE/lib" -name '*.so'))
CLASSPATH=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar
docker import \
  -c "ENV PATH=$JRE/bin:/usr/bin:/bin" \
  -c "ENTRYPOINT [\"$JRE/bin/java\", \"-cp\", \"$CLASSPATH\", \"org.apache.zookeeper.server.quorum.QuorumPeerMain\", \"/conf/zoo.cfg\"]" \
  "$work/zk.tar" "$ZK_IMAGE" >/dev/null
echo "  $(docker image inspect -f '{{.Size}}' "$ZK_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }') in $(( ($(date +%s%N) - started) / 1000000 )) ms"
