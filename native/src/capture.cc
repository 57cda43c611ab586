// Capture: one live libpcap handle, opened in the calling thread's network
// namespace, with the kernel's nanosecond timestamps.
//
// Why our own and not the `cap` package: cap hands JS no timestamp, so frames
// could only be stamped when the event loop got them. Here every frame keeps
// the time the kernel put on it at receive (or transmit) time: the default
// timestamp type is the kernel's CLOCK_REALTIME, one clock for every network
// namespace of the host, so `lab verify` can order packets across hosts.
//
// The packet socket is created by pcap_activate and stays in the namespace it
// was created in; the JS side enters the namespace only around the
// constructor. Reading is nonblocking and synchronous: JS calls read() on a
// short timer and drains with it at stop. The timestamps come from the
// kernel, so how late JS reads does not change them; frames wait in
// libpcap's ring buffer meanwhile. Nothing here runs on another thread.
#include "capture.h"
#include <pcap/pcap.h>
#include <string>

namespace {

// The most frames one read() returns when JS names no limit: bounds the work
// done in one turn of the event loop; the caller reads again for the rest.
constexpr uint32_t kDefaultBatch = 4096;
constexpr int kSnaplen = 65535;

struct Batch {
  Napi::Env env;
  Napi::Array frames;
  uint32_t count;
};

// libpcap's buffer behind `bytes` is reused once this returns: copy it out.
void OnFrame(u_char* user, const struct pcap_pkthdr* h, const u_char* bytes) {
  Batch* b = reinterpret_cast<Batch*>(user);
  Napi::Object f = Napi::Object::New(b->env);
  f.Set("tsSec", Napi::Number::New(b->env, static_cast<double>(h->ts.tv_sec)));
  // With PCAP_TSTAMP_PRECISION_NANO libpcap puts nanoseconds in tv_usec.
  f.Set("tsNsec", Napi::Number::New(b->env, static_cast<double>(h->ts.tv_usec)));
  f.Set("caplen", Napi::Number::New(b->env, h->caplen));
  f.Set("wirelen", Napi::Number::New(b->env, h->len));
  f.Set("data", Napi::Buffer<uint8_t>::Copy(b->env, bytes, h->caplen));
  b->frames.Set(b->count++, f);
}

class Capture : public Napi::ObjectWrap<Capture> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Capture",
                       {InstanceMethod("read", &Capture::Read), InstanceMethod("inject", &Capture::Inject),
                        InstanceMethod("close", &Capture::CloseJs),
                        InstanceAccessor("linkType", &Capture::LinkType, nullptr)});
  }

  // new Capture(device, filter, bufferBytes): opened and activated, or throws.
  explicit Capture(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Capture>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "new Capture(device: string, filter: string, bufferBytes: number)").ThrowAsJavaScriptException();
      return;
    }
    std::string device = info[0].As<Napi::String>();
    std::string filter = info[1].As<Napi::String>();
    int bufferBytes = info[2].As<Napi::Number>().Int32Value();
    std::string error = Open(device, filter, bufferBytes);
    if (!error.empty()) {
      // Closed here, so the destructor and close() have nothing left to do.
      Close();
      Napi::Error::New(env, error).ThrowAsJavaScriptException();
    }
  }

  ~Capture() override { Close(); }

 private:
  // Empty on success, else what failed.
  std::string Open(const std::string& device, const std::string& filter, int bufferBytes) {
    char errbuf[PCAP_ERRBUF_SIZE];
    errbuf[0] = '\0';
    pcap_ = pcap_create(device.c_str(), errbuf);
    if (!pcap_) return "open device " + device + ": " + errbuf;
    // Promiscuous as tcpdump is by default: a lab host's capture shows frames
    // for other MACs too (what DSR's MAC rewrite sends is the evidence).
    // Immediate mode: frames are readable as soon as they arrive, not when a
    // ring block fills or times out, so a short poll sees them at once.
    if (pcap_set_snaplen(pcap_, kSnaplen) != 0 || pcap_set_promisc(pcap_, 1) != 0 || pcap_set_immediate_mode(pcap_, 1) != 0 ||
        pcap_set_buffer_size(pcap_, bufferBytes) != 0) {
      return "configure capture on " + device + ": " + pcap_geterr(pcap_);
    }
    if (pcap_set_tstamp_precision(pcap_, PCAP_TSTAMP_PRECISION_NANO) != 0) {
      return "capture on " + device + ": libpcap offers no nanosecond timestamps here";
    }
    int rc = pcap_activate(pcap_);
    if (rc < 0) {
      // PCAP_ERROR leaves its text in pcap_geterr; the specific codes may not.
      std::string detail = pcap_geterr(pcap_);
      std::string status = pcap_statustostr(rc);
      bool plain = rc == PCAP_ERROR || detail.empty() || detail == status;
      return "open device " + device + ": " + (plain ? (detail.empty() ? status : detail) : status + " (" + detail + ")");
    }
    if (pcap_get_tstamp_precision(pcap_) != PCAP_TSTAMP_PRECISION_NANO) {
      return "capture on " + device + ": libpcap activated without nanosecond timestamps";
    }
    if (!filter.empty()) {
      struct bpf_program program;
      if (pcap_compile(pcap_, &program, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
        return "compile filter \"" + filter + "\": " + pcap_geterr(pcap_);
      }
      int set = pcap_setfilter(pcap_, &program);
      pcap_freecode(&program);
      if (set != 0) return "set filter \"" + filter + "\" on " + device + ": " + pcap_geterr(pcap_);
    }
    if (pcap_setnonblock(pcap_, 1, errbuf) != 0) return "capture on " + device + ": nonblocking mode: " + errbuf;
    linkType_ = pcap_datalink(pcap_);
    return "";
  }

  // read(max?): the frames waiting now, oldest first, at most `max`; an empty
  // array when none wait. Never blocks.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!pcap_) {
      Napi::Error::New(env, "read: the capture is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint32_t max = kDefaultBatch;
    if (info.Length() > 0 && info[0].IsNumber()) {
      int64_t asked = info[0].As<Napi::Number>().Int64Value();
      if (asked > 0 && asked < static_cast<int64_t>(UINT32_MAX)) max = static_cast<uint32_t>(asked);
    }
    Batch batch{env, Napi::Array::New(env), 0};
    // One pcap_dispatch may stop at the end of the ring; go round until none is left.
    while (batch.count < max) {
      int rc = pcap_dispatch(pcap_, static_cast<int>(max - batch.count), OnFrame, reinterpret_cast<u_char*>(&batch));
      if (rc == PCAP_ERROR_BREAK || rc == 0) break;
      if (rc < 0) {
        Napi::Error::New(env, std::string("read: ") + pcap_geterr(pcap_)).ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    return batch.frames;
  }

  // inject(frame): send one whole link-layer frame out of the interface (pcap_inject); throws libpcap's error.
  Napi::Value Inject(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      Napi::TypeError::New(env, "inject(frame: Buffer)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (!pcap_) {
      Napi::Error::New(env, "inject: the capture is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> frame = info[0].As<Napi::Buffer<uint8_t>>();
    if (pcap_inject(pcap_, frame.Data(), frame.Length()) < 0) {
      Napi::Error::New(env, std::string("inject: ") + pcap_geterr(pcap_)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return env.Undefined();
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  Napi::Value LinkType(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), linkType_); }

  void Close() {
    if (pcap_) {
      pcap_close(pcap_);
      pcap_ = nullptr;
    }
  }

  pcap_t* pcap_ = nullptr;
  int linkType_ = -1;
};

}  // namespace

void InitCapture(Napi::Env env, Napi::Object exports) { exports.Set("Capture", Capture::Define(env)); }
