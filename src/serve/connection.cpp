#include "serve/connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace duan::serve {
namespace {

// Address and port of a socket name, in the form httplib reports (numeric host).
bool name_of(const sockaddr_storage& ss, std::string& addr, int& port) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        if (!inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf)) return false;
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        if (!inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf)) return false;
        port = ntohs(a->sin6_port);
    } else {
        return false;
    }
    addr = buf;
    return true;
}

bool matches(int fd, const std::string& local_addr, int local_port, const std::string& remote_addr,
             int remote_port) {
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
    sockaddr_storage peer{}, self{};
    socklen_t lp = sizeof peer, ls = sizeof self;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &lp) != 0) return false;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&self), &ls) != 0) return false;
    std::string pa, sa;
    int pp = -1, sp = -1;
    if (!name_of(peer, pa, pp) || !name_of(self, sa, sp)) return false;
    // Ports must match; addresses too where httplib reported them (IPv4-mapped forms aside).
    if (pp != remote_port || sp != local_port) return false;
    auto same = [](const std::string& a, const std::string& b) {
        return b.empty() || a == b || a == "::ffff:" + b || b == "::ffff:" + a;
    };
    return same(pa, remote_addr) && same(sa, local_addr);
}

// Open descriptors: /proc/self/fd where it exists (Linux, Android), else every number below
// the descriptor limit.
std::vector<int> open_fds() {
    std::vector<int> fds;
    if (DIR* d = opendir("/proc/self/fd")) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            fds.push_back(std::atoi(e->d_name));
        }
        closedir(d);
        return fds;
    }
    rlimit rl{};
    const int limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                          ? static_cast<int>(rl.rlim_cur)
                          : 65536;
    for (int fd = 0; fd < limit; ++fd) fds.push_back(fd);
    return fds;
}

}  // namespace

int find_connection_socket(const std::string& local_addr, int local_port,
                           const std::string& remote_addr, int remote_port) {
    if (local_port <= 0 || remote_port <= 0) return -1;
    for (int fd : open_fds())
        if (matches(fd, local_addr, local_port, remote_addr, remote_port)) return fd;
    return -1;
}

bool peer_closed(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return false;  // nothing to read: still connected
    if (p.revents & (POLLERR | POLLNVAL)) return true;
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;                                     // orderly shutdown (FIN)
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // reset
    return false;
}

}  // namespace duan::serve
