// slbctl's native addon: the few things Node cannot do itself.
//
// - enterNetns / leaveNetns: switch the calling thread's network namespace.
//   A socket stays in the namespace it was created in, so one process can
//   open capture sockets in several lab hosts by entering each namespace,
//   opening the socket, and coming back. setns(CLONE_NEWNET) acts on the
//   calling thread only and is allowed in a multithreaded process.
// - interfaceMac: an interface's MAC, read in the current thread's namespace.
// - netnsCookie: the kernel's 64-bit cookie of the current network namespace
//   (SO_NETNS_COOKIE). Unlike the namespace's inode it is never reused while
//   the machine runs, so a record written for one namespace is never taken
//   for another one that got the same inode later.
// - tryLock / unlock: flock(2) on a file. Node has no flock; the kernel drops
//   the lock when the last holder of the open file dies, even by SIGKILL, so
//   a crashed slbctl never leaves a namespace locked.
// - sealedInput: a program's whole input in an anonymous in-memory file
//   (memfd), written before the program starts. Fed through a pipe instead,
//   a slbctl killed while writing would leave nft a prefix of its script,
//   and a prefix of a script is often a valid, smaller transaction.
// - Capture (capture.cc): a live libpcap capture in the calling thread's
//   namespace, read without blocking, with the kernel's nanosecond timestamps.
// - nftRun (nft.cc): nftables transactions and listings in process through
//   libnftables, on the thread pool, in the caller's network namespace.
// - dumpLocalRoutes: the IPv4 routes of type local in table local, asked of
//   the kernel with strict checking (NETLINK_GET_STRICT_CHK), so the kernel
//   walks that one table: without it a dump is every route of every table,
//   a full Internet table on a balancer that speaks BGP. The socket option is
//   not one the netlink package can set, hence a socket of its own.
// - rtWatchOpen / rtWatchChanged / closeFd: a socket of rtnetlink's link,
//   IPv4 address and IPv4 route notifications, asked synchronously whether
//   anything came since it was last asked (drained without blocking, then a
//   round trip that every earlier notification precedes). The netlink
//   package aborts the process when such a socket overflows (ENOBUFS in its
//   poll handler); here an overflow is an answer: "changed".
// - nfnlBatch: an nfnetlink batch sent on a socket the caller keeps, and the
//   kernel's answers read back synchronously (it answers inside the send).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <napi.h>
#include "capture.h"
#include "nft.h"
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string>
#include <vector>

static const char* kSelfNs = "/proc/thread-self/ns/net";

static Napi::Value Fail(Napi::Env env, const std::string& what, int err) {
  Napi::Error::New(env, what + ": " + strerror(err)).ThrowAsJavaScriptException();
  return env.Undefined();
}

static Napi::Value EnterNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "enterNetns(path: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>();
  int saved = open(kSelfNs, O_RDONLY | O_CLOEXEC);
  if (saved < 0) return Fail(env, std::string("open ") + kSelfNs, errno);
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(saved);
    return Fail(env, "open network namespace " + path, err);
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(saved);
    return Fail(env, "enter network namespace " + path, err);
  }
  close(target);
  return Napi::Number::New(env, saved);
}

static Napi::Value LeaveNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "leaveNetns(savedFd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int saved = info[0].As<Napi::Number>().Int32Value();
  if (saved < 0) return Fail(env, "leaveNetns", EBADF);
  int rc = setns(saved, CLONE_NEWNET);
  int err = errno;
  close(saved);
  // Not recoverable by the caller: the main thread stays in the lab host's
  // namespace and every socket opened later would silently land there too.
  if (rc != 0) return Fail(env, "could not return this thread to its original network namespace", err);
  return env.Undefined();
}

static Napi::Value NetnsInode(const Napi::CallbackInfo& info) {
  struct stat st;
  if (stat(kSelfNs, &st) != 0) return Fail(info.Env(), std::string("stat ") + kSelfNs, errno);
  return Napi::Number::New(info.Env(), static_cast<double>(st.st_ino));
}

static Napi::Value InterfaceMac(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "interfaceMac(ifname: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string name = info[0].As<Napi::String>();
  if (name.size() >= IFNAMSIZ) return Fail(env, "interface " + name, ENAMETOOLONG);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(env, "socket", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.c_str(), name.size());
  int rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
  int err = errno;
  close(fd);
  if (rc != 0) return Fail(env, "read the MAC of interface " + name, err);
  const unsigned char* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  char text[18];
  snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return Napi::String::New(env, text);
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

static Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Fail(env, "socket", errno);
  unsigned long long cookie = 0;
  socklen_t len = sizeof(cookie);
  int rc = getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  int err = errno;
  close(fd);
  // Kernels before 5.14 have no namespace cookie: the caller falls back to the inode alone.
  if (rc != 0 && err == ENOPROTOOPT) return env.Undefined();
  if (rc != 0) return Fail(env, "read the network namespace cookie", err);
  return Napi::String::New(env, std::to_string(cookie));
}

// tryLock(path): an open file descriptor holding an exclusive flock on path
// (created 0600 if absent; a symlink is refused), or -1 when another process
// holds the lock. The descriptor is close-on-exec: children get it only when
// slbctl passes it on purpose.
static Napi::Value TryLock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "tryLock(path: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Fail(env, "open lock file " + path, errno);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return Napi::Number::New(env, -1);
    return Fail(env, "lock " + path, err);
  }
  return Napi::Number::New(env, fd);
}

static Napi::Value Unlock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "unlock(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) close(fd);
  return env.Undefined();
}

// sealedInput(content): a close-on-exec descriptor of a memfd holding content
// (UTF-8), sealed against any change and positioned at its start, for a child
// to read as its standard input. The caller closes it.
static Napi::Value SealedInput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "sealedInput(content: string)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string content = info[0].As<Napi::String>();
  int fd = memfd_create("slbctl-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return Fail(env, "memfd_create", errno);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Fail(env, "write the input", err);
    }
    done += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
    int err = errno;
    close(fd);
    return Fail(env, "seal the input", err);
  }
  return Napi::Number::New(env, fd);
}

// dumpLocalRoutes(): the raw netlink messages (RTM_NEWROUTE ..., no NLMSG_DONE)
// of a strictly checked dump of table local's local routes not made by the
// kernel for an address (those are what `ip addr` shows), in the calling
// thread's network namespace; undefined when the kernel refuses strict
// checking (before 4.20), so the caller dumps everything instead.
static Napi::Value DumpLocalRoutes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return Fail(env, "netlink socket", errno);
  int one = 1;
  if (setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one) != 0) {
    close(fd);
    return env.Undefined();
  }
  struct {
    struct nlmsghdr h;
    struct rtmsg r;
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = RTM_GETROUTE;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.h.nlmsg_seq = 1;
  req.r.rtm_family = AF_INET;
  req.r.rtm_table = RT_TABLE_LOCAL;
  req.r.rtm_type = RTN_LOCAL;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &req, sizeof req, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel) < 0) {
    int err = errno;
    close(fd);
    return Fail(env, "send the route dump request", err);
  }
  std::string out;
  std::vector<char> space(1 << 16);
  char* buf = space.data();
  for (;;) {
    ssize_t n = recv(fd, buf, space.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return Fail(env, "read the route dump", err);
    }
    bool done = false;
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != 1) continue;
      if (h->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
        close(fd);
        return Fail(env, "route dump", e->error < 0 ? -e->error : EPROTO);
      }
      // The kernel's own routes of local addresses (one per address: 10,000 on a balancer of 10,000 VIPs) are not asked for.
      const struct rtmsg* r = static_cast<const struct rtmsg*>(NLMSG_DATA(h));
      if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof *r) || r->rtm_protocol == RTPROT_KERNEL) continue;
      out.append(reinterpret_cast<const char*>(h), NLMSG_ALIGN(h->nlmsg_len));
    }
    if (done) break;
  }
  close(fd);
  return Napi::Buffer<char>::Copy(env, out.data(), out.size());
}

// A netlink socket of `protocol` in the calling thread's namespace, bound to
// `groups` (the legacy bitmask), as a descriptor the caller closes.
static Napi::Value OpenNetlink(Napi::Env env, int protocol, int flags, uint32_t groups) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, protocol);
  if (fd < 0) return Fail(env, "netlink socket", errno);
  struct sockaddr_nl local;
  memset(&local, 0, sizeof local);
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&local), sizeof local) != 0) {
    int err = errno;
    close(fd);
    return Fail(env, "bind a netlink socket", err);
  }
  return Napi::Number::New(env, fd);
}

// rtWatchOpen(): a nonblocking rtnetlink socket in the calling thread's
// namespace, joined to the link, IPv4 address and IPv4 route groups.
static Napi::Value RtWatchOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return OpenNetlink(env, NETLINK_ROUTE, SOCK_NONBLOCK, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE);
}

// Read whatever is queued without blocking: true when anything (or an
// overflow) was there.
static bool Drain(int fd, std::vector<char>& space) {
  bool any = false;
  for (;;) {
    ssize_t n = recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0) {
      any = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOBUFS) {
      any = true;
      continue;
    }
    return any;
  }
}

// rtWatchChanged(fd, ask): whether a notification came since the last call.
// ask: also make sure every notification sent before this call was read (a
// request for link 1 on the same socket, whose answer comes after them);
// when it cannot (no answer within a second), says true.
static Napi::Value RtWatchChanged(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) {
    Napi::TypeError::New(env, "rtWatchChanged(fd: number, ask: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool ask = info[1].As<Napi::Boolean>().Value();
  std::vector<char> space(1 << 16);
  bool changed = Drain(fd, space);
  if (!ask) return Napi::Boolean::New(env, changed);
  struct sockaddr_nl local;
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &len) != 0) return Napi::Boolean::New(env, true);
  static uint32_t seq = 0;
  struct {
    struct nlmsghdr h;
    struct ifinfomsg i;
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = sizeof req;
  req.h.nlmsg_type = RTM_GETLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST;
  req.h.nlmsg_seq = ++seq;
  req.i.ifi_index = 1;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &req, sizeof req, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel) < 0)
    return Napi::Boolean::New(env, true);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int ready = poll(&p, 1, 1000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return Napi::Boolean::New(env, true);
    ssize_t n = recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      changed = true;
      continue;
    }
    bool answered = false;
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(space.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq == req.h.nlmsg_seq && h->nlmsg_pid == local.nl_pid) answered = true;
      else changed = true;
    }
    if (answered) return Napi::Boolean::New(env, changed);
  }
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "closeFd(fd: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  close(info[0].As<Napi::Number>().Int32Value());
  return env.Undefined();
}

// nfnlOpen(): an nfnetlink socket in the calling thread's namespace.
static Napi::Value NfnlOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return OpenNetlink(env, NETLINK_NETFILTER, 0, 0);
}

// nfnlBatch(fd, batch, first, last): send the batch, then read the answers
// until one for each sequence number in (first, last] has come, or an error
// for `first` (the batch refused whole), or a second without any. Returns
// the answers as raw netlink messages (NLMSG_ERROR ones).
static Napi::Value NfnlBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsBuffer() || !info[2].IsNumber() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "nfnlBatch(fd: number, batch: Buffer, first: number, last: number)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> batch = info[1].As<Napi::Buffer<char>>();
  uint32_t first = info[2].As<Napi::Number>().Uint32Value();
  uint32_t last = info[3].As<Napi::Number>().Uint32Value();
  std::vector<char> space(1 << 16);
  // Answers left from an earlier batch (a timeout) must not be taken for this one's.
  Drain(fd, space);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, batch.Data(), batch.Length(), 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof kernel) < 0)
    return Fail(env, "send the nfnetlink batch", errno);
  std::string out;
  std::vector<bool> seen(last - first, false);
  size_t missing = last - first;
  bool failed = false;
  while (missing > 0) {
    struct pollfd p = {fd, POLLIN, 0};
    // The kernel answers inside the send: once a command failed, what is not queued yet will not come.
    int ready = poll(&p, 1, failed ? 0 : 1000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    ssize_t n = recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Fail(env, "read the nfnetlink answers", errno);
    bool refused = false;
    for (struct nlmsghdr* h = reinterpret_cast<struct nlmsghdr*>(space.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      out.append(reinterpret_cast<const char*>(h), NLMSG_ALIGN(h->nlmsg_len));
      const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(h));
      if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int)) && e->error != 0) failed = true;
      if (h->nlmsg_seq == first) refused = true;
      else if (h->nlmsg_seq > first && h->nlmsg_seq <= last && !seen[h->nlmsg_seq - first - 1]) {
        seen[h->nlmsg_seq - first - 1] = true;
        missing--;
      }
    }
    if (refused) break;
  }
  return Napi::Buffer<char>::Copy(env, out.data(), out.size());
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("enterNetns", Napi::Function::New(env, EnterNetns));
  exports.Set("leaveNetns", Napi::Function::New(env, LeaveNetns));
  exports.Set("netnsInode", Napi::Function::New(env, NetnsInode));
  exports.Set("interfaceMac", Napi::Function::New(env, InterfaceMac));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie));
  exports.Set("tryLock", Napi::Function::New(env, TryLock));
  exports.Set("unlock", Napi::Function::New(env, Unlock));
  exports.Set("sealedInput", Napi::Function::New(env, SealedInput));
  exports.Set("dumpLocalRoutes", Napi::Function::New(env, DumpLocalRoutes));
  exports.Set("rtWatchOpen", Napi::Function::New(env, RtWatchOpen));
  exports.Set("rtWatchChanged", Napi::Function::New(env, RtWatchChanged));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("nfnlOpen", Napi::Function::New(env, NfnlOpen));
  exports.Set("nfnlBatch", Napi::Function::New(env, NfnlBatch));
  InitCapture(env, exports);
  InitNft(env, exports);
  return exports;
}

NODE_API_MODULE(slbctl_native, Init)
