#include "tools/admin_client.h"

#include <fcntl.h>
#include <httplib.h>
#include <sys/file.h>
#include <unistd.h>

namespace forkd::tools {

namespace {

bool Request(const Config& config, bool post, const std::string& path, AdminReply* reply,
             std::string* error) {
  const admin::Listen& a = config.admin.address;
  // A server on every interface is reached on this machine's loopback.
  std::string host = a.host;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  httplib::Client client(host, a.port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(30, 0);
  httplib::Headers headers;
  // An IPv6 address needs its brackets in Host, which httplib leaves out.
  if (host.find(':') != std::string::npos) {
    headers.emplace("Host", "[" + host + "]:" + std::to_string(a.port));
  }
  if (!config.admin.token.empty()) {
    headers.emplace("Authorization", "Bearer " + config.admin.token);
  }
  auto res = post ? client.Post(path, headers, "", "text/plain") : client.Get(path, headers);
  if (!res) {
    *error = "forkd is not answering on " + config.admin.listen + " (" +
             httplib::to_string(res.error()) + ")";
    return false;
  }
  reply->status = res->status;
  reply->body = res->body;
  return true;
}

}  // namespace

bool AdminPost(const Config& config, const std::string& path, AdminReply* reply,
               std::string* error) {
  return Request(config, true, path, reply, error);
}

bool AdminGet(const Config& config, const std::string& path, AdminReply* reply,
              std::string* error) {
  return Request(config, false, path, reply, error);
}

bool ForkdRunning(const Config& config, int* lock_fd) {
  *lock_fd = -1;
  const std::string path = config.data_dir + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;  // no forkd ever ran here
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return true;
  }
  *lock_fd = fd;
  return false;
}

std::string AdminRefusalHint(const Config& config, int status) {
  if (status != 401 && status != 403) return "";
  if (config.admin.token.empty()) {
    return "the admin API refused the request; if that forkd has a token, give this command "
           "the same one: admin.token_file in " +
           config.path + ", or FORK_ADMIN_TOKEN";
  }
  return "the admin API refused the token from " + config.admin.token_source +
         "; it must be the one the running forkd was started with";
}

}  // namespace forkd::tools
