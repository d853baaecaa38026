#!/usr/bin/env bash
# bench_leak.sh -- `medvault leak check` rows per second on one core (taskset
# -c 0): a store of PATIENTS seeded patients with 10 decoys, one of them a
# watermark, against a CSV dump of ROWS rows (750,000 by default, the size
# of the 2024 breach) with renamed columns, French dates, spaced NIRs and
# +33 phones: SAMPLE of the store's patients (one row each, half of them by
# NIR, half by family name + birth date), the watermark, and strangers for
# the rest, with valid NIRs except NO_NIR percent of them (10 by default;
# the 2024 dump had a NIR on every row) whose e-mail and phone are looked up
# instead: one HMAC per form tried, 5 per such row against about 1 for a row
# with a NIR (NO_NIR=100 is the worst case).  The report is checked (rows,
# matches, the watermark) before the time is printed.  Target: the whole
# file in < 5 s.
# usage: [NO_NIR=PCT] bench/bench_leak.sh BUILD_DIR [PATIENTS] [ROWS] [SAMPLE]
set -euo pipefail
B=${1:-build}; PATIENTS=${2:-2000}; ROWS=${3:-750000}; SAMPLE=${4:-200}; NO_NIR=${NO_NIR:-10}
M="$B/medvault"
command -v node >/dev/null || { echo "bench_leak: node is needed" >&2; exit 2; }
W=$(mktemp -d /tmp/medvault-bench-leak-XXXXXX)
trap 'rm -rf "$W"' EXIT
S=(--data "$W/d" --key-file "$W/k")

"$M" init "${S[@]}" > /dev/null
seed_start=$(date +%s.%N)
"$M" seed --patients "$PATIENTS" --staff 20 --seed 6 "${S[@]}" > /dev/null
seed_end=$(date +%s.%N)
"$M" decoy plant --count 10 "${S[@]}" > /dev/null
"$M" decoy watermark --output bench-export-1 --actor bench-etl --json "${S[@]}" > "$W/wm.json"
WM=$(sed -n 's/.*"patient":"\([^"]*\)".*/\1/p' "$W/wm.json")
sqlite3 "$W/d/medvault.db" "SELECT DISTINCT id FROM resources WHERE type = 'Patient'" |
    grep -v "$WM" | shuf -n "$SAMPLE" --random-source=<(yes) > "$W/sample"
{ while read -r id; do "$M" resource get "Patient/$id" "${S[@]}"; echo; done < "$W/sample"
  "$M" resource get "Patient/$WM" "${S[@]}"; echo; } > "$W/records.ndjson"

cat > "$W/dump.cjs" <<'EOF'
const fs = require("fs");
const [records, rows, out, noNir] = [process.argv[2], Number(process.argv[3]), process.argv[4],
    Number(process.argv[5])];
const recs = fs.readFileSync(records, "utf8").split("\n").filter(Boolean).map(JSON.parse);
const NIR = "urn:oid:1.2.250.1.213.1.4.8";
const keyOf = b => 97 - Number(BigInt(b.replace("2A", "19").replace("2B", "18")) % 97n);
const spaced = n => `${n[0]} ${n.slice(1, 3)} ${n.slice(3, 5)} ${n.slice(5, 7)} ${n.slice(7, 10)} ${n.slice(10, 13)} ${n.slice(13)}`;
const fr = d => d.split("-").reverse().join("/");
const fams = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"];
const lines = ["Nom;Prénom;Date de naissance;N° Sécu;Téléphone;E-mail"];
recs.forEach((r, i) => {
    const nir = r.identifier.find(x => x.system === NIR).value;
    const tel = r.telecom.find(t => t.system === "phone").value;
    const mail = r.telecom.find(t => t.system === "email").value;
    lines.push([r.name[0].family.toUpperCase(), r.name[0].given[0], fr(r.birthDate),
        i % 2 === 0 ? spaced(nir) : "", "+33" + tel.replace(/ /g, "").slice(1), mail].join(";"));
});
let chunk = [];
const fd = fs.openSync(out, "w");
fs.writeSync(fd, lines.join("\n") + "\n");
for (let i = 0; lines.length - 1 + i < rows; i++) {
    const body = `${1 + i % 2}${String(30 + i % 70).padStart(2, "0")}${String(1 + i % 12).padStart(2, "0")}99${String(i % 1000).padStart(3, "0")}${String(i % 997).padStart(3, "0")}`;
    const nir = i % 100 >= noNir ? spaced(body + String(keyOf(body)).padStart(2, "0")) : "";
    const d = `${String(1 + i % 28).padStart(2, "0")}/${String(1 + i % 12).padStart(2, "0")}/${1930 + i % 90}`;
    chunk.push([fams[i % 8] + "-x" + (i % 5000), "Jean", d, nir,
        `+33 9 ${String(i % 100).padStart(2, "0")} ${String((i >> 7) % 100).padStart(2, "0")} 99 ${String(i % 97).padStart(2, "0")}`,
        `person${i}@dump.invalid`].join(";"));
    if (chunk.length === 10000) { fs.writeSync(fd, chunk.join("\n") + "\n"); chunk = []; }
}
if (chunk.length) fs.writeSync(fd, chunk.join("\n") + "\n");
fs.closeSync(fd);
EOF
node "$W/dump.cjs" "$W/records.ndjson" "$ROWS" "$W/dump.csv" "$NO_NIR"
SIZE=$(du -m "$W/dump.csv" | cut -f1)

set +e
TIMEFORMAT='%R %U %S'
{ time taskset -c 0 "$M" leak check "$W/dump.csv" --json "${S[@]}" > "$W/report.json"; \
  echo $? > "$W/status"; } 2> "$W/time"
set -e
status=$(cat "$W/status")
read -r SECS USER_S SYS_S < "$W/time"
[ "$status" -eq 1 ] || { echo "bench_leak: exit $status, expected 1" >&2; exit 1; }
node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const [rows, sample] = [Number(process.argv[2]), Number(process.argv[3])];
    const wm = r.decoys.filter(d => d.purpose === "watermark" && d.output.actor === "bench-etl");
    if (r.rows !== rows || r.matched_rows < sample + 1 || wm.length !== 1 || r.unparseable !== 0) {
        console.error("bench_leak: unexpected report: " + JSON.stringify({ rows: r.rows,
            matched: r.matched_rows, unparseable: r.unparseable, decoys: r.decoys.length }));
        process.exit(1);
    }' "$W/report.json" "$ROWS" "$SAMPLE"
MATCHED=$(sed -n 's/.*"matched_rows":\([0-9]*\).*/\1/p' "$W/report.json")
CPU=$(echo "$USER_S + $SYS_S" | bc -l)
echo "| leak check: $ROWS-row CSV (${SIZE} MB, $NO_NIR% of rows without a NIR) against the blind indexes, one core (taskset -c 0), seed of the store: $(echo "$seed_end - $seed_start" | bc -l | xargs printf '%.0f') s | $PATIENTS patients, $MATCHED rows matched, watermark traced | $(printf '%.2f' "$SECS") s wall, $(printf '%.2f' "$CPU") s CPU: $(echo "$ROWS / $SECS" | bc -l | xargs printf '%.0f') rows/s ($(echo "$ROWS / $CPU" | bc -l | xargs printf '%.0f') per CPU second) |"
