# Shared by the bench scripts that alternate variants of one run (source it).
# release_bin: sets TESSERA_BIN to the release build (made first) unless it is set.
release_bin() {
    if [[ -z "${TESSERA_BIN:-}" ]]; then
        local root
        root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
        (cd "$root" && cargo build --release --quiet --bin tessera)
        TESSERA_BIN="${CARGO_TARGET_DIR:-$root/target}/release/tessera"
    fi
}
# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# col K ROW...: the median of field K of the rows ("<wall s> <cpu s> <peak RSS MiB>").
col() { local k=$1; shift; printf '%s\n' "$@" | awk -v k="$k" '{print $k}' | median; }
