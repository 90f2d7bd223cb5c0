# Shared by the bench scripts that alternate two variants of one run (source it).
# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# col K ROW...: the median of field K of the rows ("<wall s> <cpu s> <peak RSS MiB>").
col() { local k=$1; shift; printf '%s\n' "$@" | awk -v k="$k" '{print $k}' | median; }
