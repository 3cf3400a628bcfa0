#!/bin/sh
# make demo: record the shipped sample with a 15k cutoff, show the store, answer a query.
set -eu
TM=${1:-build/tm}
SAMPLE=sample/sample.pcap
STORE=demo-store
rm -rf "$STORE" demo-answer.pcap
echo "== tm record --store $STORE --read $SAMPLE --cutoff 15k --segment-size 1m"
"$TM" record --store "$STORE" --read "$SAMPLE" --cutoff 15k --segment-size 1m
echo
echo "== tm stats --store $STORE"
"$TM" stats --store "$STORE"
HOST=$(cat sample/sample.host)
echo
echo "== tm query --store $STORE --explain 'host $HOST and tcp'"
"$TM" query --store "$STORE" --explain "host $HOST and tcp"
echo
echo "== tm query --store $STORE 'host $HOST and tcp' -w demo-answer.pcap; tcpdump -nn -r demo-answer.pcap | head"
"$TM" query --store "$STORE" "host $HOST and tcp" -w demo-answer.pcap
tcpdump -nn -r demo-answer.pcap 2>/dev/null | head -n 15
echo "($(tcpdump -nn -r demo-answer.pcap 2>/dev/null | wc -l) packets in demo-answer.pcap)"
echo
echo "== the web page: start the API over the demo store (read-only), then open the URL"
echo "   $TM serve --store $STORE --listen 127.0.0.1:8910"
echo "   http://127.0.0.1:8910/"
