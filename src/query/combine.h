// Combining filters: a selector tm builds (the packets of a flow, of a Community ID) with the
// user's own filter, as one tcpdump filter text that the parser or libpcap reads as it is.
#pragma once

#include <string>
#include <string_view>

namespace tmach::query {

// "(a) and (b)": each side in parentheses, so an `or` inside either keeps its precedence
// ("host x or host y" and-ed with "port 53" is not "host x or (host y and port 53)"). A side that
// is empty or all blanks gives the other side unchanged. Throws std::invalid_argument when a
// side's parentheses do not balance: "port 53) or (host z" would otherwise close the
// parentheses put around it and widen the whole filter; the message names the side by `a_name`
// / `b_name` and the offending position.
std::string and_filters(std::string_view a, std::string_view b, std::string_view a_name = "filter",
                        std::string_view b_name = "filter");

}  // namespace tmach::query
