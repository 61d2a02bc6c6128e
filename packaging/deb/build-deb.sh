#!/bin/bash
# build-deb.sh: build the vipd .deb with dpkg-deb from a static binary, then check it
# with lintian. `make deb` runs it from the top of the source tree:
#
#   packaging/deb/build-deb.sh BINARY OUTDIR [ARCH]
#
# BINARY   the static-pie musl build with TLS (make static: target/static/vipd)
# OUTDIR   where vipd_VERSION_ARCH.deb is written (the staging tree goes to OUTDIR/root)
# ARCH     Debian architecture, default amd64
#
# Environment: DEB_MAINTAINER (default "vipd maintainers <vipd@example.org>");
# VIPD_REQUIRE_LINTIAN=1 fails when lintian is not installed (make test sets it).
# The version is Cargo.toml's; packaging/deb/changelog must start with it.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 BINARY OUTDIR [ARCH]" >&2
    exit 2
fi
binary=$1
outdir=$2
arch=${3:-amd64}
maintainer=${DEB_MAINTAINER:-vipd maintainers <vipd@example.org>}

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deb=$top/packaging/deb
die() {
    echo "build-deb: $*" >&2
    exit 1
}

[ -f "$binary" ] || die "$binary not found (make static builds it)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (a Debian system is needed)"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$top/Cargo.toml" | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
changelog_version=$(sed -n '1s/^vipd (\([^)]*\)).*/\1/p' "$deb/changelog")
[ "$changelog_version" = "$version" ] ||
    die "packaging/deb/changelog starts with version '$changelog_version', Cargo.toml has '$version'"

# The binary must be static: the package depends on nothing.
if command -v file >/dev/null; then
    case $(file -b "$binary") in
    *static-pie\ linked* | *statically\ linked*) ;;
    *) die "$binary is not a static executable: $(file -b "$binary")" ;;
    esac
fi

# Every crate linked into the binary must be named in the copyright file.
if command -v cargo >/dev/null; then
    crates=$(cd "$top" && cargo tree --quiet --edges normal --prefix none \
        --target x86_64-unknown-linux-musl --format '{p}' | awk '{ print $1 }' | sort -u)
    [ -n "$crates" ] || die "cargo tree listed no crates"
    copyright_text=" $(tr -s ' \n' '  ' <"$deb/copyright")"
    for crate in $crates; do
        [ "$crate" = vipd ] && continue
        case $copyright_text in
        *" $crate ("*) ;;
        *) die "crate $crate is linked into vipd but not named in packaging/deb/copyright" ;;
        esac
    done
else
    echo "build-deb: cargo not found: the copyright file's crate list is not checked" >&2
fi

# SOURCE_DATE_EPOCH: the changelog's date, so that the package does not depend on
# when it was built (dpkg-deb clamps file times to it).
changelog_date=$(sed -n 's/^ -- .*>  \(.*\)$/\1/p' "$deb/changelog" | head -n 1)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date -d "$changelog_date" +%s)}
export SOURCE_DATE_EPOCH

root=$outdir/root
rm -rf "$root"
umask 022
mkdir -p "$root/DEBIAN"

put() { # put MODE SOURCE DEST (DEST relative to the package root)
    install -D -m "$1" "$2" "$root/$3"
}
put_gz() { # put_gz SOURCE DEST.gz
    mkdir -p "$(dirname "$root/$2")"
    gzip -9 -n -c "$1" >"$root/$2"
    chmod 0644 "$root/$2"
}

put 0755 "$binary" usr/sbin/vipd
# As dh_strip does: the .comment section (compiler versions) is of no use.
if command -v objcopy >/dev/null; then
    objcopy --remove-section=.comment "$root/usr/sbin/vipd"
fi
# The vip-manager command: the same program (it does not look at its name).
mkdir -p "$root/usr/bin"
ln -s ../sbin/vipd "$root/usr/bin/vip-manager"

put_gz "$top/man/vipd.8" usr/share/man/man8/vipd.8.gz
put_gz "$top/man/vipd.conf.5" usr/share/man/man5/vipd.conf.5.gz
ln -s vipd.8.gz "$root/usr/share/man/man8/vip-manager.8.gz"

doc=usr/share/doc/vipd
put 0644 "$deb/copyright" "$doc/copyright"
put_gz "$deb/changelog" "$doc/changelog.gz"
put_gz "$top/README.md" "$doc/README.md.gz"
put 0644 "$top/packaging/vipd.yml" "$doc/examples/vipd.yml"
put 0644 "$top/packaging/examples/replica.yml" "$doc/examples/replica.yml"
put 0644 "$top/packaging/examples/sync.yml" "$doc/examples/sync.yml"
put 0644 "$top/packaging/examples/hetzner.yml" "$doc/examples/hetzner.yml"
put 0644 "$top/packaging/examples/hetzner-cloud.yml" "$doc/examples/hetzner-cloud.yml"
put 0644 "$top/packaging/runit/run" "$doc/examples/runit/run"
put 0644 "$top/packaging/runit/log/run" "$doc/examples/runit/log/run"
put 0644 "$top/packaging/openrc/vipd.initd" "$doc/examples/openrc/vipd.initd"
put 0644 "$top/packaging/openrc/vipd.confd" "$doc/examples/openrc/vipd.confd"
# Not a conffile: /etc/default/vip-manager belongs to the vip-manager package,
# whose file an existing set-up keeps (taking it over would stop the installation
# at a conffile prompt wherever it was edited).
put 0644 "$top/packaging/systemd/vip-manager.default" "$doc/examples/vip-manager.default"

units=lib/systemd/system
put 0644 "$top/packaging/systemd/vipd.service" "$units/vipd.service"
put 0644 "$top/packaging/systemd/vipd@.service" "$units/vipd@.service"
put 0644 "$top/packaging/systemd/vip-manager.service" "$units/vip-manager.service"
# An alias: vip-manager@NAME is vipd@NAME, so existing instances keep their name.
ln -s vipd@.service "$root/$units/vip-manager@.service"

put 0755 "$top/packaging/sysvinit/vipd" etc/init.d/vipd
put 0644 "$top/packaging/sysvinit/vipd.default" etc/default/vipd
put 0644 "$top/packaging/sysvinit/vipd.logrotate" etc/logrotate.d/vipd

# Control area.
for script in postinst prerm postrm; do
    install -m 0755 "$deb/$script" "$root/DEBIAN/$script"
done
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print |
    sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
built_using=
if musl=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' musl-dev 2>/dev/null); then
    built_using=$musl
fi
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" -e "s|@BUILT_USING@|$built_using|" \
    -e '/^Built-Using: $/d' "$deb/control.in" >"$root/DEBIAN/control"

# Directories 0755, files as installed above; owner root (--root-owner-group).
find "$root" -type d -exec chmod 0755 {} +
package=$outdir/vipd_${version}_$arch.deb
rm -f "$package"
dpkg-deb --root-owner-group -Zxz --build "$root" "$package" >/dev/null
echo "built $package ($(wc -c <"$package" | tr -d ' ') bytes)"

# lintian: no error tag may remain (none is overridden: the package ships no
# override file). Its full output is printed.
if command -v lintian >/dev/null; then
    echo "lintian $package"
    lintian --display-level '>=pedantic' --fail-on error "$package" ||
        die "lintian reports errors"
    echo "lintian: no errors"
elif [ "${VIPD_REQUIRE_LINTIAN:-}" = 1 ]; then
    die "lintian not found (apt-get install lintian)"
else
    echo "build-deb: lintian not found: the package is not checked (apt-get install lintian)" >&2
fi
