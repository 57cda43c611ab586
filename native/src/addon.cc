// slbctl's native addon: the few things Node cannot do itself.
//
// - enterNetns / leaveNetns: switch the calling thread's network namespace.
//   A socket stays in the namespace it was created in, so one process can
//   open capture sockets in several lab hosts by entering each namespace,
//   opening the socket, and coming back. setns(CLONE_NEWNET) acts on the
//   calling thread only and is allowed in a multithreaded process.
// - interfaceMac: an interface's MAC, read in the current thread's namespace.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <napi.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string>

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

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("enterNetns", Napi::Function::New(env, EnterNetns));
  exports.Set("leaveNetns", Napi::Function::New(env, LeaveNetns));
  exports.Set("netnsInode", Napi::Function::New(env, NetnsInode));
  exports.Set("interfaceMac", Napi::Function::New(env, InterfaceMac));
  return exports;
}

NODE_API_MODULE(slbctl_native, Init)
