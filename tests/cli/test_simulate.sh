#!/usr/bin/env bash
# medvault simulate: the misuse detector's targets (issues 5 and 13), asserted on a
# small hospital so that `make test` keeps them: every bulk read-out
# contained at 20 patients or fewer, a break-the-glass spree at 10, a decoy
# at the first read, spraying and stuffing yielding no account, the slow
# read-outs detected before 500 patients, insiders snooping alerted at once,
# and the legitimate workload under 1 false alert per 100 user-days and
# without lockouts.  Also: the same seed gives the same table, and the
# command's usage errors.
. "$(dirname "$0")/lib.sh"

SIZE=(--days 8 --staff 60 --patients 1500 --seed 7)

# field LINE KEY: the value of KEY in one compact JSON line
field() { printf '%s\n' "$1" | sed -E "s/.*\"$2\":(\"[^\"]*\"|[^,}]*).*/\1/"; }
row() {  # MODEL SCENARIO: the JSON line of that row
    printf '%s\n' "$JSON" | grep -F "\"scenario\":\"$2\",\"model\":$1,"
}
le() {  # A B WHAT: A <= B (numbers)
    if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; then pass; else fail "$3: $1 > $2"; fi
}
lt() {
    if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; then pass; else fail "$3: $1 >= $2"; fi
}

run 0 "$MEDVAULT" simulate "${SIZE[@]}" --json
JSON=$OUT
expect_eq "$(printf '%s\n' "$JSON" | wc -l)" "28" "13 scenarios + benign, twice"

for model in false true; do
    for sc in bulk-service bulk-everything bulk-new-account; do
        r=$(row $model $sc)
        expect_eq "$(field "$r" contained)" "true" "$sc contained (model $model)"
        le "$(field "$r" exposed)" 20 "$sc exposed (model $model)"
    done
    r=$(row $model btg-spree)
    expect_eq "$(field "$r" contained)" "true" "btg-spree contained (model $model)"
    le "$(field "$r" exposed)" 10 "btg-spree exposed (model $model)"
    r=$(row $model decoy)
    expect_eq "$(field "$r" contained)" "true" "decoy contained (model $model)"
    expect_eq "$(field "$r" decoys_released)" "0" "no decoy disclosed (model $model)"
    expect_eq "$(field "$r" met)" "true" "decoy contained at its first read (model $model)"
    for sc in spraying stuffing; do
        r=$(row $model $sc)
        expect_eq "$(field "$r" yielded)" "0" "$sc yields no account (model $model)"
        expect_eq "$(field "$r" alerted)" "true" "$sc alerted (model $model)"
    done
    r=$(row $model slow-readout)
    expect_eq "$(field "$r" alerted)" "true" "slow read-out detected (model $model)"
    lt "$(field "$r" exposed_at_alert)" 500 "slow read-out detected early (model $model)"
    for sc in snoop-vip snoop-relative; do
        r=$(row $model $sc)
        expect_eq "$(field "$r" alerted)" "true" "$sc alerted (model $model)"
        expect_eq "$(field "$r" exposed_at_alert)" "0" "$sc alerted at the first read"
    done
    # issue 13: many stolen accounts, each under its own limits, from as many
    # addresses: the hospital-wide count holds them all to 30 patients
    r=$(row $model spread)
    le "$(field "$r" exposed)" 30 "spread over 10 accounts (model $model)"
    expect_eq "$(field "$r" alerted)" "true" "spread alerted (model $model)"
    # a busy worklist session reading outside its list, a few a day
    r=$(row $model worklist)
    expect_eq "$(field "$r" contained)" "true" "worklist session contained (model $model)"
    lt "$(field "$r" exposed)" 20 "patients outside the worklist (model $model)"
    r=$(row $model benign)
    lt "$(field "$r" false_alerts_per_1000)" 10 "false alerts per 1,000 user-days (model $model)"
    expect_eq "$(field "$r" lockouts)" "0" "no false lockout (model $model)"
done
# the careful slow read-out (only explained patients) is the model's to see
r=$(row true slow-readout-careful)
expect_eq "$(field "$r" alerted)" "true" "careful read-out detected by rules + model"
lt "$(field "$r" exposed_at_alert)" 500 "careful read-out detected before 500"

# the same seed, the same table
run 0 "$MEDVAULT" simulate "${SIZE[@]}" --scenario bulk-service
TABLE1=$OUT
run 0 "$MEDVAULT" simulate "${SIZE[@]}" --scenario bulk-service
expect_eq "$OUT" "$TABLE1" "deterministic for a seed"
expect_contains "$TABLE1" "| bulk-service | rules alone |" "table row, rules alone"
expect_contains "$TABLE1" "| bulk-service | rules + model |" "table row, rules + model"
expect_contains "$TABLE1" "false alerts / 1,000 user-days" "benign columns"
run 0 "$MEDVAULT" simulate "${SIZE[@]}" --scenario benign --rules-only
expect_not_contains "$OUT" "rules + model" "--rules-only"

# usage errors: one line, status 2
run 2 "$MEDVAULT" simulate --scenario nonsense
expect_one_line "$ERR" "unknown scenario"
run 2 "$MEDVAULT" simulate --days 0
run 2 "$MEDVAULT" simulate --staff 3
run 2 "$MEDVAULT" simulate extra
run 0 "$MEDVAULT" simulate --help
expect_contains "$OUT" "usage: medvault simulate" "help"

finish
