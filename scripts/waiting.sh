# waiting.sh - sourced by setup.sh, demo.sh and test.sh: long steps that say
# they are still alive, and apt calls that wait for another process's lock
# instead of failing on it.  A step silent for minutes looks like a hang;
# an apt lock held by, say, unattended-upgrades is normal on a fresh machine.

# with_progress <what> <command...>: runs the command and prints a line every
# MCGQ_PROGRESS_SECONDS (20) seconds while it runs; returns its exit status.
# The command runs in the background so this shell can count; it keeps the
# shell's stdout and stderr.
with_progress() {
  local what=$1 every=${MCGQ_PROGRESS_SECONDS:-20} start=$SECONDS
  shift
  "$@" &
  local pid=$! rc=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( (SECONDS - start) % every == 0 )) && kill -0 "$pid" 2>/dev/null; then
      printf '  ... %s: still running (%d s)\n' "$what" $((SECONDS - start))
    fi
  done
  wait "$pid" || rc=$?
  return $rc
}

# The processes that hold apt's or dpkg's lock while they run.
apt_lock_holders() {
  command -v pgrep >/dev/null || return 1
  pgrep -a -x 'apt|apt-get|aptitude|dpkg|unattended-upgr|unattended-upgrade' 2>/dev/null
}

# wait_for_apt_lock: returns once no apt/dpkg process runs (at most
# MCGQ_APT_WAIT_SECONDS, default 1800), saying every 20 s what it waits for.
wait_for_apt_lock() {
  local limit=${MCGQ_APT_WAIT_SECONDS:-1800} start=$SECONDS holders
  while holders=$(apt_lock_holders); do
    if (( SECONDS - start >= limit )); then
      printf 'apt is still busy after %d s (%s): giving up waiting\n' \
        $((SECONDS - start)) "$(echo "$holders" | head -1)" >&2
      return 1
    fi
    if (( (SECONDS - start) % 20 == 0 )); then
      printf 'another process holds the apt lock (%s): waiting for it to finish (%d s)\n' \
        "$(echo "$holders" | head -1 | cut -c1-100)" $((SECONDS - start))
    fi
    sleep 1
  done
  return 0
}

# Options for every apt-get call after wait_for_apt_lock: they cover the race
# of another apt starting between the check and the call (apt >= 1.9.11
# waits that long for the lock; older ones ignore the option).
APT_LOCK_WAIT=(-o DPkg::Lock::Timeout=600)
