// The client connection behind a request, for noticing a client that hung up while a
// non-streamed generation runs. httplib 0.11 (Debian 12) hands handlers the request but not its
// socket; the socket is found by its addresses instead (unique on this host while the handler
// runs, since httplib closes it only after the handler returns).
#pragma once

#include <string>

namespace duan::serve {

// The descriptor whose local and peer address/port equal the request's, or -1 if none is found
// (then the caller simply cannot notice a disconnect).
int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port);

// True when the peer has closed or reset the connection. Never blocks and never consumes data:
// a peeked byte (a pipelined request) means the peer is still there.
bool peer_closed(int fd);

}  // namespace duan::serve
