// nftRun: an nftables script or command run in this process through
// libnftables, on libuv's thread pool, answered by a Promise.
//
// Why in process: `nft -f -` forks a large Node process, starts libnftables
// and fills its cache from the kernel at every transaction; a context kept
// here does each of those once.
//
// Namespaces: nft_ctx_new opens the context's netlink socket, and a socket
// stays in the namespace it was created in (checked on libnftables 1.0.6: a
// context made in a lab namespace and used from the root one lists the lab's
// tables). setns is per thread, and a pool thread may sit in any namespace
// (threads inherit their creator's). So nftRun takes the calling thread's
// namespace when it is called, and the pool thread enters it, makes or finds
// the context there, runs the script there (interface names are resolved
// through the thread's namespace too), and returns to its own namespace.
//
// Contexts: the one of the namespace the addon was loaded in (the process's
// own) is kept, and its cache of the kernel's objects with it. A context made
// for another namespace is freed after its call: its socket would keep that
// namespace alive after `ip netns del`, with its interfaces and veth peers.
//
// All or nothing: libnftables builds the whole batch (BEGIN, the commands,
// END) in memory and hands it to the kernel in one sendmsg. The kernel copies
// a netlink message whole before nfnetlink reads it, and nfnetlink commits a
// batch only when it reaches END, aborting it otherwise; the commit runs
// inside that sendmsg, which a signal (even SIGKILL) does not cut short. So a
// slbctl killed mid-send commits all of the batch or nothing, and its write
// lock (a flock held by this process) is released only after the commit.
//
// One call at a time: libnftables keeps process-wide state besides the
// context, so one mutex serialises every call; a pool thread waiting on it is
// the price, and slbctl's calls are one transaction at a time anyway.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "nft.h"
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mutex>
#include <string>

namespace {

const char* kSelfNs = "/proc/thread-self/ns/net";

std::mutex g_lock;
nft_ctx* g_home = nullptr;
struct stat g_homeNs;

bool SameNs(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

nft_ctx* NewContext() {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return nullptr;
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  return ctx;
}

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, std::string script, bool json, bool dryRun, int target)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), script_(std::move(script)), json_(json),
        dryRun_(dryRun), target_(target) {}
  ~RunWorker() override {
    if (target_ >= 0) close(target_);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    struct stat want, here;
    if (fstat(target_, &want) != 0 || stat(kSelfNs, &here) != 0) return SetError(std::string("nftRun: read the network namespace: ") + strerror(errno));
    int saved = -1;
    if (!SameNs(want, here)) {
      saved = open(kSelfNs, O_RDONLY | O_CLOEXEC);
      if (saved < 0) return SetError(std::string("nftRun: open ") + kSelfNs + ": " + strerror(errno));
      if (setns(target_, CLONE_NEWNET) != 0) {
        int err = errno;
        close(saved);
        return SetError(std::string("nftRun: enter the caller's network namespace: ") + strerror(err));
      }
    }
    RunHere(SameNs(want, g_homeNs));
    if (saved >= 0) {
      // A pool thread left in another namespace would run later work there (getaddrinfo, sockets):
      // not something to report and carry on from.
      if (setns(saved, CLONE_NEWNET) != 0) {
        fprintf(stderr, "slbctl: nftRun could not return a thread-pool thread to its network namespace: %s\n", strerror(errno));
        abort();
      }
      close(saved);
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("ok", Napi::Boolean::New(env, rc_ == 0));
    r.Set("output", Napi::String::New(env, output_));
    r.Set("error", Napi::String::New(env, error_));
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void RunHere(bool home) {
    std::lock_guard<std::mutex> hold(g_lock);
    nft_ctx* ctx = home ? g_home : nullptr;
    if (!ctx) ctx = NewContext();
    if (!ctx) return SetError("nftRun: libnftables could not make a context (netlink socket)");
    if (home) g_home = ctx;
    unsigned int flags = nft_ctx_output_get_flags(ctx);
    nft_ctx_output_set_flags(ctx, json_ ? flags | NFT_CTX_OUTPUT_JSON : flags & ~NFT_CTX_OUTPUT_JSON);
    nft_ctx_set_dry_run(ctx, dryRun_);
    rc_ = json_ ? nft_run_cmd_from_buffer(ctx, script_.c_str()) : RunAsFile(ctx);
    const char* out = nft_ctx_get_output_buffer(ctx);
    const char* err = nft_ctx_get_error_buffer(ctx);
    output_ = out ? out : "";
    error_ = json_ ? (err ? err : "") : fileError_;
    if (!home) nft_ctx_free(ctx);
  }

  // A script goes in as a file, as `nft -f` reads it: libnftables 1.0.6 quotes the first line of a
  // buffer under every error, whatever line the error is on, and names no line; from a file it names
  // and quotes the right one. The file is a memfd, its /proc path replaced by "line " in the errors.
  int RunAsFile(nft_ctx* ctx) {
    int fd = memfd_create("slbctl-nft", MFD_CLOEXEC);
    if (fd < 0) return SetError(std::string("nftRun: memfd_create: ") + strerror(errno)), -1;
    size_t done = 0;
    while (done < script_.size()) {
      ssize_t n = write(fd, script_.data() + done, script_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        close(fd);
        return SetError(std::string("nftRun: write the script: ") + strerror(err)), -1;
      }
      done += static_cast<size_t>(n);
    }
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    int rc = nft_run_cmd_from_filename(ctx, path.c_str());
    close(fd);
    const char* err = nft_ctx_get_error_buffer(ctx);
    std::string text = err ? err : "";
    for (size_t at; (at = text.find(path + ":")) != std::string::npos;) text.replace(at, path.size() + 1, "line ");
    fileError_ = text;
    return rc;
  }

  Napi::Promise::Deferred deferred_;
  std::string fileError_;
  std::string script_;
  bool json_;
  bool dryRun_;
  int target_;
  int rc_ = -1;
  std::string output_;
  std::string error_;
};

// nftRun(script: string, json: boolean, dryRun: boolean): Promise<{ ok, output, error }>
Napi::Value NftRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsBoolean() || !info[2].IsBoolean()) {
    Napi::TypeError::New(env, "nftRun(script: string, json: boolean, dryRun: boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // The caller's namespace, taken now: by the time a pool thread runs this, the caller may have left it.
  int target = open(kSelfNs, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    Napi::Error::New(env, std::string("nftRun: open ") + kSelfNs + ": " + strerror(errno)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new RunWorker(env, info[0].As<Napi::String>(), info[1].As<Napi::Boolean>(), info[2].As<Napi::Boolean>(), target);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitNft(Napi::Env env, Napi::Object exports) {
  // The process's own namespace: the addon is loaded outside inNetns (entering needs the addon loaded).
  if (stat(kSelfNs, &g_homeNs) != 0) memset(&g_homeNs, 0, sizeof(g_homeNs));
  exports.Set("nftRun", Napi::Function::New(env, NftRun));
}
