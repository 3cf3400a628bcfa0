##! Time Machine coupling for Zeek: on a notice, keep the suspect whole and fetch its history.
##!
##! For every notice whose type is in TimeMachine::notices (all notices when the set is
##! empty), this script
##!   1. puts the notice's originator (or its `src`) into the dynamic class
##!      TimeMachine::keep_class of a running `tm serve` for TimeMachine::keep_for
##!      (POST /api/v1/classes; the class must exist in tm's configuration with cutoff none),
##!      so that what the host does next is recorded without cutoff, and
##!   2. writes the packets tm holds of the notice's connection (or of the host within
##!      TimeMachine::window around the notice) to TimeMachine::evidence_dir/<uid>.pcap
##!      (GET /api/v1/query, through curl run by Exec).
##!
##! UNTESTED HERE: no Zeek package exists for the machines tm is built on; the HTTP calls are
##! the ones docs/API.md describes and tests/e2e exercise with curl. `tm evidence --zeek
##! notice.log --follow --server URL --keep 2h` does the same from the log instead, and is tested.
##!
##! Load it with: @load /path/to/contrib/zeek/tm-evidence.zeek
##! and set, e.g.: redef TimeMachine::url = "http://127.0.0.1:8910";

@load base/frameworks/notice
@load base/utils/active-http
@load base/utils/exec

module TimeMachine;

export {
	## tm serve's API.
	const url = "http://127.0.0.1:8910" &redef;
	## The bearer token (empty: none; tm allows that on loopback only).
	const token = "" &redef;
	## The class without cutoff the suspect is put into, and for how long.
	const keep_class = "suspect" &redef;
	const keep_for = "2h" &redef;
	## Where the evidence pcaps go (must exist); empty: fetch none.
	const evidence_dir = "/var/lib/tm-evidence" &redef;
	## A notice without a connection: the host's packets this long before and after it.
	const window = 5min &redef;
	## The notice types acted on; empty: all.
	const notices: set[Notice::Type] = {} &redef;
}

function raise_class(host: addr)
	{
	local req = ActiveHTTP::Request($url = url + "/api/v1/classes", $method = "POST",
	                                $client_data = fmt("{\"host\": \"%s\", \"class\": \"%s\", \"for\": \"%s\"}",
	                                                   host, keep_class, keep_for),
	                                $addl_curl_args = "-H 'Content-Type: application/json'" +
	                                    (token == "" ? "" : fmt(" -H 'Authorization: Bearer %s'", token)));
	when [req] ( local resp = ActiveHTTP::request(req) )
		{
		if ( resp$code != 200 )
			Reporter::warning(fmt("tm: raising %s to class %s failed: %d %s", host, keep_class, resp$code, resp$body));
		}
	}

# Percent-encodes what the filters built here hold that a query string must not carry as is
# (spaces; ':' of IPv6 addresses; parentheses, kept out of the shell's way).
function qs(s: string): string
	{
	return gsub(gsub(gsub(gsub(gsub(gsub(s, /%/, "%25"), / /, "%20"), /:/, "%3A"), /\//, "%2F"), /\(/, "%28"),
	            /\)/, "%29");
	}

function fetch(name: string, filter: string, from: time, to: time)
	{
	if ( evidence_dir == "" )
		return;
	local q = fmt("%s/api/v1/query?filter=%s&from=%.6f&to=%.6f", url, qs(filter),
	              time_to_double(from), time_to_double(to));
	local cmd = fmt("curl -sf %s -o %s/%s.pcap '%s'",
	                token == "" ? "" : fmt("-H 'Authorization: Bearer %s'", token),
	                evidence_dir, name, q);
	when [cmd, name] ( local r = Exec::run([$cmd = cmd]) )
		{
		if ( r$exit_code != 0 )
			Reporter::warning(fmt("tm: evidence %s not fetched (curl exit %d)", name, r$exit_code));
		}
	}

# tm's filter for the packets of a connection. Zeek's ICMP "ports" are the type and code, which
# tcpdump's `port` does not match (and Zeek says icmp for ICMPv6 too): an ICMP connection is its
# hosts; a protocol Zeek does not know ("unknown") is no tcpdump keyword: the hosts alone.
function connection_filter(id: conn_id): string
	{
	local hosts = fmt("host %s and host %s", id$orig_h, id$resp_h);
	switch ( get_port_transport_proto(id$resp_p) )
		{
		case tcp:
			return fmt("tcp and %s and port %d and port %d", hosts, port_to_count(id$orig_p),
			           port_to_count(id$resp_p));
		case udp:
			return fmt("udp and %s and port %d and port %d", hosts, port_to_count(id$orig_p),
			           port_to_count(id$resp_p));
		case icmp:
			return fmt("(icmp or icmp6) and %s", hosts);
		default:
			return hosts;
		}
	}

hook Notice::policy(n: Notice::Info)
	{
	if ( |notices| > 0 && n$note !in notices )
		return;
	if ( n?$id )
		{
		raise_class(n$id$orig_h);
		local f = connection_filter(n$id);
		local start = n?$conn ? n$conn$start_time : n$ts - window;
		fetch(n?$uid ? n$uid : fmt("notice-%.0f", time_to_double(n$ts)), f, start, n$ts + window);
		}
	else if ( n?$src )
		{
		raise_class(n$src);
		fetch(fmt("%s-%.0f", n$src, time_to_double(n$ts)), fmt("host %s", n$src), n$ts - window, n$ts + window);
		}
	}
