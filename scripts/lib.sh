# The opening the scripts of scripts/ share: sourced by each of them, first
# thing after `set -euo pipefail`, as
#
#	. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It moves to the top of the repository and gives the helpers below. Those
# that serve a mount use the script's variables mnt (the mount point), pid
# (the FUSE server, empty when none runs) and log (the server's log).
# on_exit installs the cleanup, which must stop the server and unmount
# whatever the script ends by: an error, Ctrl-C (SIGINT), SIGTERM or SIGHUP.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

prog=scripts/${0##*/}

# die MESSAGE: prints "scripts/NAME: MESSAGE" on standard error and exits 1;
# a function die_more, if the script has one, adds to the message first.
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	if declare -F die_more >/dev/null; then die_more; fi
	exit 1
}

# step MESSAGE: the heading of a step of the script.
step() { printf '\n==> %s\n' "$*"; }

# install_packages PACKAGE...: installs the Debian packages (through sudo
# if not root); nothing without arguments.
install_packages() {
	(($#)) || return 0
	step "installing $*"
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "need root (or sudo) to install $*"
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update
	"${sudo[@]}" apt-get install -y "$@"
}

# need_go: puts Go on PATH (the official tarball installs to /usr/local/go)
# or dies.
need_go() {
	if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
		PATH=$PATH:/usr/local/go/bin
	fi
	command -v go >/dev/null || die "Go is not on PATH: install Go 1.26 or later from https://go.dev/dl/"
}

# seconds DURATION: prints DURATION (like 90s, 10m, 2h, or plain seconds)
# in seconds; fails if it is not one.
seconds() {
	local n=$1 mult=1
	case $n in
	*h) n=${n%h} mult=3600 ;;
	*m) n=${n%m} mult=60 ;;
	*s) n=${n%s} ;;
	esac
	[[ $n =~ ^[0-9]+$ ]] || return 1
	echo $((n * mult))
}

# machine: the machine in one line (cores, memory, kernel).
machine() {
	printf '%s cores, %s, Linux %s' "$(nproc)" "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" "$(uname -r)"
}

# build_tests BIN: builds the test binary of ./tests/ as BIN (with -race
# if RACE=1).
build_tests() {
	local build=(go test -c -o "$1")
	[[ ${RACE:-} == 1 ]] && build+=(-race)
	"${build[@]}" ./tests/
}

# mounted [DIR]: whether DIR (default $mnt) is a mount point.
mounted() { awk -v m="${1:-$mnt}" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }

# alive: whether the server $pid runs.
alive() { [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }

# await_mount NAME [PATTERN]: waits up to 10 s until the server $pid has
# mounted $mnt (and, given PATTERN, logged a line matching it to $log);
# dies with the log if it exits first or takes longer. The mount must
# answer statfs: through the command prefix in the array run_as if the
# script sets it (a mount an ordinary user made without allow_other
# answers only that user).
await_mount() {
	local name=$1 pattern=${2:-}
	for _ in $(seq 100); do
		if mounted && "${run_as[@]}" stat -f "$mnt" >/dev/null 2>&1 && { [[ -z $pattern ]] || grep -q "$pattern" "$log"; }; then
			return 0
		fi
		alive || { cat "$log" >&2; die "$name exited before mounting"; }
		sleep 0.1
	done
	cat "$log" >&2
	die "$name not mounted after 10s"
}

# unmount: unmounts $mnt with fusermount3 -u (once more after 2 s if that
# fails), waits for the server $pid to exit and sets srv to its exit
# status.
unmount() {
	fusermount3 -u "$mnt" || { sleep 2; fusermount3 -u "$mnt"; }
	srv=0
	wait "$pid" || srv=$?
	pid=
}

# teardown [TICKS]: stops the server $pid and unmounts $mnt whatever their
# state, for the cleanup: fusermount3 -u (five tries a second apart), then
# lazily; up to TICKS × 0.2 s (default 50) for the server to exit on its
# own, then SIGTERM, and SIGKILL 10 s later.
teardown() {
	local ticks=${1:-50}
	if alive; then
		for _ in 1 2 3 4 5; do
			mounted || break
			fusermount3 -u "$mnt" 2>/dev/null && break
			sleep 1
		done
		mounted && fusermount3 -u -z "$mnt"
		for _ in $(seq "$ticks"); do alive || break; sleep 0.2; done
		alive && kill -TERM "$pid"
		for _ in $(seq 50); do alive || break; sleep 0.2; done
		alive && kill -KILL "$pid"
		wait "$pid" 2>/dev/null
	fi
	pid=
	if mounted; then
		fusermount3 -u -z "$mnt" || umount -l "$mnt"
	fi
	mounted && echo "$prog: WARNING: $mnt is still mounted" >&2
	return 0
}

# on_exit FUNC: runs FUNC (with the exit status as $1, and errexit off) on
# every exit of the script; Ctrl-C, SIGTERM and SIGHUP exit with status 130.
on_exit() {
	exit_func=$1
	trap lib_exit EXIT
	trap 'echo "$prog: interrupted" >&2; exit 130' INT TERM HUP
}

# lib_exit is the EXIT trap of on_exit.
lib_exit() {
	local rc=$?
	set +e
	trap - INT TERM HUP
	"$exit_func" "$rc"
	exit "$rc"
}
